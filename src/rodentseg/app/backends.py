"""Clicks and propagation for the app, over either kind of model.

Both backends keep each object's clicks per frame (:class:`~rodentseg.app.prompting.FramePrompt`)
and their results in a :class:`rodentseg.annotate.store.MaskStore` (per frame, per object:
mask, score, stability, prompted), so the app renders, ranks and saves them the same way.

- :class:`SegmenterBackend`, for ``rodentseg-tiny`` (not promptable): a click selects from the
  model's prediction on that frame (:mod:`rodentseg.app.prompting`); propagation predicts each
  frame, splits it into animals (:func:`rodentseg.track.instances.split_instances`, as
  ``rodentseg segment --animals N`` does) and keeps the ids with
  :class:`rodentseg.track.tracker.Tracker` (overlap, motion, appearance), seeded with the
  objects' masks on the start frame. A frame with clicks on the way takes its masks from the
  clicks and re-seeds the tracker (its velocity starts again from zero).
- :class:`SamBackend`, for SAM-family video models: clicks are prompts of a
  :class:`rodentseg.annotate.session.VideoSession`; propagation runs forward from each object's
  latest prompted frame at or before the start frame, up to the bound.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from rodentseg.annotate.frames import FrameSource
from rodentseg.annotate.store import MaskStore, ObjectMask
from rodentseg.app.prompting import FramePrompt, masks_from_prompts, stability_from_prob
from rodentseg.errors import RodentsegError
from rodentseg.models import Segmenter
from rodentseg.track.instances import split_instances
from rodentseg.track.tracker import Tracker

OnFrame = Callable[[int], None]


class SegmenterBackend:
    """Clicks and propagation with the default (not promptable) segmenter.

    Args:
        model: a loaded :class:`rodentseg.models.Segmenter`.
        source: the opened video.
        work_dir: folder for the per-frame results (a temporary folder is made inside it).
        min_area: smallest animal in pixels.
        snap_px: how far a positive click may be from the predicted animal it selects.
        cache_frames: probability maps kept in memory (frames clicked again are not re-run).

    :meth:`prefetch` runs the model on the frame just shown in a background thread, so that
    the first click on it usually finds the prediction ready (the user's look at the frame
    overlaps the model call); a click before it is done waits for it.
    """

    kind = "segmenter"

    def __init__(self, model: Segmenter, source: FrameSource, work_dir: str | Path,
                 min_area: int = 30, snap_px: int = 10, cache_frames: int = 8):
        self.model, self.source = model, source
        self.min_area, self.snap_px = min_area, snap_px
        self.store = MaskStore(source.height, source.width, work_dir)
        self.prompts: dict[int, dict[int, FramePrompt]] = {}  # frame_idx -> obj_id -> clicks
        self._probs: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = cache_frames
        self._cache_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rodentseg-prefetch")
        self._pending: dict[int, Future] = {}
        self.model_calls = 0

    def _predict(self, frame_idx: int, frame: np.ndarray) -> np.ndarray:
        p = self.model.predict(frame[None])[0]
        with self._cache_lock:
            self.model_calls += 1
            self._probs[frame_idx] = p
            while len(self._probs) > self._cache_frames:
                self._probs.popitem(last=False)
        return p

    def prefetch(self, frame_idx: int, frame: np.ndarray) -> None:
        """Start predicting a frame ((H, W, 3) uint8 RGB) in the background; a prefetch of
        another frame that has not started yet is cancelled."""
        with self._cache_lock:
            if frame_idx in self._probs or frame_idx in self._pending:
                return
            for t in [t for t, f in self._pending.items() if f.cancel() or f.done()]:
                del self._pending[t]
            self._pending[frame_idx] = self._pool.submit(self._predict, frame_idx, frame)

    def prob(self, frame_idx: int, frame: np.ndarray) -> np.ndarray:
        """(H, W) float32 rodent probability of a frame ((H, W, 3) uint8 RGB), cached."""
        with self._cache_lock:
            if frame_idx in self._probs:
                self._probs.move_to_end(frame_idx)
                return self._probs[frame_idx]
            pending = self._pending.pop(frame_idx, None)
        if pending is not None and not pending.cancelled():
            return pending.result()
        return self._predict(frame_idx, frame)

    def _object_mask(self, prob: np.ndarray, mask: np.ndarray, prompted: bool) -> ObjectMask:
        return ObjectMask(mask, float(prob[mask].mean()), stability_from_prob(prob, mask),
                          prompted)

    def set_prompt(self, frame_idx: int, frame: np.ndarray, obj_id: int,
                   prompt: FramePrompt) -> list[str]:
        """Replace an object's clicks on a frame (an empty prompt removes them) and recompute
        the frame's masks. Returns notes for the user."""
        on_frame = self.prompts.setdefault(frame_idx, {})
        if prompt.empty():
            on_frame.pop(obj_id, None)
            self.store.update(frame_idx, {obj_id: None})
        else:
            on_frame[obj_id] = prompt
        return self._recompute(frame_idx, frame)

    def _recompute(self, t: int, frame: np.ndarray,
                   keep: dict[int, np.ndarray] | None = None) -> list[str]:
        prob = self.prob(t, frame)
        prompts = self.prompts.get(t, {})
        stored = self.store.get(t)
        if keep is None:
            keep = {o: om.mask for o, om in stored.items() if o not in prompts}
        masks, notes = masks_from_prompts(prob, prompts, keep, self.model.pre.threshold,
                                          self.min_area, self.snap_px)
        update: dict[int, ObjectMask | None] = {o: None for o in stored}
        for oid, m in masks.items():
            update[oid] = self._object_mask(prob, m, oid in prompts) if m.any() else None
        self.store.update(t, update)
        return notes

    def _seed(self, t: int, frame: np.ndarray) -> tuple[Tracker | None, list[int]]:
        objs = {o: om for o, om in self.store.get(t).items() if om.mask.any()}
        ids = sorted(objs)
        if not ids:
            return None, []
        tracker = Tracker(n_animals=len(ids))  # track_id k <-> ids[k - 1] (creation order)
        tracker.update(t, np.stack([objs[o].mask for o in ids]),
                       np.array([objs[o].score for o in ids], np.float32), frame=frame)
        return tracker, ids

    def propagate(self, start: int, n_frames: int, on_frame: OnFrame | None = None) -> int:
        """Follow every object on frame ``start`` through the next ``n_frames`` frames.

        Returns:
            The number of frames computed (fewer at the end of the video).

        Raises:
            RodentsegError: no object has a mask on ``start``.
        """
        frame = self.source.frame(start)
        tracker, ids = self._seed(start, frame)
        if tracker is None:
            raise RodentsegError(f"nothing to propagate from frame {start}: click on an animal "
                                 "on this frame first (or go to a frame that has masks)")
        stop = min(start + int(n_frames), self.source.n_frames - 1)
        thr = self.model.pre.threshold
        done = 0
        for t, frame in self.source.forward(start + 1, stop + 1):
            prob = self.prob(t, frame)
            inst = split_instances(prob, thr, len(ids), self.min_area,
                                   priors=tracker.predicted_centroids())
            fm = tracker.update(t, inst.masks, inst.scores, frame=frame)
            found = {ids[tid - 1]: m for tid, m in zip(fm.obj_ids, fm.masks) if m.any()}
            if self.prompts.get(t):  # the user's clicks on this frame win; then start again
                self._recompute(t, frame, keep={o: m for o, m in found.items()
                                                if o not in self.prompts[t]})
                tracker, ids = self._seed(t, frame)
            else:
                update = {o: None for o in self.store.get(t)}
                update.update({o: self._object_mask(prob, m, False) for o, m in found.items()})
                self.store.update(t, update)
            done += 1
            if on_frame is not None:
                on_frame(t)
            if tracker is None:
                break
        return done

    def close(self) -> None:
        """Stop prefetching and delete the per-frame results."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.store.close()


class SamBackend:
    """Clicks and propagation with a SAM-family video model (a :class:`VideoSession`).

    Args:
        model: a loaded :class:`rodentseg.annotate.adapter.VideoModel`.
        source: the opened video.
        work_dir: folder for the session's per-frame results.
    """

    kind = "sam"

    def __init__(self, model, source: FrameSource, work_dir: str | Path):
        from rodentseg.annotate.session import VideoSession

        self.session = VideoSession(model, source, store_root=work_dir)
        self.source = source
        self.store: MaskStore = self.session.store
        self.prompts: dict[int, dict[int, FramePrompt]] = {}

    @property
    def model_calls(self) -> int:
        return self.session.model_calls

    def set_prompt(self, frame_idx: int, frame: np.ndarray, obj_id: int,
                   prompt: FramePrompt) -> list[str]:
        """Replace an object's clicks on a frame. Removing every click of an object's first
        prompted frame removes the object (all its masks and clicks)."""
        on_frame = self.prompts.setdefault(frame_idx, {})
        if not prompt.empty():
            on_frame[obj_id] = prompt
            pts, labels, box = prompt.arrays()
            self.session.add_prompt(frame_idx, obj_id, points=pts, labels=labels, box=box,
                                    frame=frame)
            return []
        on_frame.pop(obj_id, None)
        obj = self.session.objects.get(obj_id)
        if obj is None:
            return []
        if frame_idx == obj.origin:
            self.session.remove_object(obj_id)
            for clicks in self.prompts.values():
                clicks.pop(obj_id, None)
            return [f"animal {obj_id} removed (its first clicked frame has no clicks left)"]
        obj.prompts.pop(frame_idx, None)
        obj.segment = None
        self.store.update(frame_idx, {obj_id: None})
        return []

    def propagate(self, start: int, n_frames: int, on_frame: OnFrame | None = None) -> int:
        """Propagate every object up to frame ``start + n_frames``, each from its latest
        prompted frame at or before ``start`` (frames between that one and ``start`` are
        computed again, identically). Returns the frames after ``start`` that the last sweep
        computed.

        Raises:
            RodentsegError: no object has a prompt at or before ``start``.
        """
        stop = min(start + int(n_frames), self.source.n_frames - 1)
        anchors: dict[int, list[int]] = {}
        for oid, obj in self.session.objects.items():
            before = [a for a in obj.prompts if a <= start]
            if before:
                anchors.setdefault(max(before), []).append(oid)
        if not anchors:
            raise RodentsegError(f"nothing to propagate from frame {start}: click on an animal "
                                 "on this frame or an earlier one first")
        done = 0
        for anchor, ids in sorted(anchors.items()):
            gen = self.session.propagate(anchor, "forward", obj_ids=ids)
            done = 0
            try:
                for t, _, _ in gen:  # the sweep stores frame t before yielding it
                    done += t > start
                    if on_frame is not None:
                        on_frame(t)
                    if t >= stop:
                        break
            finally:
                gen.close()
        return done

    def close(self) -> None:
        """Delete the session's per-frame results."""
        self.session.close()
