"""A promptable video session over a SAM-family model: prompt, propagate, correct.

Set up once, prompt cheaply, propagate as a generator of ``(frame_idx, obj_ids, masks)`` (the
SAM 2 video-predictor workflow) with a typed session and three changes to the library's
behaviour:

**Bounded memory.** Frames are decoded one at a time (:class:`FrameSource`) and fed to the
transformers streaming mode (``model(inference_session=s, frame=pixel_values, frame_idx=t)``).
After each frame the session drops what the model will not read again: the preprocessed frame
(its vision features stay in a one-frame cache shared by all objects, so the image encoder runs
once per frame whatever the number of animals), non-prompted outputs more than
``memory_window`` frames behind (SAM 2 reads the last ``num_maskmem - 1`` = 6 mask memories and
15 object pointers, plus every prompted frame) and every output's full-resolution mask logits.
Masks are identical to the unpruned session's (tested); its size no longer grows with the video.

**Corrections stick.** Every prompt, the first or a correction, is a *prompted frame*: its
mask comes from that prompt alone (points/box through the decoder without memory, a mask as
given) and is kept as a conditioning memory. Propagation flows outward from the object's first
prompted frame (its *origin*): a frame after the origin takes its mask from the nearest prompted
frame at or before it, a frame before the origin from the nearest one at or after it. So a
correction at frame k re-propagates from k, away from the origin, and changes nothing on the
other side of k; a later pass from an earlier frame stops at k's territory (frames past k keep
k's propagation, which is recomputed identically).

**One object per transformers session.** Each object has its own inference session (all share
the vision-feature cache), so objects can be added, corrected and removed independently.

Results go to a :class:`MaskStore` on disk (one small file per frame), from which the result
folder is written in frame order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm import tqdm

from rodentseg.annotate.adapter import VideoModel
from rodentseg.annotate.frames import FrameSource
from rodentseg.annotate.preprocess import stability_score
from rodentseg.annotate.prompts import Prompt
from rodentseg.annotate.store import MaskStore, ObjectMask
from rodentseg.errors import RodentsegError
from rodentseg.types import FrameMasks

Direction = Literal["forward", "backward", "both"]


@dataclass
class TrackedObject:
    """One object of a session.

    Attributes:
        obj_id: the id given with its first prompt.
        origin: frame of its first prompt; propagation flows outward from it.
        prompts: ``{frame_idx: Prompt}``, the prompted frames (first prompt and corrections).
        state: its transformers inference session (streaming mode).
        segment: the prompted frame whose propagation ``state`` holds now (None: none).
    """

    obj_id: int
    origin: int
    state: object
    prompts: dict[int, Prompt] = field(default_factory=dict)
    segment: int | None = None

    def owner(self, t: int) -> int:
        """The prompted frame frame ``t`` takes its mask from (see the module docstring)."""
        if t >= self.origin:
            return max(a for a in self.prompts if self.origin <= a <= t)
        return min(a for a in self.prompts if t <= a <= self.origin)


class VideoSession:
    """Annotate one video with a SAM-family model: prompts, propagation and corrections.

    Args:
        model: a loaded video model (:func:`rodentseg.annotate.load_video_model`).
        video: path of a video FFmpeg reads, or a :class:`FrameSource`.
        prune: drop model state that will not be read again (bounded memory). ``False`` keeps
            the library's behaviour (every frame's outputs kept), for comparison.
        store_root: folder for the temporary per-frame results (default: system temp).

    Use as a context manager, or call :meth:`close`, to delete the temporary results.

    Raises:
        RodentsegError: the video cannot be read.
    """

    def __init__(self, model: VideoModel, video: str | Path | FrameSource, prune: bool = True,
                 store_root: str | Path | None = None):
        self.model = model
        self.frames = video if isinstance(video, FrameSource) else FrameSource(video)
        self.height, self.width = self.frames.height, self.frames.width
        self.n_frames = self.frames.n_frames
        self.prune = prune
        self.store = MaskStore(self.height, self.width, store_root)
        self.objects: dict[int, TrackedObject] = {}
        self._cache = model.new_state(self.height, self.width).cache
        self.model_calls = 0

    # ----------------------------------------------------------------- prompts
    @property
    def obj_ids(self) -> list[int]:
        """Ids of the session's objects, ascending."""
        return sorted(self.objects)

    def add_prompt(self, frame_idx: int, obj_id: int, points=None, labels=None, box=None,
                   mask=None, frame: np.ndarray | None = None) -> FrameMasks:
        """Prompt one object on one frame; the frame becomes a prompted frame of the object.

        Args:
            frame_idx: 0-based frame index.
            obj_id: 1..255; a new id starts a new object, a known id adds a prompted frame
                (a correction, see :meth:`correct`). Prompting a frame again replaces its prompt.
            points: (P, 2) (x, y) frame pixels, with ``labels`` (P,) 1 = object, 0 = background
                (default all 1). Give the full set for the frame: earlier clicks on it are
                replaced.
            box: (4,) ``x0, y0, x1, y1`` frame pixels (may be combined with points).
            mask: (H, W) bool at frame resolution (alone): stored as the object's mask on
                this frame exactly as given (the model reads it at its own resolution).
            frame: the frame's (H, W, 3) uint8 RGB pixels if at hand (saves decoding it).

        Returns:
            All stored masks of that frame (ids ascending).

        Raises:
            RodentsegError: a frame outside the video, or a bad prompt (see :meth:`Prompt.make`).
        """
        self.frames._check(frame_idx)
        prompt = Prompt.make(frame_idx, obj_id, points, labels, box, mask, self.height, self.width)
        obj = self.objects.get(prompt.obj_id)
        if obj is None:
            state = self.model.new_state(self.height, self.width)
            state.cache = self._cache
            obj = TrackedObject(prompt.obj_id, frame_idx, state)
            self.objects[obj.obj_id] = obj
        obj.prompts[frame_idx] = prompt
        if frame is None:
            frame = self.frames.frame(frame_idx)
        result = self._run_prompt(obj, prompt, self._pixels(frame))
        self.store.update(frame_idx, {obj.obj_id: result})
        return self.store.frame_masks(frame_idx)

    def correct(self, frame_idx: int, obj_id: int, points=None, labels=None, box=None,
                mask=None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Correct an object on frame k and re-propagate from k, away from its origin.

        The prompt is recorded at once (:meth:`add_prompt`); the returned generator runs the
        re-propagation of this object only, from k to the end of the video (k after the
        origin), to frame 0 (k before it), or both ways (k = origin). Frames on the other side
        of k are not touched. Iterate it to the end (e.g. ``for _ in session.correct(...)``).

        Raises:
            RodentsegError: ``obj_id`` is not an object of the session, or a bad prompt.
        """
        if obj_id not in self.objects:
            raise RodentsegError(f"cannot correct object {obj_id}: the session has objects "
                                 f"{self.obj_ids}; use add_prompt to start a new one")
        self.add_prompt(frame_idx, obj_id, points, labels, box, mask)
        origin = self.objects[obj_id].origin
        direction = "forward" if frame_idx > origin else "backward" if frame_idx < origin \
            else "both"
        return self.propagate(frame_idx, direction, obj_ids=[obj_id])

    def remove_object(self, obj_id: int, from_frame: int = 0) -> None:
        """Forget an object; its stored masks on frames >= ``from_frame`` are deleted."""
        self.objects.pop(obj_id, None)
        for t in self.store.frames:
            if t >= from_frame:
                self.store.update(t, {obj_id: None})

    # ------------------------------------------------------------- propagation
    def propagate(self, start: int | None = None, direction: Direction = "both",
                  obj_ids: Iterable[int] | None = None,
                  progress: bool = False) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Propagate prompts through the video, one decoded frame at a time.

        For each object, a frame is (re)computed when its mask comes from a prompted frame that
        this pass reaches: forward from ``start``, frames after the origin whose prompted frame
        is at or after ``start``; backward from ``start``, frames before the origin whose
        prompted frame is at or before ``start``. Other frames keep their stored masks.

        Args:
            start: first frame; default the earliest origin (forward) and the latest origin
                (backward).
            direction: ``forward`` (increasing frame index), ``backward`` or ``both``
                (forward first).
            obj_ids: only these objects (default all).
            progress: show a progress bar.

        Yields:
            ``(frame_idx, obj_ids (N,) int64, masks (N, H, W) bool)``: every stored object of
            each frame this pass computed, ids ascending.

        Raises:
            RodentsegError: no object has been prompted, an unknown direction or obj_id.
        """
        if direction not in ("forward", "backward", "both"):
            raise RodentsegError(f"direction must be forward, backward or both, got {direction!r}")
        ids = self.obj_ids if obj_ids is None else list(obj_ids)
        unknown = [o for o in ids if o not in self.objects]
        if not ids or unknown:
            raise RodentsegError(f"nothing to propagate: prompt an object first (add_prompt); "
                                 f"session objects {self.obj_ids}, asked for {ids}")
        objs = [self.objects[o] for o in ids]
        if direction in ("forward", "both"):
            s = min(o.origin for o in objs) if start is None else int(start)
            yield from self._sweep(objs, s, reverse=False, progress=progress)
        if direction in ("backward", "both"):
            s = max(o.origin for o in objs) if start is None else int(start)
            yield from self._sweep(objs, s, reverse=True, progress=progress)

    def track_frame(self, frame_idx: int, frame: np.ndarray) -> dict[int, ObjectMask]:
        """Advance every object whose origin is at or before ``frame_idx`` by one frame.

        For online, forward-only use (zero-shot): call it for consecutive frames. Returns
        ``{obj_id: ObjectMask}`` of the objects on that frame (stored as well).
        """
        objs = [o for o in self.objects.values() if o.origin <= frame_idx]
        out = self._step(objs, frame_idx, frame, reverse=False)
        stored = self.store.update(frame_idx, {k: v for k, v in out.items() if v is not None})
        return {o.obj_id: stored[o.obj_id] for o in objs if o.obj_id in stored}

    def _active(self, obj: TrackedObject, t: int, start: int, reverse: bool) -> bool:
        if not reverse:
            return t >= obj.origin and obj.owner(t) >= start
        return t < obj.origin and obj.owner(t) <= start

    def _first_frame(self, obj: TrackedObject, start: int, reverse: bool) -> int | None:
        """The first frame of the sweep on which ``obj`` is active (None: never)."""
        if not reverse:
            later = [a for a in obj.prompts if a >= max(start, obj.origin)]
            return min(later) if later else None
        earlier = [a for a in obj.prompts if a <= min(start, obj.origin)]
        if not earlier or obj.origin == 0:
            return None
        a = max(earlier)
        return obj.origin - 1 if a == obj.origin else a

    def _sweep(self, objs: list[TrackedObject], start: int, reverse: bool,
               progress: bool) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        firsts = [f for f in (self._first_frame(o, start, reverse) for o in objs) if f is not None]
        if not firsts:
            return
        if reverse:
            first = max(firsts)
            frames, total = self.frames.backward(first), first + 1
        else:
            first = min(firsts)
            frames, total = self.frames.forward(first), self.n_frames - first
        bar = tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True,
                   desc="propagate " + ("backward" if reverse else "forward"))
        try:
            for t, frame in frames:
                bar.update(1)
                active = [o for o in objs if self._active(o, t, start, reverse)]
                if not active:
                    continue
                out = self._step(active, t, frame, reverse)
                merged = self.store.update(t, {k: v for k, v in out.items() if v is not None})
                ids = sorted(merged)
                masks = (np.stack([merged[o].mask for o in ids]) if ids
                         else np.zeros((0, self.height, self.width), bool))
                yield t, np.array(ids, np.int64), masks
        finally:
            bar.close()

    def _step(self, objs: list[TrackedObject], t: int, frame: np.ndarray,
              reverse: bool) -> dict[int, ObjectMask | None]:
        """Run the model on frame t for these objects (None for prompted frames: kept as is)."""
        out: dict[int, ObjectMask | None] = {}
        pixels = None
        for obj in objs:
            own = obj.owner(t)
            if own == t:  # a prompted frame: its mask is the prompt's; a new segment starts
                self._reset(obj, t)
                out[obj.obj_id] = None
                continue
            if obj.segment != own:
                self._reset(obj, own)
            if pixels is None:
                pixels = self._pixels(frame)
            with torch.inference_mode(), self.model.autocast():
                res = self.model.model(inference_session=obj.state, frame=pixels, frame_idx=t,
                                       reverse=reverse)
            self.model_calls += 1
            out[obj.obj_id] = self._result(res)
            self._prune(obj, t, reverse)
        return out

    # ------------------------------------------------------------------ model
    def _pixels(self, frame: np.ndarray) -> torch.Tensor:
        return self.model.pre.pixel_values(frame).to(self.model.device)

    def _run_prompt(self, obj: TrackedObject, p: Prompt, pixels: torch.Tensor) -> ObjectMask:
        """The prompted frame's mask, from the prompt alone, kept as a conditioning memory."""
        s, t, pre = obj.state, p.frame_idx, self.model.pre
        i = s.obj_id_to_idx(obj.obj_id)
        s.frames_tracked_per_obj[i].pop(t, None)  # so the model treats t as a prompted frame
        s.output_dict_per_obj[i]["cond_frame_outputs"].pop(t, None)
        s.output_dict_per_obj[i]["non_cond_frame_outputs"].pop(t, None)
        if p.mask is not None:
            s.remove_point_inputs(i, t)
            s.add_mask_inputs(i, t, pre.mask(p.mask))
        else:
            coords, labels = [], []
            if p.box is not None:  # box corners are points with labels 2 and 3 (SAM 2)
                coords.append(pre.boxes(p.box, self.height, self.width).reshape(2, 2))
                labels.append(torch.tensor([2, 3], dtype=torch.int32))
            if p.points is not None:
                coords.append(pre.points(p.points, self.height, self.width))
                labels.append(torch.from_numpy(p.labels))
            s.remove_mask_inputs(i, t)
            s.add_point_inputs(i, t, {"point_coords": torch.cat(coords)[None, None],
                                      "point_labels": torch.cat(labels)[None, None]})
        s.obj_with_new_inputs = [obj.obj_id]
        with torch.inference_mode(), self.model.autocast():
            res = self.model.model(inference_session=s, frame=pixels, frame_idx=t)
        self.model_calls += 1
        s.remove_mask_inputs(i, t)  # consumed: an S x S float mask need not stay
        obj.segment = None
        self._prune(obj, t, reverse=False)
        result = self._result(res)
        if p.mask is not None:  # the user's mask is the answer on its frame, pixel for pixel
            result.mask = p.mask.copy()
            result.score = result.stability = 1.0
        result.prompted = True
        return result

    def _result(self, res) -> ObjectMask:
        low = res.pred_masks[:, 0].float()  # (1, h, w) logits of the one object
        logits = self.model.pre.logits_to_frame(low, self.height, self.width)[0]
        score = torch.sigmoid(res.object_score_logits.float().reshape(-1)[0])
        return ObjectMask(mask=(logits > 0).cpu().numpy(), score=float(score),
                          stability=float(stability_score(low)[0]))

    def _reset(self, obj: TrackedObject, anchor: int) -> None:
        """Start the propagation of prompted frame ``anchor`` from a clean history."""
        s = obj.state
        for d in s.output_dict_per_obj.values():
            d["non_cond_frame_outputs"].clear()
        for d in s.frames_tracked_per_obj.values():
            d.clear()
        if s.processed_frames:
            s.processed_frames.clear()
        obj.segment = anchor

    def _prune(self, obj: TrackedObject, t: int, reverse: bool) -> None:
        if not self.prune:
            return
        s, w = obj.state, self.model.memory_window
        if s.processed_frames:
            s.processed_frames.clear()  # its vision features stay in the shared cache
        for d, tracked in zip(s.output_dict_per_obj.values(), s.frames_tracked_per_obj.values()):
            nc = d["non_cond_frame_outputs"]
            for f in [f for f in nc if (f > t + w if reverse else f < t - w)]:
                del nc[f]
            for f in [f for f in tracked if (f > t + w if reverse else f < t - w)]:
                del tracked[f]
            for out in (*nc.values(), *d["cond_frame_outputs"].values()):
                out.pop("high_res_masks", None)

    # ------------------------------------------------------------ consistency
    def check_consistency(self, progress: bool = False) -> int:
        """Propagate every run of frames again the opposite way; store the agreement.

        See :func:`rodentseg.annotate.consistency.check_consistency`. Returns the number of
        (frame, object) pairs checked.
        """
        from rodentseg.annotate.consistency import check_consistency

        return check_consistency(self, progress)

    # ---------------------------------------------------------------- results
    def results(self, frame_idx: int) -> FrameMasks:
        """The stored masks of a frame (ids ascending, empty masks left out)."""
        return self.store.frame_masks(frame_idx)

    def details(self, frame_idx: int) -> dict[int, ObjectMask]:
        """``{obj_id: ObjectMask}`` of a frame, with scores and stability."""
        return self.store.get(frame_idx)

    def close(self) -> None:
        """Delete the temporary results."""
        self.store.close()

    def __enter__(self) -> VideoSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
