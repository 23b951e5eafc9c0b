"""Which tracks are animals, when the number of animals is not given.

Without ``--animals`` the tracker (:class:`rodentseg.track.tracker.Tracker`) starts a track
for every mask nobody claims, so a speck, a dark fold outside the arena or a tail tip cut off
from its mouse for two frames becomes a "new animal" (on the 10,000-frame tracktor video: 11
tracks besides the mouse, each seen on 1 to 11 frames; 10 of them tail pieces within 8 px of
the mouse, one a dark fold outside the arena). :class:`Probation` decides, frame by frame and
with bounded delay, which tracks are animals (with ``--animals N`` the tracker keeps exactly
N identities and this is not used):

- **Probation.** A new track is on probation for its first ``probation`` frames. It becomes
  an animal once it has been found on ``ceil(min_found * probation)`` of them (the probation
  is cut to the video's length when the video is shorter) *and* its median area over those
  frames is at least ``min_area_ratio`` of the largest animal's (that animal's median over
  its own probation). This is SORT's ``min_hits`` (Bewley et al. 2016) and DeepLabCut's
  ``min_length`` for tracklets, counted over a window so that one missed frame does not
  reset it. A track that fails is judged again on ``probation`` frames from its next
  appearance, so an animal that flickered when it appeared is kept from its second window on.
- **Fragments and specks.** In each frame, the mask of a track that is not (or not yet) an
  animal joins the animal whose bounding box lies within ``merge_px`` pixels of its own if it
  is at most ``max_fragment`` of that animal's area (a tail tip: its pixels become the
  animal's in the label PNGs, ``masks.json`` and ``tracks.csv``); otherwise it is dropped.
  These two parameters mean what they mean in :func:`rodentseg.track.instances.split_instances`.
- **Identities.** Animals get ``track_id`` 1, 2, ... in the order they were confirmed; the
  tracker's own ids are not shown. A decision is never revised.

Streaming: a frame is handed on as soon as every track in it has been decided, so frames are
held back only while a track is on probation, at most ``probation`` frames (their masks, and
their pixels when an overlay is drawn: 0.9 MB a frame at 640x480). Memory does not depend on
the length of the video, and nothing is read twice. That is why the rule uses a fixed number
of frames and not a share of the video, which would need the whole video held back or a
second pass to redraw the overlay.

Trade-offs: a longer ``probation`` or a higher ``min_found`` drops longer-lived specks and
reflections, but holds more frames back and more often fails an animal on its first window
(one that enters the view half hidden and is found on few frames), whose masks in that window
are then merged or dropped; an animal found on fewer than ``ceil(min_found * probation)``
frames before the video ends is not reported. A higher ``min_area_ratio`` drops persistent small
blobs (a stain, a dropping) but may drop a small animal next to big ones (a pup with its
mother: use ``--animals`` then).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from rodentseg.track.events import TrackEvent
from rodentseg.types import FrameMasks, mask_box


@dataclass
class _Window:
    """One probation window of a track: frames ``start .. start + length - 1``."""

    start: int
    areas: list[int] = field(default_factory=list)  # area (px) on each frame it was found
    animal: bool | None = None  # None while undecided


@dataclass
class _Held:
    """A frame waiting for the decisions on its tracks."""

    fm: FrameMasks  # the tracker's output (tracker ids)
    frame: np.ndarray | None  # (H, W, 3) uint8 pixels for the overlay, or None
    windows: list[_Window | None]  # per mask: its track's window, None if already an animal


class Probation:
    """Keeps the tracks that are animals; merges or drops the others (module docstring).

    Args:
        probation: frames in a probation window (0: every track is an animal at once, as
            the tracker reports them).
        min_found: share of the window's frames on which the track must be found.
        min_area_ratio: smallest median area of a new animal, as a share of the largest
            animal's median area.
        merge_px: a mask that is no animal joins an animal whose box is within this many
            pixels of its own ...
        max_fragment: ... and only if its area is at most this share of the animal's.
        n_frames: frames of the video, when known; a shorter video gets a shorter window.

    Raises:
        ValueError: a negative ``probation`` or a ``min_found`` outside (0, 1].
    """

    def __init__(self, probation: int = 30, min_found: float = 0.5,
                 min_area_ratio: float = 0.25, merge_px: float = 12.0,
                 max_fragment: float = 0.1, n_frames: int | None = None):
        if probation < 0 or not 0 < min_found <= 1:
            raise ValueError(f"need probation >= 0 and 0 < min_found <= 1, got {probation} "
                             f"and {min_found}")
        self.length = min(probation, n_frames) if n_frames else probation
        self.need = math.ceil(min_found * self.length)
        self.min_area_ratio, self.merge_px, self.max_fragment = (min_area_ratio, merge_px,
                                                                 max_fragment)
        self.ids: dict[int, int] = {}  # tracker id -> track_id of an animal
        self.merged = 0  # masks of non-animals joined to an animal
        self.dropped = 0  # masks of non-animals dropped
        self._windows: dict[int, _Window] = {}  # tracker id -> its open window
        self._held: deque[_Held] = deque()
        self._ref_area = 0.0  # largest median area of an animal
        self._last_id = 0  # largest tracker id seen

    @property
    def animals(self) -> int:
        """Number of tracks confirmed as animals so far."""
        return len(self.ids)

    @property
    def rejected(self) -> int:
        """Tracker tracks seen that are (so far) no animal."""
        return self._last_id - len(self.ids)

    def push(self, fm: FrameMasks, frame: np.ndarray | None = None
             ) -> list[tuple[FrameMasks, np.ndarray | None]]:
        """Take the tracker's output for the next frame; return the frames now decided.

        Args:
            fm: :meth:`Tracker.update`'s result (ids = tracker ids), frames in increasing order.
            frame: (H, W, 3) uint8 RGB pixels of the frame (kept with it for the overlay), or
                None.

        Returns:
            ``(masks, frame)`` of every frame whose tracks are all decided, oldest first:
            masks with ``obj_ids`` = animal ``track_id`` s (ordered), fragments merged,
            everything else removed.
        """
        f = fm.frame_idx
        windows = []
        for oid, m in zip(fm.obj_ids.tolist(), fm.masks):
            self._last_id = max(self._last_id, oid)
            if self.length == 0 and oid not in self.ids:
                self.ids[oid] = len(self.ids) + 1
            if oid in self.ids:
                windows.append(None)
                continue
            w = self._windows.get(oid)
            if w is None:
                w = self._windows[oid] = _Window(f)
            w.areas.append(int(np.count_nonzero(m)))
            windows.append(w)
        self._held.append(_Held(fm, frame, windows))
        self._decide(f, final=False)
        return self._release()

    def flush(self) -> list[tuple[FrameMasks, np.ndarray | None]]:
        """Decide the tracks still on probation at the end of the video; return the frames
        still held (as :meth:`push`)."""
        self._decide(None, final=True)
        return self._release()

    def events(self, events: list[TrackEvent]) -> list[TrackEvent]:
        """The tracker's review log in animal ``track_id`` s; events of non-animals left out."""
        out = []
        for e in events:
            a, b = self.ids.get(e.track_a), self.ids.get(e.track_b) if e.track_b else 0
            if a is not None and b is not None:
                out.append(dataclasses.replace(e, track_a=a, track_b=b))
        return out

    def _decide(self, f: int | None, final: bool) -> None:
        """Close the windows that are decided after frame ``f`` (all of them when ``final``)."""
        found = []
        for oid, w in list(self._windows.items()):
            if len(w.areas) >= self.need:
                found.append((float(np.median(w.areas)), oid, w))
            elif final or len(w.areas) + (w.start + self.length - 1 - f) < self.need:
                w.animal = False  # cannot reach ``need`` within its window
                del self._windows[oid]
        for area, oid, w in sorted(found, key=lambda t: (-t[0], t[1])):
            w.animal = area >= self.min_area_ratio * self._ref_area
            if w.animal:
                self.ids[oid] = len(self.ids) + 1
                self._ref_area = max(self._ref_area, area)
            del self._windows[oid]

    def _release(self) -> list[tuple[FrameMasks, np.ndarray | None]]:
        out = []
        while self._held and all(w is None or w.animal is not None for w in self._held[0].windows):
            h = self._held.popleft()
            out.append((self._compose(h), h.frame))
        return out

    def _compose(self, h: _Held) -> FrameMasks:
        """The frame's masks with animal ids, fragments merged and the rest dropped."""
        fm = h.fm
        keep = [k for k, w in enumerate(h.windows) if w is None or w.animal]
        ids = np.array([self.ids[int(fm.obj_ids[k])] for k in keep], np.int64)
        if len(keep) == len(fm) and (np.diff(ids) > 0).all():  # the usual frame: no copy
            return FrameMasks(fm.frame_idx, ids, fm.masks, fm.scores)
        masks, scores = fm.masks[keep], fm.scores[keep].copy()
        others = [k for k in range(len(fm)) if k not in keep]
        if others:
            self._join(fm, others, masks, scores)
        order = np.argsort(ids, kind="stable")
        return FrameMasks(fm.frame_idx, ids[order], masks[order], scores[order])

    def _join(self, fm: FrameMasks, others: list[int], masks: np.ndarray,
              scores: np.ndarray) -> None:
        """Merge the masks ``others`` of ``fm`` into the animals ``masks`` (in place) where
        they are fragments of them; count the rest as dropped."""
        boxes = np.array([mask_box(m) for m in masks]).reshape(-1, 4)  # y0, y1, x0, x1
        areas = np.array([np.count_nonzero(m) for m in masks], float)
        for k in others:
            m = fm.masks[k]
            box = mask_box(m)
            if box is None or not len(masks):
                self.dropped += 1
                continue
            y0, y1, x0, x1 = box
            dy = np.maximum(np.maximum(boxes[:, 0] - y1, y0 - boxes[:, 1]), 0)
            dx = np.maximum(np.maximum(boxes[:, 2] - x1, x0 - boxes[:, 3]), 0)
            gap = np.hypot(dx, dy)
            j = int(gap.argmin())
            area = float(np.count_nonzero(m))
            if gap[j] <= self.merge_px and area <= self.max_fragment * areas[j]:
                scores[j] = (scores[j] * areas[j] + fm.scores[k] * area) / (areas[j] + area)
                masks[j] |= m
                areas[j] += area
                self.merged += 1
            else:
                self.dropped += 1
