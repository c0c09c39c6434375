"""``python -m sfc.training`` / ``torchrun ... -m sfc.training``: run :func:`sfc.training.train_fc` from a shell.

The script form for ``torchrun`` (several machines) of what ``kedro run --pipelines fc_pretrain`` does in
one. There is no Kedro catalog here, so the script itself writes the final export to
``<work-dir>/fc.pth`` (rank 0, atomically and durably), next to the trainer's ``last.ckpt`` and
``metrics.jsonl``.

``--config`` is a JSON object with every field of :class:`~sfc.training.config.FCTrainConfig` (the keys
of ``fc_pretrain`` in ``conf/base/parameters_fc_pretrain.yml``; there are no defaults in code);
``work_dir`` may be left out, ``--work-dir`` sets it (and overrides the file's)::

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint host:29500 -m sfc.training \\
        --frames frames.txt --config fc_pretrain.json --work-dir /shared/fc/run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from sfc.atomic import atomic_path
from sfc.training.checkpoint import EXPORT_NAME
from sfc.training.config import FCTrainConfig
from sfc.training.loop import train_fc

__all__ = ["main"]

_DESCRIPTION = f"""\
Train (or resume) the FC network on a list of frames; rank 0 writes <work-dir>/{EXPORT_NAME}.

--config is a JSON object that must give every fc_pretrain parameter ({", ".join(FCTrainConfig.keys())});
there are no defaults in code: start from conf/base/parameters_fc_pretrain.yml (key fc_pretrain).
work_dir may be left out of it: --work-dir sets it (and overrides the file's value).
Under torchrun, nproc_per_node is not read (torchrun's --nproc-per-node is); batch_size is the global batch.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, train, write ``<work-dir>/fc.pth`` on rank 0 and print the result as JSON.

    Args:
        argv: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        The exit status (0; errors raise).

    Raises:
        sfc.config.ConfigError: the JSON config misses a field, has an unknown one or a bad value.
    """
    parser = argparse.ArgumentParser(
        prog="python -m sfc.training", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", required=True, type=Path, help="text file, one frame path per line")
    parser.add_argument(
        "--work-dir", required=True, type=Path, help=f"last.ckpt (resume), metrics.jsonl and {EXPORT_NAME}"
    )
    parser.add_argument(
        "--config",
        required=True,
        type=Path,
        help="JSON file with every fc_pretrain parameter (see conf/base/parameters_fc_pretrain.yml)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = [line.strip() for line in args.frames.read_text(encoding="utf-8").splitlines() if line.strip()]
    values = json.loads(args.config.read_text(encoding="utf-8"))
    if not isinstance(values, dict):
        parser.error(f"--config {args.config}: expected a JSON object of fc_pretrain parameters")
    config = FCTrainConfig.from_dict({**values, "work_dir": str(args.work_dir)})
    result = train_fc(paths, config)
    if result.export is not None:  # rank 0
        export_path = args.work_dir / EXPORT_NAME
        with atomic_path(export_path, durable=True) as tmp:
            torch.save(result.export, tmp)
        logging.getLogger(__name__).info("Wrote %s (step %d)", export_path, result.final_step)
        summary = {**dataclasses.asdict(dataclasses.replace(result, export=None)), "export_path": str(export_path)}
        sys.stdout.write(json.dumps(summary, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
