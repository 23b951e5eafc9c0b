"""Writing what was made in the app: the project's result folder and a training dataset.

One pass over the frames that hold results (the span from the first to the last frame with a
mask, every frame in between included) writes both:

- ``OUT/<name>/``: the layout of :mod:`rodentseg.io.results` (``masks/NNNNNN.png``,
  ``masks.json``, ``tracks.csv``, ``overlay.mp4``, ``run.json``), the readouts of
  :func:`rodentseg.track.readouts.finalize` (``summary.csv``, heatmaps, ``swaps.csv``, exports)
  and ``review.csv`` (:class:`rodentseg.annotate.review.ReviewRanker`), as ``rodentseg annotate``
  writes it; frame indices are those of the video.
- ``OUT/<name>-dataset/``: ``frames/NNNNNN.png`` (RGB) and ``masks/NNNNNN.png`` (8-bit label,
  pixel = obj_id), the layout :func:`rodentseg.train.datasets.load_dataset` reads.

Both folders are written under temporary names and renamed when complete, replacing an
earlier save of the same name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from rodentseg.annotate.frames import FrameSource
from rodentseg.annotate.review import ReviewRanker
from rodentseg.annotate.store import MaskStore
from rodentseg.errors import RodentsegError
from rodentseg.io.masks import write_label_png
from rodentseg.io.results import ResultWriter, check_writable, discard_on_error, publish
from rodentseg.track.readouts import finalize


@dataclass(frozen=True)
class Saved:
    """Where a save went.

    Attributes:
        result: the result folder (``masks.json``, ``overlay.mp4``, ...).
        dataset: the training dataset folder (``frames/``, ``masks/``), or None.
        first, last: first and last frame index written (inclusive).
    """

    result: Path
    dataset: Path | None
    first: int
    last: int


def save_session(store: MaskStore, source: FrameSource, out: str | Path, name: str, run: dict,
                 overlay: bool = True, dataset: bool = True,
                 on_frame: Callable[[int], None] | None = None) -> Saved:
    """Write the stored results of an app session (see the module docstring).

    Args:
        store: the per-frame masks (obj_id = ``track_id`` in the output).
        source: the video they belong to (frames are decoded again for the overlay/dataset).
        out: parent folder of ``<name>/`` and ``<name>-dataset/``.
        name: the result's folder name (usually the video's stem).
        run: extra fields for ``run.json`` (model, backend, video, ...).
        overlay: write ``overlay.mp4``.
        dataset: write ``<name>-dataset/`` too.
        on_frame: called with each frame index written (progress).

    Raises:
        RodentsegError: no frame holds a mask, or ``out`` cannot be written.
    """
    out = Path(out)
    frames = store.frames
    if not frames:
        raise RodentsegError("nothing to save yet: no frame has a mask; click on an animal first")
    first, last = frames[0], frames[-1]
    check_writable(out)
    partial = out / f".{name}.partial"
    ds_partial = out / f".{name}-dataset.partial"
    for p in (partial, ds_partial):
        shutil.rmtree(p, ignore_errors=True)
    ranker = ReviewRanker(source.fps)
    with discard_on_error(partial), discard_on_error(ds_partial):
        with ResultWriter(partial, source.width, source.height, source.fps,
                          overlay=overlay) as writer:
            if dataset:
                (ds_partial / "frames").mkdir(parents=True)
                (ds_partial / "masks").mkdir()
            for t, frame in source.forward(first, last + 1):
                fm = store.frame_masks(t)
                writer.write(fm, frame if overlay else None)
                ranker.update(t, store.get(t))
                if dataset:
                    Image.fromarray(frame).save(ds_partial / "frames" / f"{t:06d}.png",
                                                compress_level=1)
                    write_label_png(ds_partial / "masks" / f"{t:06d}.png", fm)
                if on_frame is not None:
                    on_frame(t)
        finalize(partial, source.fps, source.width, source.height, n_frames=last + 1,
                 video=source.path, name=name)
        ranker.write(partial / "review.csv")
    result = publish(partial, {**run, "fps": source.fps, "width": source.width,
                               "height": source.height, "first_frame": first,
                               "last_frame": last, "frame_count": last - first + 1})
    ds = None
    if dataset:
        ds = out / f"{name}-dataset"
        if ds.exists():
            shutil.rmtree(ds)
        os.replace(ds_partial, ds)
    return Saved(result, ds, first, last)
