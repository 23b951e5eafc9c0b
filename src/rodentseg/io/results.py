"""The result folder every command writes (segment, track, annotate), written atomically.

Layout of ``OUT/<name>/``:

- ``masks/NNNNNN.png``: 8-bit label image per frame, pixel = ``track_id`` (0 = background);
- ``masks.json``: the same masks as COCO RLE, ``image_id`` = frame index, ``track_id`` per
  annotation;
- ``tracks.csv``: one row per animal per frame (:data:`TRACK_COLUMNS`; pixels, box ``xyxy``
  with x1/y1 exclusive, ``time_s`` = frame_idx / fps; ``area_px`` and the box cover the whole
  mask, ``cx, cy`` is the body centroid without the tail, :func:`rodentseg.types.body_centroid`);
- ``overlay.mp4``: the video with coloured masks and ids (when frames are given);
- ``run.json``: version, inputs and their hashes, options, timings.

Everything is written into ``OUT/.<name>.partial/`` and renamed to ``OUT/<name>/`` only when
complete (:func:`publish`). :func:`prepare` decides what to do with what is already there.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rodentseg.errors import RodentsegError
from rodentseg.io.atomic import AtomicWriter
from rodentseg.io.masks import CocoWriter, write_label_png
from rodentseg.io.video import VideoWriter
from rodentseg.overlay import draw_masks
from rodentseg.types import FrameMasks, body_centroid, mask_box

TRACK_COLUMNS = ["frame_idx", "time_s", "track_id", "area_px", "cx", "cy",
                 "x0", "y0", "x1", "y1", "score"]


def track_rows(fm: FrameMasks, fps: float) -> list[list]:
    """The ``tracks.csv`` rows of one frame (one per object, ordered by id)."""
    rows = []
    for oid, m, s in zip(fm.obj_ids, fm.masks, fm.scores):
        box = mask_box(m)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        crop = m[y0:y1, x0:x1]  # the box is searched once; the centroid is found in the crop
        cx, cy = body_centroid(crop)
        rows.append([fm.frame_idx, round(fm.frame_idx / fps, 4), int(oid), int(crop.sum()),
                     round(cx + x0, 2), round(cy + y0, 2), x0, y0, x1, y1, round(float(s), 4)])
    return rows


class ResultWriter(AtomicWriter):
    """Writes frames of masks into a (partial) result folder, one frame at a time.

    Args:
        folder: the partial folder (created).
        width, height: frame size in pixels.
        fps: frame rate, for ``time_s`` and the overlay.
        overlay: write ``overlay.mp4`` (then :meth:`write` needs each frame's pixels).

    Attributes:
        track_ids: the ids written so far.
    """

    def __init__(self, folder: Path, width: int, height: int, fps: float, overlay: bool = True):
        self.folder = Path(folder)
        (self.folder / "masks").mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self._coco = CocoWriter(self.folder / "masks.json", width, height)
        self._tf = (self.folder / "tracks.csv").open("w", newline="")
        self._table = csv.writer(self._tf)
        self._table.writerow(TRACK_COLUMNS)
        self._video = VideoWriter(self.folder / "overlay.mp4", width, height, fps) if overlay \
            else None
        self.track_ids: set[int] = set()

    def write(self, fm: FrameMasks, frame: np.ndarray | None = None) -> None:
        """Record one frame's masks; ``frame`` (H, W, 3) uint8 RGB is needed for the overlay."""
        write_label_png(self.folder / "masks" / f"{fm.frame_idx:06d}.png", fm)
        self._coco.add(fm)
        self._table.writerows(track_rows(fm, self.fps))
        self.track_ids.update(fm.obj_ids.tolist())
        if self._video is not None:
            if frame is None:
                raise ValueError("this writer makes an overlay: pass the frame's pixels")
            self._video.write(draw_masks(frame, fm))

    def close(self) -> None:
        """Finish every file (the folder is still partial until :func:`publish`); once."""
        if self._tf.closed:
            return
        self._coco.close()
        self._tf.close()
        if self._video is not None:
            self._video.close()

    def abort(self) -> None:
        """Stop after an error; the caller removes the partial folder."""
        if self._tf.closed:
            return
        self._coco.abort()
        self._tf.close()
        if self._video is not None:
            self._video.abort()


@contextmanager
def discard_on_error(partial: Path) -> Iterator[Path]:
    """Remove the partial folder when the block raises (Ctrl-C included), then re-raise.

    What was published before is untouched: only ``partial`` goes.
    """
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def check_writable(out: Path) -> None:
    """Create ``out`` if needed and check that files can be written in it.

    Raises:
        RodentsegError: it cannot be created or written (the OS reason is included).
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".rodentseg-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RodentsegError(
            f"cannot write to output directory {out}: {e.strerror or e}; "
            "expected a directory you can create and write in"
        ) from None


def prepare(out: Path, name: str, signature: dict, overwrite: bool) -> Path | None:
    """Decide about ``out/name`` before a run; returns a fresh partial folder, or None to skip.

    A finished result whose ``run.json`` holds the same ``signature`` (input hashes, weights,
    options) is kept and the run skipped. A different finished result is an error unless
    ``overwrite``. A partial folder left by a killed run is removed and the run starts again.

    Raises:
        RodentsegError: ``out`` cannot be written, or a different result exists without
            ``overwrite``.
    """
    check_writable(out)
    final = out / name
    if final.exists():
        if matches(final / "run.json", signature):
            return None
        if not overwrite:
            raise RodentsegError(
                f"{final} already holds a result of another run (different input, model or "
                "options); pass --overwrite to replace it, or choose another --out"
            )
    partial = out / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    return partial


def matches(run_json: Path, signature: dict) -> bool:
    """True when ``run_json`` exists and agrees with every key of ``signature``."""
    try:
        done = json.loads(run_json.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return all(done.get(k) == v for k, v in signature.items())


def publish(partial: Path, run: dict) -> Path:
    """Write ``run.json`` and move the partial folder to its final name (replacing an old one).

    Returns:
        The final folder (the partial name without the leading dot and ``.partial``).
    """
    (partial / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    final = partial.with_name(partial.name[1:].removesuffix(".partial"))
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old)
    else:
        os.replace(partial, final)
    return final
