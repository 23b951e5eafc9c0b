"""Zero-shot video annotation: a detector finds the animals, a SAM-family model follows them.

One forward pass over the video, frame by frame (bounded memory, each frame written once):

1. every tracked object advances one frame (SAM-family propagation);
2. on keyframes (every ``every`` frames, starting at frame 0) the detector's boxes become box
   prompts; a box whose mask overlaps an object already tracked (mask IoU >= ``dup_iou``) is
   the same animal and is dropped, any other starts a new object (an animal that entered);
3. two tracked objects that come to cover the same animal (mask IoU >= ``dup_iou``) are merged
   by dropping the younger; an object absent (empty mask) for more than ``max_lost`` frames
   is dropped;
4. :class:`rodentseg.track.tracker.Tracker` (the tracker of ``rodentseg track``) assigns the
   ``track_id`` s written out, so identities survive objects being dropped and re-detected.

An animal entering between keyframes is picked up at the next keyframe (up to ``every - 1``
frames late); frames before its detection are not filled backward.
"""

from __future__ import annotations

import platform
import time
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rodentseg import __version__
from rodentseg.annotate.adapter import VideoModel
from rodentseg.annotate.detect import Detector
from rodentseg.annotate.review import ReviewRanker
from rodentseg.annotate.session import VideoSession
from rodentseg.annotate.store import ObjectMask
from rodentseg.errors import RodentsegError
from rodentseg.io.results import ResultWriter, discard_on_error, prepare, publish
from rodentseg.io.video import sha256_input
from rodentseg.track.tracker import Tracker


@dataclass(frozen=True)
class ZeroShotOptions:
    """Options of a zero-shot run (recorded in ``run.json``).

    Attributes:
        every: re-detect every this many frames. Lower finds entering animals sooner and
            recovers lost ones faster, at one detector call per keyframe.
        dup_iou: mask IoU at or above which two masks are the same animal. Lower merges
            animals in contact; higher lets a drifting duplicate live longer.
        animals: known number of animals (caps objects and identities), or None.
        max_lost: frames an object may have an empty mask before it is dropped.
        overlay: write ``overlay.mp4``.
    """

    every: int = 15
    dup_iou: float = 0.5
    animals: int | None = None
    max_lost: int = 30
    overlay: bool = True

    def __post_init__(self):
        if self.every < 1:
            raise RodentsegError(f"--every must be >= 1 frame, got {self.every}")
        if not 0 < self.dup_iou <= 1:
            raise RodentsegError(f"--dup-iou must be in (0, 1], got {self.dup_iou}")
        if self.animals is not None and not 1 <= self.animals <= 255:
            raise RodentsegError(f"--animals must be between 1 and 255, got {self.animals}")


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks (0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 0.0


class ZeroShotTracker:
    """The per-frame logic of zero-shot annotation over a :class:`VideoSession`.

    Call :meth:`step` for frames 0, 1, 2, ... in order.

    Attributes:
        added: ``[(frame_idx, obj_id)]`` every object started (diagnostics, tests).
        dropped: ``[(frame_idx, obj_id, reason)]`` every object dropped.
    """

    def __init__(self, session: VideoSession, detector: Detector, opts: ZeroShotOptions):
        self.session, self.detector, self.opts = session, detector, opts
        self.tracker = Tracker(n_animals=opts.animals)
        self.added: list[tuple[int, int]] = []
        self.dropped: list[tuple[int, int, str]] = []
        self._absent: dict[int, int] = {}

    def _free_id(self) -> int | None:
        used = set(self.session.objects)
        return next((i for i in range(1, 256) if i not in used), None)

    def _drop(self, t: int, oid: int, reason: str, objs: dict) -> None:
        self.session.remove_object(oid, from_frame=t)
        objs.pop(oid, None)
        self._absent.pop(oid, None)
        self.dropped.append((t, oid, reason))

    def step(self, t: int, frame: np.ndarray) -> tuple[dict[int, ObjectMask], object]:
        """Process frame t; returns ``({obj_id: ObjectMask}, FrameMasks with track ids)``."""
        s, o = self.session, self.opts
        objs = s.track_frame(t, frame)
        if t % o.every == 0:
            boxes, _ = self.detector.detect(frame)
            boxes = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, s.width)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, s.height)
            for box in boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]:
                if o.animals is not None and len(s.objects) >= o.animals:
                    break
                oid = self._free_id()
                if oid is None:
                    break
                s.add_prompt(t, oid, box=box, frame=frame)
                new = s.details(t)[oid]
                if not new.mask.any() or any(mask_iou(new.mask, m.mask) >= o.dup_iou
                                             for m in objs.values()):
                    s.remove_object(oid, from_frame=t)  # the same animal, or nothing
                    continue
                objs[oid] = new
                self.added.append((t, oid))
        ids = sorted(objs, key=lambda i: (s.objects[i].origin, i))  # oldest first
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                if a in objs and b in objs and mask_iou(objs[a].mask, objs[b].mask) >= o.dup_iou:
                    self._drop(t, b, "duplicate", objs)
        for oid in list(objs):
            self._absent[oid] = 0 if objs[oid].mask.any() else self._absent.get(oid, 0) + 1
            if self._absent[oid] > o.max_lost:
                self._drop(t, oid, "lost", objs)
        keep = [i for i in sorted(objs) if objs[i].mask.any()]
        h, w = s.height, s.width
        masks = np.stack([objs[i].mask for i in keep]) if keep else np.zeros((0, h, w), bool)
        scores = np.array([objs[i].score for i in keep], np.float32)
        fm = self.tracker.update(t, masks, scores)
        by_track = {}  # the tracker may cut a blob holding two animals: match by overlap
        for tid, m in zip(fm.obj_ids, fm.masks):
            src = max(keep, key=lambda i: np.count_nonzero(objs[i].mask & m))
            by_track[int(tid)] = replace(objs[src], mask=m, prompted=False)
        return by_track, fm


