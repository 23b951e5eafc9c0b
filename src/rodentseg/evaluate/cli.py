"""``rodentseg evaluate PRED [GT] --out DIR``: the command-line face of :func:`evaluate_folders`.

``rodentseg/cli.py`` adds the subcommand with :func:`add_evaluate_parser`; :func:`main` runs it
on its own (``main(["evaluate", PRED, GT, "--out", DIR])``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rodentseg.errors import RodentsegError
from rodentseg.evaluate.run import evaluate_folders


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand (its handler is ``args.func`` = :func:`run_evaluate`)."""
    p = subparsers.add_parser(
        "evaluate", help="score predicted masks against ground truth and/or human keypoints",
        description="Score predicted instance masks against ground-truth masks (IoU, DAVIS J, "
                    "F and J&F, per-class IoU) and/or human keypoints (fraction inside the "
                    "masks). Writes metrics.json, per_frame.csv, per_frame.png and contact "
                    "sheets of the worst frames to --out.")
    p.add_argument("pred", metavar="PRED", type=Path,
                   help="predicted masks: a folder of label PNGs (NNNNNN.png, value = object id, "
                        "0 = background) or a COCO RLE .json")
    p.add_argument("gt", metavar="GT", type=Path, nargs="?", default=None,
                   help="ground-truth masks in either form (optional with --keypoints); frames "
                        "only in GT count as empty predictions, frames only in PRED are ignored")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", type=Path, help="video to draw the worst frames on")
    src.add_argument("--frames", type=Path,
                     help="folder of images named by frame index to draw the worst frames on")
    p.add_argument("--keypoints", type=Path,
                   help="human keypoints: DeepLabCut .csv/.h5, SLEAP .slp, or a "
                        "frame,bodypart,x,y[,individual] CSV")
    p.add_argument("--boundary-tol", type=float, default=0.008,
                   help="F-measure boundary tolerance: a fraction of the image diagonal (< 1, "
                        "default 0.008 as DAVIS) or whole pixels (>= 1)")
    p.add_argument("--match", choices=("iou", "id"), default="iou",
                   help="pair objects by maximum IoU (Hungarian, default: ids may differ) or "
                        "by equal id (identity errors count)")
    p.add_argument("--semantic", action="store_true",
                   help="pixel values are class ids: per-class IoU for every class")
    p.add_argument("--worst", type=int, default=8, metavar="N",
                   help="worst frames on the contact sheets (default 8, 0 for none)")
    p.add_argument("--min-likelihood", type=float, metavar="P",
                   help="drop DeepLabCut keypoints with a lower likelihood (model outputs)")
    p.set_defaults(func=run_evaluate)
    return p


def _fmt(value, pct: bool = False) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{100 * value:.1f}%" if pct else f"{value:.3f}"


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``evaluate`` for parsed arguments, print a summary, return the exit status (0).

    Raises:
        RodentsegError: bad input (the caller prints it and exits 2).
    """
    r = evaluate_folders(args.pred, args.gt, args.out, video=args.video, frames=args.frames,
                         keypoints=args.keypoints, boundary_tol=args.boundary_tol,
                         match=args.match, semantic=args.semantic, worst=args.worst,
                         min_likelihood=args.min_likelihood, progress=sys.stderr.isatty())
    print_summary(r, args.out)
    return 0


def print_summary(r: dict, out) -> None:
    """Print the headline figures of an :func:`evaluate_folders` result."""
    fr = r["frames"]
    if "evaluated" in fr:
        print(f"evaluated {fr['evaluated']} frames ({fr['gt_only_empty_prediction']} only in GT, "
              f"scored as empty predictions; {fr['pred_only_ignored']} only in PRED, ignored)")
        d = r["davis"]
        print(f"mean IoU {_fmt(r['iou']['mean'])}   J&F {_fmt(d['J&F']['mean'])} "
              f"(J {_fmt(d['J']['mean'])}, F {_fmt(d['F']['mean'])})   "
              f"mIoU {_fmt(r['semantic']['miou'])}   missed {r['objects']['missed']}, "
              f"false positives {r['objects']['false_positives']}")
    for side, k in r.get("keypoints", {}).items():
        print(f"keypoints in {side} masks: {k['inside_any_count']}/{k['points']} inside any "
              f"({_fmt(k['inside_any'], True)}), {k['inside_right_count']}/{k['points']} inside "
              f"the right animal's ({_fmt(k['inside_right'], True)})")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``main(["evaluate", PRED, GT, "--out", DIR])``; returns the exit
    status (2 with the message on stderr for bad input)."""
    parser = argparse.ArgumentParser(prog="rodentseg")
    add_evaluate_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except RodentsegError as e:
        print(f"rodentseg: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())


add_parser = add_evaluate_parser  # the name rodentseg.cli looks for
