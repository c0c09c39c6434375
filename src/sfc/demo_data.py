"""Command line entry point that writes the synthetic demo dataset in the DAVIS-2017 layout.

Usage::

    python -m sfc.demo_data OUT_DIR [--n-sequences N] [--n-frames T] [--height H] [--width W]
                                    [--seed S] [--split val] [--overwrite]

It calls :func:`sfc.data.demo.make_demo_davis`; a rerun with the same arguments is a no-op.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sfc.data.demo import make_demo_davis

logger = logging.getLogger("sfc.demo_data")


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the ``sfc.demo_data`` entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m sfc.demo_data",
        description="Write a small deterministic synthetic dataset in the DAVIS-2017 layout.",
    )
    parser.add_argument("out_dir", help="dataset root to write (JPEGImages/, Annotations/, ImageSets/)")
    parser.add_argument("--n-sequences", type=int, default=3, help="number of sequences (default 3)")
    parser.add_argument("--n-frames", type=int, default=20, help="frames per sequence (default 20)")
    parser.add_argument("--height", type=int, default=192, help="frame height in pixels (default 192)")
    parser.add_argument("--width", type=int, default=320, help="frame width in pixels (default 320)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--split", default="val", help="split file name under ImageSets/2017 (default val)")
    parser.add_argument("--overwrite", action="store_true", help="regenerate even if already complete")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the entry point.

    Args:
        argv: command line arguments (without the program name); None reads ``sys.argv``.

    Returns:
        Process exit status (0 on success).
    """
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = make_demo_davis(
        args.out_dir,
        n_sequences=args.n_sequences,
        n_frames=args.n_frames,
        size=(args.height, args.width),
        seed=args.seed,
        split=args.split,
        overwrite=args.overwrite,
    )
    logger.info("Demo DAVIS dataset ready at %s", root.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
