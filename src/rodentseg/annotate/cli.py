"""``rodentseg annotate``: prompt a SAM-family model on a video (or image) and write the results.

Examples::

    rodentseg annotate mice.mp4 --out runs/ --points "0:253,221,1"          # one mouse
    rodentseg annotate mice.mp4 --out runs/ --box "0:230,200,280,245" \\
        --box "0:400,300,450,340"                                         # two mice
    rodentseg annotate mice.mp4 --out runs/ --points "1=0:253,221,1" \\
        --mask "1=300:fixed.png"                                          # with a correction
    rodentseg annotate mice.mp4 --out runs/ --text mouse --every 15       # zero-shot
    rodentseg annotate frame.png --out runs/ --auto                       # automatic masks

Each ``--points``/``--box``/``--mask`` is one object (ids 1, 2, ... in order); prefix ``ID=`` to
give one object several prompts. ``FRAME`` is the 0-based frame index.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from rodentseg.errors import RodentsegError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class _PromptAction(argparse.Action):
    """Collect --points/--box/--mask in command-line order as (kind, text)."""

    def __call__(self, parser, namespace, values, option_string=None):
        items = list(getattr(namespace, self.dest, None) or [])
        items.append((option_string.lstrip("-"), values))
        setattr(namespace, self.dest, items)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``annotate`` subcommand (handler :func:`run_annotate` as ``args.func``)."""
    from rodentseg.annotate.hub import DEFAULT_DETECTOR, DEFAULT_VIDEO_MODEL, HUB_MODELS

    p = subparsers.add_parser(
        "annotate", help="segment animals from prompts (points, boxes, masks, text)",
        description=__doc__.split("Examples")[0].strip(),
        epilog=f"models: {', '.join(sorted(HUB_MODELS))}, any hub id, or a directory",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("video", type=Path, metavar="VIDEO",
                   help="video file (any FFmpeg format), or an image (.png/.jpg)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", default=DEFAULT_VIDEO_MODEL,
                   help=f"SAM-family model: short name, hub id or directory "
                        f"(default {DEFAULT_VIDEO_MODEL})")
    p.add_argument("--points", dest="prompts", action=_PromptAction, metavar="[ID=]FRAME:x,y,l;..",
                   help="points in pixels with label 1 (animal) or 0 (background)")
    p.add_argument("--box", dest="prompts", action=_PromptAction, metavar="[ID=]FRAME:x0,y0,x1,y1",
                   help="a box in pixels")
    p.add_argument("--mask", dest="prompts", action=_PromptAction, metavar="[ID=]FRAME:PNG",
                   help="a mask image (nonzero = the animal; with ID, pixels equal to ID if any)")
    p.add_argument("--text", help="zero-shot: what to detect (e.g. 'mouse'), with --detector")
    p.add_argument("--detector", default=DEFAULT_DETECTOR,
                   help="zero-shot detector: Grounding DINO (name, hub id, directory) or a "
                        f"rodentseg segmenter such as rodentseg-tiny (default {DEFAULT_DETECTOR})")
    p.add_argument("--every", type=int, default=15, help="zero-shot: re-detect every K frames")
    p.add_argument("--animals", type=int, default=None, help="zero-shot: number of animals")
    p.add_argument("--auto", action="store_true",
                   help="image only: automatic masks from a grid of points")
    p.add_argument("--grid", type=int, default=16, metavar="N",
                   help="--auto: N x N grid of point prompts (default 16)")
    p.add_argument("--check", action="store_true",
                   help="forward/backward consistency check for review.csv (about 2x time)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished result made with other prompts, model or options")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_annotate, prompts=None)
    return p


def parse_objects(items: list[tuple[str, str]], height: int, width: int):
    """(kind, text) command-line prompts -> ``list[ObjectPrompts]`` (ids in order of appearance).

    Raises:
        RodentsegError: malformed text, an ID outside 1..255, or an unreadable mask image.
    """
    from rodentseg.annotate.oneshot import ObjectPrompts
    from rodentseg.annotate.prompts import parse_box, parse_points

    objects: dict[int, ObjectPrompts] = {}
    for kind, text in items:
        oid = None
        head = text.split(":", 1)[0]
        if "=" in head:
            sid, text = text.split("=", 1)
            try:
                oid = int(sid)
            except ValueError:
                raise RodentsegError(f"--{kind} {sid}=...: the object id before '=' must be an "
                                     "integer 1..255") from None
        if oid is None:
            oid = max(objects, default=0) + 1
        if not 1 <= oid <= 255:
            raise RodentsegError(f"--{kind}: object ids are 1..255, got {oid}")
        obj = objects.setdefault(oid, ObjectPrompts(oid))
        if kind == "points":
            obj.points.update(parse_points(text))
        elif kind == "box":
            obj.boxes.update(parse_box(text))
        else:
            obj.masks.update(_parse_mask(text, oid if "=" in head else None, height, width))
    return [objects[k] for k in sorted(objects)]


def _parse_mask(text: str, oid: int | None, height: int, width: int) -> dict[int, np.ndarray]:
    frame, _, path = text.partition(":")
    try:
        frame_idx = int(frame)
    except ValueError:
        raise RodentsegError(f"--mask {text!r}: expected FRAME:PATH.png") from None
    try:
        img = np.asarray(Image.open(path))
    except (OSError, ValueError) as e:
        raise RodentsegError(f"--mask {text!r}: cannot read the image {path!r}: {e}") from None
    if img.ndim == 3:
        img = img.max(axis=2)
    if img.shape != (height, width):
        raise RodentsegError(f"--mask {path}: the image is {img.shape[1]}x{img.shape[0]}, the "
                             f"video {width}x{height}; expected a mask of the frame's size")
    mask = img == oid if oid is not None and (img == oid).any() else img != 0
    return {frame_idx: mask}


def run_annotate(args) -> int:
    """Run the subcommand; returns the exit status."""
    if not args.video.exists():
        raise RodentsegError(f"{args.video} not found; expected a video or image file")
    if args.video.suffix.lower() in IMAGE_SUFFIXES:
        from rodentseg.annotate.image_cli import run_image

        return run_image(args)
    modes = [bool(args.prompts), bool(args.text)]
    if sum(modes) != 1:
        raise RodentsegError("give prompts (--points, --box, --mask) for one-shot annotation, "
                             "or --text for zero-shot, not both and not neither")
    if args.auto:
        raise RodentsegError("--auto works on images; for a video use --text (zero-shot)")
    from rodentseg.annotate.adapter import load_video_model
    from rodentseg.io.video import probe

    info = probe(args.video)
    progress = not args.quiet
    if args.prompts:
        from rodentseg.annotate.oneshot import AnnotateOptions, annotate_video

        objects = parse_objects(args.prompts, info.height, info.width)
        model = load_video_model(args.model, args.device)
        opts = AnnotateOptions(overlay=not args.no_overlay, check_consistency=args.check)
        result = annotate_video(args.video, args.out, model, objects, opts, args.overwrite,
                                progress)
    else:
        from rodentseg.annotate.detect import load_detector
        from rodentseg.annotate.zeroshot import ZeroShotOptions, zero_shot_video

        opts = ZeroShotOptions(every=args.every, animals=args.animals,
                               overlay=not args.no_overlay)
        detector = load_detector(args.detector, args.text, args.device, args.animals)
        model = load_video_model(args.model, args.device)
        result = zero_shot_video(args.video, args.out, model, detector, opts, args.overwrite,
                                 progress)
    print(f"wrote {result}")
    return 0