def zero_shot_video(video: str | Path, out: str | Path, model: VideoModel, detector: Detector,
                    opts: ZeroShotOptions = ZeroShotOptions(), overwrite: bool = False,
                    progress: bool = True) -> Path:
    """Find, segment and track every animal of a video without prompts; write ``out/<stem>/``.

    The layout is that of ``rodentseg segment`` plus ``review.csv`` (see
    :mod:`rodentseg.annotate.oneshot`).

    Raises:
        RodentsegError: bad video, unwritable output, or a different finished result without
            ``overwrite``; nothing under ``out/<stem>/`` changes then.
    """
    video, out = Path(video), Path(out)
    t0 = time.perf_counter()
    signature = {"video_sha256": sha256_input(video), "weights_sha256": model.weights_sha256,
                 "detector": detector.name, "text": getattr(detector, "text", None),
                 "options": asdict(opts)}
    partial = prepare(out, video.stem, signature, overwrite)
    if partial is None:
        if progress:
            print(f"{video}: already done in {out / video.stem}; skipped")
        return out / video.stem
    with discard_on_error(partial), closing(model.start(video)) as session:
        zs = ZeroShotTracker(session, detector, opts)
        frames = session.frames
        ranker = ReviewRanker(frames.fps)
        n = 0
        with ResultWriter(partial, frames.width, frames.height, frames.fps,
                          opts.overlay) as writer:
            for t, frame in tqdm(frames.forward(), total=frames.n_frames, unit="frame",
                                 desc=video.name, disable=not progress, dynamic_ncols=True):
                objs, fm = zs.step(t, frame)
                writer.write(fm, frame if opts.overlay else None)
                ranker.update(t, objs)
                n += 1
        ranker.write(partial / "review.csv")
    total = time.perf_counter() - t0
    run = {"rodentseg_version": __version__, "command": "annotate", "mode": "zero-shot",
           "model": model.name, **signature, "video": str(video.resolve()),
           "fps": frames.fps, "frame_count": n, "width": frames.width, "height": frames.height,
           "device": str(model.device), "python": platform.python_version(),
           "objects_added": [list(a) for a in zs.added],
           "objects_dropped": [list(d) for d in zs.dropped],
           "timings": {"total_s": round(total, 3), "fps": round(n / total, 3)}}
    return publish(partial, run)
