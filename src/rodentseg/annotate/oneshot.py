"""One-shot video annotation: prompts on a few frames, propagation both ways, a result folder.

``OUT/<video stem>/`` gets exactly the layout of ``rodentseg segment`` (:mod:`rodentseg.io.results`:
``masks/``, ``masks.json``, ``tracks.csv``, ``overlay.mp4``, ``run.json``) plus ``review.csv``
(:mod:`rodentseg.annotate.review`). ``track_id`` = the object's id. The folder is published only
when complete; a finished result of the same video, weights, prompts and options is kept.
"""

from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rodentseg import __version__
from rodentseg.annotate.adapter import VideoModel
from rodentseg.annotate.review import ReviewRanker
from rodentseg.annotate.session import VideoSession
from rodentseg.errors import RodentsegError
from rodentseg.io.results import ResultWriter, discard_on_error, prepare, publish
from rodentseg.io.video import sha256_input
from rodentseg.types import FrameMasks


@dataclass
class ObjectPrompts:
    """Every prompt for one object, by frame.

    Attributes:
        obj_id: 1..255, the ``track_id`` in the output.
        points: ``{frame_idx: (points (P, 2) float (x, y) px, labels (P,) int 1/0)}``.
        boxes: ``{frame_idx: (4,) float xyxy px}`` (combined with that frame's points).
        masks: ``{frame_idx: (H, W) bool}``.

    The earliest prompted frame is the object's origin; prompts on later (or earlier) frames
    are corrections that propagate away from it (:mod:`rodentseg.annotate.session`).
    """

    obj_id: int
    points: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    boxes: dict[int, np.ndarray] = field(default_factory=dict)
    masks: dict[int, np.ndarray] = field(default_factory=dict)

    @property
    def frames(self) -> list[int]:
        return sorted({*self.points, *self.boxes, *self.masks})

    def to_json(self) -> dict:
        """A JSON-able summary (masks as sha256 of their bits), for ``run.json``."""
        return {"obj_id": self.obj_id,
                "points": {str(f): [p.tolist(), lab.tolist()] for f, (p, lab) in
                           sorted(self.points.items())},
                "boxes": {str(f): b.tolist() for f, b in sorted(self.boxes.items())},
                "masks": {str(f): hashlib.sha256(np.packbits(m).tobytes()).hexdigest()
                          for f, m in sorted(self.masks.items())}}


@dataclass(frozen=True)
class AnnotateOptions:
    """Options of an annotate run (recorded in ``run.json``).

    Attributes:
        overlay: write ``overlay.mp4``.
        check_consistency: propagate each run of frames again the opposite way for the
            ``fb`` cue of ``review.csv`` (about twice the model time).
    """

    overlay: bool = True
    check_consistency: bool = False


def apply_prompts(session: VideoSession, objects: list[ObjectPrompts]) -> None:
    """Add every object's prompts to a session, earliest frame first (origin = earliest)."""
    ids = [o.obj_id for o in objects]
    if len(set(ids)) != len(ids):
        raise RodentsegError(f"object ids must be unique, got {ids}")
    for obj in objects:
        if not obj.frames:
            raise RodentsegError(f"object {obj.obj_id} has no prompt")
        for f in obj.frames:
            pts, labels = obj.points.get(f, (None, None))
            session.add_prompt(f, obj.obj_id, points=pts, labels=labels, box=obj.boxes.get(f),
                               mask=obj.masks.get(f))


def write_session(session: VideoSession, partial: Path, overlay: bool,
                  progress: bool) -> tuple[int, ReviewRanker]:
    """Write every frame of a session's stored results, in order, into a partial folder.

    Returns:
        Frames written and the filled :class:`ReviewRanker` (``review.csv`` is written too).
    """
    frames = session.frames
    ranker = ReviewRanker(frames.fps)
    n = 0
    with ResultWriter(partial, frames.width, frames.height, frames.fps, overlay=overlay) as writer:
        for t, frame in tqdm(frames.forward(), total=frames.n_frames, unit="frame",
                             desc="write", disable=not progress, dynamic_ncols=True):
            objs = session.details(t)
            keep = sorted(o for o, m in objs.items() if m.mask.any())
            masks = (np.stack([objs[o].mask for o in keep]) if keep
                     else np.zeros((0, frames.height, frames.width), bool))
            writer.write(FrameMasks(t, np.array(keep, np.int64), masks,
                                    np.array([objs[o].score for o in keep], np.float32)),
                         frame if overlay else None)
            ranker.update(t, objs)
            n += 1
    ranker.write(partial / "review.csv")
    return n, ranker


def annotate_video(video: str | Path, out: str | Path, model: VideoModel,
                   objects: list[ObjectPrompts], opts: AnnotateOptions = AnnotateOptions(),
                   overwrite: bool = False, progress: bool = True) -> Path:
    """Annotate one video from prompts and write ``out/<video stem>/``.

    Args:
        video: a video FFmpeg reads.
        out: parent output folder.
        model: a loaded video model (:func:`rodentseg.annotate.load_video_model`).
        objects: the prompts, one entry per animal.
        opts: run options.
        overwrite: replace a finished result made with other prompts, weights or options.
        progress: progress bars on stderr.

    Returns:
        The result folder.

    Raises:
        RodentsegError: bad video, bad prompts (outside the frame or the video, malformed),
            an output folder that cannot be written, or a different finished result without
            ``overwrite``. Nothing under ``out/<stem>/`` changes when it is raised.
    """
    video, out = Path(video), Path(out)
    t0 = time.perf_counter()
    session = model.start(video)
    try:
        signature = {"video_sha256": sha256_input(video), "weights_sha256": model.weights_sha256,
                     "prompts": [o.to_json() for o in objects], "options": asdict(opts)}
        partial = prepare(out, video.stem, signature, overwrite)
        if partial is None:
            if progress:
                print(f"{video}: already done in {out / video.stem} (same video, model, prompts "
                      "and options); skipped")
            return out / video.stem
        with discard_on_error(partial):
            apply_prompts(session, objects)
            t1 = time.perf_counter()
            for _ in session.propagate(direction="both", progress=progress):
                pass
            t2 = time.perf_counter()
            checked = session.check_consistency(progress) if opts.check_consistency else 0
            t3 = time.perf_counter()
            n, _ = write_session(session, partial, opts.overlay, progress)
        total = time.perf_counter() - t0
        run = {
            "rodentseg_version": __version__, "command": "annotate", "mode": "one-shot",
            "model": model.name, **signature, "video": str(video.resolve()),
            "fps": session.frames.fps, "frame_count": n, "width": session.width,
            "height": session.height, "device": str(model.device),
            "python": platform.python_version(), "model_calls": session.model_calls,
            "consistency_checked": checked,
            "timings": {"prompt_s": round(t1 - t0, 3), "propagate_s": round(t2 - t1, 3),
                        "check_s": round(t3 - t2, 3), "write_s": round(time.perf_counter() - t3, 3),
                        "total_s": round(total, 3), "fps": round(n / total, 3)},
        }
        return publish(partial, run)
    finally:
        session.close()
