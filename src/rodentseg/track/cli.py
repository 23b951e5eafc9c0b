"""The ``rodentseg track`` subcommand (see :mod:`rodentseg.track.run`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):  # inf (or nan) would give empty times
            raise argparse.ArgumentTypeError(f"expected a positive finite number, got {value}")
        return value
    return parse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``track`` to the ``rodentseg`` subcommands (sets ``func``)."""
    p = subparsers.add_parser(
        "track", help="relink per-frame instance masks into stable identities",
        description="Give the instance masks of each frame (ids not consistent across frames: "
                    "a folder of NNNNNN.png instance PNGs or a COCO RLE/polygon JSON) stable "
                    "track ids, and write masks/, masks.json, tracks.csv (with speeds), "
                    "summary.csv, heatmaps, swaps.csv (frames to review), DeepLabCut and SLEAP "
                    "exports, overlay.mp4 (with --video) and run.json into OUT/<name>/.")
    p.add_argument("masks", type=Path, metavar="MASKS",
                   help="folder of instance PNGs or a COCO .json of instance masks")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--video", type=Path, default=None,
                   help="the video of the masks: appearance cues, fps and overlay.mp4")
    p.add_argument("--animals", type=_positive(int), default=None,
                   help="number of animals; keeps exactly that many identities through "
                        "contacts and occlusions")
    p.add_argument("--fps", type=_positive(float), default=None,
                   help="frame rate (default: the video's, else 30)")
    p.add_argument("--px-per-cm", type=_positive(float), default=None,
                   help="image scale in pixels per cm, for speeds in cm/s")
    p.add_argument("--name", default=None,
                   help="result folder name (default: the video's or the masks' name)")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished result of a different run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_track)
    return p


def run_track(args: argparse.Namespace) -> int:
    """Run ``rodentseg track`` from parsed arguments; returns the exit status."""
    from rodentseg.track.run import TrackOptions, track_masks

    opts = TrackOptions(animals=args.animals, fps=args.fps, px_per_cm=args.px_per_cm,
                        overlay=not args.no_overlay)
    result = track_masks(args.masks, args.out, args.video, opts, name=args.name,
                         overwrite=args.overwrite, progress=not args.quiet)
    print(f"wrote {result}")
    return 0
