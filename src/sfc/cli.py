"""The ``sfc`` command line (console script ``sfc = "sfc.cli:main"``).

Subcommands:

* ``sfc davis-eval --davis-root ROOT --results DIR [--split val] [--sequences a,b] [--workers N]``:
  evaluate a folder of DAVIS-2017 semi-supervised results like the official ``davis2017-evaluation``,
  write ``global_results-<split>.csv`` and ``per-sequence_results-<split>.csv`` into the results folder
  and print both tables.

* ``sfc show-metrics FILE [FILE ...]``: print metrics JSON files written by the evaluation pipelines as
  tables, and how to browse the runs in the MLflow UI (the last step of ``make demo``).

* ``sfc demo-data OUT [--kind davis|jhmdb|vip] [--n-videos N --n-frames T --height H --width W --seed S]``:
  write a small synthetic dataset in a benchmark's layout, as ``make demo`` does (a rerun with the
  same arguments does nothing).

* ``sfc propagate --video clip.mp4|FRAMES_DIR --mask first.png|first.json --out DIR [...]``: propagate a
  first-frame mask through a video (streaming, resumable): per-frame palette PNGs, an overlay GIF or
  MP4 and ``summary.json``; defaults from the project's ``conf/base/parameters.yml`` (docs/propagate.md).

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
from pathlib import Path

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

    for path in map(Path, args.files):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: metrics file not found (run the evaluation pipeline that writes it first)")
        try:
            metrics = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DavisFormatError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(metrics, dict) or not metrics:
            raise DavisFormatError(f"{path}: expected a JSON object of metrics, found {metrics!r}")
        width = max(len(k) for k in metrics)
        _out(f"Metrics from {path}:")
        for key, value in metrics.items():
            shown = f"{value:.4f}" if isinstance(value, int | float) and not isinstance(value, bool) else value
            _out(f"  {key:<{width}}  {shown}")
        _out("")
    _out("Browse params, metrics and artifacts of every run in the MLflow UI:")
    _out("  make ui      # then open http://127.0.0.1:5000 (experiment 'sfc')")
    return 0


def _cmd_demo_data(args: argparse.Namespace) -> int:
    # Each generator has its own sizes; only the options given on the command line override them.
    given = {k: v for k, v in {"n_frames": args.n_frames, "seed": args.seed}.items() if v is not None}
    if args.height is not None or args.width is not None:
        if args.height is None or args.width is None:
            raise ValueError("give both --height and --width")
        given["size"] = (args.height, args.width)
    if args.kind == "all":
        if given or args.n_videos is not None:
            raise ValueError("--kind all writes every demo dataset at its default size: drop the size options")
        from sfc.data.demo import make_demo_davis
        from sfc.data.demo_jhmdb import make_demo_jhmdb
        from sfc.data.demo_vip import make_demo_vip

        out = Path(args.out_dir)
        make_demo_davis(out / "davis", split=args.split, overwrite=args.overwrite)
        # Training frames for fc_pretrain: other videos than the evaluation ones (another seed).
        make_demo_davis(out / "frames", split="train", seed=1, overwrite=args.overwrite)
        make_demo_jhmdb(out / "jhmdb", overwrite=args.overwrite)
        make_demo_vip(out / "vip", overwrite=args.overwrite)
        _out(f"Demo datasets ready under {out.resolve()}: davis/, frames/ (training frames), jhmdb/, vip/")
        return 0
    if args.kind == "davis":
        from sfc.data.demo import make_demo_davis

        if args.n_videos is not None:
            given["n_sequences"] = args.n_videos
        root = make_demo_davis(args.out_dir, split=args.split, overwrite=args.overwrite, **given)
    elif args.kind == "jhmdb":
        from sfc.data.demo_jhmdb import make_demo_jhmdb

        if args.n_videos is not None:
            given["n_videos"] = args.n_videos
        root = make_demo_jhmdb(args.out_dir, overwrite=args.overwrite, **given)
    else:
        from sfc.data.demo_vip import make_demo_vip

        if args.n_videos is not None:
            given["n_videos"] = args.n_videos
        root = make_demo_vip(args.out_dir, overwrite=args.overwrite, **given)
    _out(f"Demo {args.kind.upper()} dataset ready at {root.resolve()}")
    return 0


def _cmd_propagate(args: argparse.Namespace) -> int:
    from sfc.propagate import load_settings, propagate_video  # torch-heavy: only for this command

    settings = load_settings(
        args.parameters,
        fc_checkpoint=args.fc_checkpoint,
        semantic_arch=args.semantic_arch,
        semantic_checkpoint=args.semantic_checkpoint,
        lam=args.lam,
        scale=args.scale,
        topk=args.topk,
        temperature=args.temperature,
        radius=args.radius,
        context=args.context,
        device=args.device,
    )
    overlay = None if args.no_overlay else "mp4" if args.mp4 else "gif"
    try:
        result = propagate_video(
            args.video, args.mask, args.out, settings, max_frames=args.max_frames, overlay=overlay,
            overwrite=args.overwrite, progress=not args.no_progress,
        )
    except KeyboardInterrupt:
        sys.stderr.write(f"sfc propagate: interrupted; the finished frames are in {args.out}/masks: rerun the same "
                         "command to resume\n")
        return 130
    s = result.summary
    _out(f"Propagated {len(s['objects'])} object(s) through {result.frames} frame(s) of {args.video}: "
         f"{result.computed} computed, {result.resumed} resumed from an earlier run (not recomputed)")
    if s["seconds_per_frame"] is not None:
        _out(f"  {s['seconds_per_frame']:.3f} s/frame ({s['frames_per_second']:.2f} frames/s) on {s['device']}")
    _out(f"  masks:   {result.out_dir / 'masks'}/00000.png ...")
    if result.overlay is not None:
        _out(f"  overlay: {result.overlay}")
    _out(f"  summary: {result.summary_path}")
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

    p = sub.add_parser("show-metrics", help="print metrics JSON files and how to open the MLflow UI")
    p.add_argument("files", nargs="+", metavar="FILE", help="e.g. data/08_reporting/davis/metrics.json")
    p.set_defaults(func=_cmd_show_metrics)

    p = sub.add_parser(
        "demo-data",
        help="write a small synthetic dataset (DAVIS, JHMDB or VIP layout) as `make demo` does",
        description=(
            "Write a small deterministic synthetic dataset in a benchmark's layout (CPU, seconds): DAVIS-2017 "
            "(3 sequences x 20 frames of 192 x 320 by default), JHMDB (2 videos x 12 frames of 240 x 320, "
            "joint_positions.mat, a split file) or VIP (2 videos x 8 frames of 120 x 160, part ids, a video list)."
        ),
    )
    p.add_argument("out_dir", help="dataset root to write")
    p.add_argument(
        "--kind", choices=("davis", "jhmdb", "vip", "all"), default="davis",
        help="layout (default davis); all = OUT/davis, OUT/frames (training frames), OUT/jhmdb, OUT/vip",
    )
    p.add_argument("--n-videos", "--n-sequences", dest="n_videos", type=_positive_int, default=None,
                   help="number of videos (default: the layout's)")
    p.add_argument("--n-frames", type=_positive_int, default=None, help="frames per video (default: the layout's)")
    p.add_argument("--height", type=_positive_int, default=None, help="frame height in pixels (with --width)")
    p.add_argument("--width", type=_positive_int, default=None, help="frame width in pixels (with --height)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--split", default="val", help="DAVIS only: split file name under ImageSets/2017 (default val)")
    p.add_argument("--overwrite", action="store_true", help="regenerate even if already complete")
    p.set_defaults(func=_cmd_demo_data)

    p = sub.add_parser(
        "propagate",
        help="propagate a first-frame mask through a video: per-frame masks, an overlay video, a summary",
        description=(
            "Propagate the objects of a first-frame mask through a video file (mp4, mov, avi, webm, ... read with "
            "PyAV) or a folder of frames (jpg/png), frame by frame with memory bounded by the context window, with "
            "the engine and settings of evaluate_davis. Writes OUT/masks/00000.png ... (DAVIS palette, object ids, "
            "the video's resolution), OUT/overlay.gif (or .mp4) and OUT/summary.json. An interrupted run resumes "
            "where it stopped when rerun with the same command. Defaults: the project's conf/base/parameters.yml "
            "(backbone.*, semantic.*, fusion.*, propagation.*, davis.scale, runtime.device), so with no flag the "
            "masks are those evaluate_davis computes; each flag below overrides one parameter. See docs/propagate.md."
        ),
    )
    p.add_argument("--video", required=True, help="video file (mp4/mov/avi/webm/mkv) or folder of frames (jpg or png)")
    p.add_argument(
        "--mask", required=True,
        help="first-frame mask at the frames' size: palette/greyscale PNG of object ids, binary PNG (0/255: one "
             "object), or polygon/box JSON (COCO, Label Studio export, or {width, height, objects})",
    )
    p.add_argument("--out", required=True, help="output folder (created; an earlier run's finished frames are kept)")
    p.add_argument("--fc-checkpoint", default=None,
                   help="FC network weights (backbone.checkpoint; null there = random init: poor masks)")
    p.add_argument("--semantic-arch", default=None,
                   help="semantic network for SFC late fusion, e.g. resnet50 (semantic.arch; default none)")
    p.add_argument("--semantic-checkpoint", default=None, help="semantic network weights (semantic.checkpoint)")
    p.add_argument("--lambda", dest="lam", type=float, default=None,
                   help="weight of the FC features in the fusion (fusion.lambda; paper, DAVIS: 1.75)")
    p.add_argument("--scale", type=float, default=None,
                   help="input resize factor before the network(s) (davis.scale; 1.0 = native resolution)")
    p.add_argument("--topk", type=_positive_int, default=None,
                   help="neighbours kept per location (propagation.topk; paper: 10 FC alone, 15 SFC)")
    p.add_argument("--temperature", type=float, default=None,
                   help="softmax temperature (propagation.temperature; paper: 0.05 FC alone, 0.1 SFC)")
    p.add_argument("--radius", type=float, default=None,
                   help="r': radius in feature cells for the context frames (propagation.radius; paper: 12 / 15)")
    p.add_argument("--context", type=int, default=None,
                   help="m: preceding frames attended, plus the first (propagation.context; paper: 20)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (runtime.device)")
    p.add_argument("--max-frames", type=_positive_int, default=None, help="propagate only the first N frames")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--gif", action="store_true", help="overlay as OUT/overlay.gif, at most 480 px (the default)")
    fmt.add_argument("--mp4", action="store_true", help="overlay as OUT/overlay.mp4 (H.264, full size; needs libx264)")
    fmt.add_argument("--no-overlay", action="store_true", help="no overlay video (masks and summary only)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over: delete OUT's earlier masks and resume state (needed to change settings)")
    p.add_argument("--parameters", default=None,
                   help="parameters YAML the defaults come from (default: the project's conf/base/parameters.yml)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_cmd_propagate)
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
    except (DavisFormatError, FileNotFoundError, NotADirectoryError, ValueError) as exc:
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


for _name in ("davis-eval", "show-metrics", "demo-data", "propagate"):
    cli.add_command(_forward(_name))


if __name__ == "__main__":
    sys.exit(main())
