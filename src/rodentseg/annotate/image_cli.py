"""``rodentseg annotate IMAGE``: prompts (frame 0) or ``--auto`` on one image.

The result folder ``OUT/<image stem>/`` has the layout of a one-frame video result
(``masks/000000.png``, ``masks.json``, ``tracks.csv``, ``overlay.mp4``, ``run.json``).
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from rodentseg import __version__
from rodentseg.errors import RodentsegError
from rodentseg.io.results import ResultWriter, discard_on_error, prepare, publish
from rodentseg.io.video import sha256_file
from rodentseg.types import FrameMasks


def _read_image(path: Path) -> np.ndarray:
    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except (OSError, ValueError) as e:
        raise RodentsegError(f"cannot read the image {path}: {e}") from None


def image_masks(predictor, image: np.ndarray, objects=None, auto: bool = False,
                grid: int = 16, max_masks: int = 255) -> FrameMasks:
    """Masks of one image from ``ObjectPrompts`` (frame 0 only) or automatic generation.

    Raises:
        RodentsegError: a prompt on a frame other than 0, or both/neither of prompts and auto.
    """
    from rodentseg.annotate.amg import AutomaticMaskGenerator
    from rodentseg.annotate.prompts import Prompt

    h, w = image.shape[:2]
    if auto == bool(objects):
        raise RodentsegError("an image needs prompts (--points/--box, on frame 0) or --auto")
    if auto:
        found = AutomaticMaskGenerator(predictor, points_per_side=grid).generate(image)
        n = min(len(found), max_masks)
        return FrameMasks(0, np.arange(1, n + 1), found.masks[:n], found.iou[:n].clip(0, 1))
    predictor.set_image(image)
    ids, masks, scores = [], [], []
    for obj in objects:
        if obj.frames != [0] or obj.masks:
            raise RodentsegError(f"object {obj.obj_id}: an image takes points or a box on frame "
                                 f"0, got prompts on frames {obj.frames}")
        pts, labels = obj.points.get(0, (None, None))
        p = Prompt.make(0, obj.obj_id, pts, labels, obj.boxes.get(0), None, h, w)
        multi = p.box is None and p.points is not None and len(p.points) == 1
        pred = predictor.predict(points=None if p.points is None else p.points[None],
                                 labels=None if p.labels is None else p.labels[None],
                                 boxes=p.box, multimask_output=multi)
        best, iou = pred.best()
        ids.append(obj.obj_id)
        masks.append(best[0])
        scores.append(float(np.clip(iou[0], 0, 1)))
    return FrameMasks(0, np.array(ids), np.stack(masks), np.array(scores, np.float32))


def run_image(args) -> int:
    """The image branch of ``rodentseg annotate``."""
    from rodentseg.annotate.adapter import load_image_model
    from rodentseg.annotate.cli import parse_objects

    if args.text:
        raise RodentsegError("--text (zero-shot) works on videos; on an image use --auto or "
                             "prompts")
    t0 = time.perf_counter()
    image = _read_image(args.video)
    h, w = image.shape[:2]
    objects = parse_objects(args.prompts or [], h, w)
    predictor = load_image_model(args.model, args.device)
    signature = {"image_sha256": sha256_file(args.video), "model": args.model,
                 "prompts": [o.to_json() for o in objects],
                 "auto": {"grid": args.grid} if args.auto else False}
    partial = prepare(args.out, args.video.stem, signature, args.overwrite)
    if partial is None:
        print(f"{args.video}: already done in {args.out / args.video.stem}; skipped")
        return 0
    with discard_on_error(partial):
        fm = image_masks(predictor, image, objects, args.auto, args.grid)
        with ResultWriter(partial, w, h, 1.0, overlay=not args.no_overlay) as writer:
            writer.write(fm, image)
    run = {"rodentseg_version": __version__, "command": "annotate", "mode": "image",
           **signature, "image": str(Path(args.video).resolve()), "width": w, "height": h,
           "frame_count": 1, "fps": 1.0, "objects": len(fm), "device": str(predictor.device),
           "python": platform.python_version(),
           "encoder_calls": predictor.encoder_calls,
           "timings": {"total_s": round(time.perf_counter() - t0, 3)}}
    print(f"wrote {publish(partial, run)}")
    return 0
