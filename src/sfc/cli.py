"""The ``sfc`` command line (console script ``sfc = "sfc.cli:main"``).

Subcommands:

* ``sfc davis-eval --davis-root ROOT --results DIR [--split val] [--sequences a,b] [--workers N]``:
  evaluate a folder of DAVIS-2017 semi-supervised results like the official ``davis2017-evaluation``,
  write ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv`` into the results folder
  and print both tables.

* ``sfc show-metrics FILE``: print a metrics JSON written by ``evaluate_davis`` as a table, and how to
  browse the run in the MLflow UI (the last step of ``make demo``).

* ``sfc demo-data OUT [--n-sequences 3 --n-frames 20 --height 192 --width 320 --seed 0]``: write the
  small synthetic dataset in the DAVIS-2017 layout that ``make demo`` runs on (a rerun with the same
  arguments does nothing).

The same subcommands are available as Kedro project commands (``kedro davis-eval ...``): Kedro
loads ``<package>.cli`` and requires a click group named ``cli`` in it.

New subcommands register a parser in :func:`build_parser` and set ``func`` to a handler taking the
parsed namespace and returning an exit code. Expected user errors (bad dataset, missing files) exit
with code 2 and a one-line message on stderr; this is the only module that prints.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import click

from sfc.evaluation.davis.reader import DavisFormatError

__all__ = ["build_parser", "cli", "main"]

EXIT_USAGE_ERROR = 2


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _cmd_davis_eval(args: argparse.Namespace) -> int:
    # Imported here so `sfc --help` stays fast and other subcommands do not pay for pandas/tqdm.
    from sfc.evaluation.davis.evaluate import evaluate_results, write_result_tables
    from sfc.evaluation.davis.metric import global_table

    sequences = None
    if args.sequences:
        sequences = [s.strip() for s in args.sequences.split(",") if s.strip()]
    global_dict, per_object = evaluate_results(
        args.davis_root,
        args.results,
        split=args.split,
        sequences=sequences,
        workers=args.workers,
        progress=not args.no_progress,
    )
    global_path, per_seq_path = write_result_tables(args.results, global_dict, per_object, args.split)
    _out(f"--------------------------- Global results for {args.split} ---------------------------")
    _out(global_table(global_dict).to_string(index=False))
    _out(f"\n---------- Per sequence results for {args.split} ----------")
    _out(per_object.to_string(index=False))
    _out(f"\nGlobal results saved in {global_path}")
    _out(f"Per-sequence results saved in {per_seq_path}")
    return 0


def _cmd_show_metrics(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metrics file not found (run the evaluate_davis pipeline first)")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DavisFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(metrics, dict) or not metrics:
        raise DavisFormatError(f"{path}: expected a JSON object of metrics, found {metrics!r}")
    width = max(len(k) for k in metrics)
    _out(f"Metrics from {path}:")
    for key, value in metrics.items():
        _out(f"  {key:<{width}}  {value:.4f}" if isinstance(value, int | float) else f"  {key:<{width}}  {value}")
    _out("")
    _out("Browse params, metrics and artifacts of every run in the MLflow UI:")
    _out("  .venv/bin/kedro mlflow ui      # then open http://127.0.0.1:5000 (experiment 'sfc')")
    return 0


def _cmd_demo_data(args: argparse.Namespace) -> int:
    from sfc.data.demo import make_demo_davis

    root = make_demo_davis(
        args.out_dir,
        n_sequences=args.n_sequences,
        n_frames=args.n_frames,
        size=(args.height, args.width),
        seed=args.seed,
        split=args.split,
        overwrite=args.overwrite,
    )
    _out(f"Demo DAVIS dataset ready at {root.resolve()}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Build the ``sfc`` argument parser with one sub-parser per subcommand."""
    parser = argparse.ArgumentParser(prog="sfc", description="SFC (ECCV 2022) reproduction tools.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "davis-eval",
        help="J&F evaluation of DAVIS-2017 semi-supervised results (official davis2017-evaluation numbers)",
        description=(
            "Evaluate <results>/<seq>/<frame>.png palette PNGs against <davis-root>/Annotations/480p, "
            "write global_results-<split>.csv and per-sequence_results-<split>.csv into the results "
            "folder and print them."
        ),
    )
    p.add_argument("--davis-root", required=True, help="DAVIS root (JPEGImages/, Annotations/, ImageSets/)")
    p.add_argument("--results", required=True, help="folder holding one sub-folder of PNGs per sequence")
    p.add_argument("--split", default="val", help="split name, ImageSets/2017/<split>.txt (default: val)")
    p.add_argument(
        "--sequences", default=None, help="comma-separated subset of sequences (default: whole split)"
    )
    p.add_argument(
        "--workers", type=_positive_int, default=None, help="worker processes (default: CPU count)"
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_davis_eval)

    p = sub.add_parser("show-metrics", help="print a metrics JSON and how to open the MLflow UI")
    p.add_argument("file", help="e.g. data/08_reporting/davis/metrics.json")
    p.set_defaults(func=_cmd_show_metrics)

    p = sub.add_parser(
        "demo-data",
        help="write the small synthetic DAVIS-format dataset of `make demo`",
        description="Write a small deterministic synthetic dataset in the DAVIS-2017 layout (CPU, seconds).",
    )
    p.add_argument("out_dir", help="dataset root to write (JPEGImages/, Annotations/, ImageSets/)")
    p.add_argument("--n-sequences", type=_positive_int, default=3, help="number of sequences (default 3)")
    p.add_argument("--n-frames", type=_positive_int, default=20, help="frames per sequence (default 20)")
    p.add_argument("--height", type=_positive_int, default=192, help="frame height in pixels (default 192)")
    p.add_argument("--width", type=_positive_int, default=320, help="frame width in pixels (default 320)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--split", default="val", help="split file name under ImageSets/2017 (default val)")
    p.add_argument("--overwrite", action="store_true", help="regenerate even if already complete")
    p.set_defaults(func=_cmd_demo_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sfc`` console script.

    Args:
        argv: Arguments without the program name (default: ``sys.argv[1:]``).

    Returns:
        Process exit code: 0 on success, 2 on usage errors, bad datasets or missing files.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help
        return int(exc.code or 0)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.WARNING,
            format="%(levelname)s %(name)s: %(message)s",
        )
    try:
        return int(args.func(args))
    except (DavisFormatError, FileNotFoundError, NotADirectoryError) as exc:
        sys.stderr.write(f"sfc {args.command}: error: {exc}\n")
        return EXIT_USAGE_ERROR


@click.group(name="sfc")
def cli() -> None:
    """SFC project commands (the same as the `sfc` console script)."""


def _forward(command: str) -> click.Command:
    @click.pass_context
    def run(ctx: click.Context) -> None:
        ctx.exit(main([command, *ctx.args]))

    settings = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}
    return click.Command(command, callback=run, context_settings=settings, help=f"See `sfc {command} --help`.")


for _name in ("davis-eval", "show-metrics", "demo-data"):
    cli.add_command(_forward(_name))


if __name__ == "__main__":
    sys.exit(main())
