"""The tracker's review log: the frames where an identity may have been swapped.

Kinds of event:

- ``uncertain``: two tracks that both matched a mask in consecutive frames, where giving each
  the other's mask would have cost little more (``cost_margin`` below the tracker's
  ``uncertain_margin``). Consecutive frames of one pair form one event; ``frame_idx`` is the
  frame of the smallest margin.
- ``merge``: animals whose masks ran into one blob (known count only); the event spans the
  frames of the merge and lists two of the tracks in it.
- ``relink``: a track that had no mask of its own gets one again: always after a merge, and
  after a loss when another track nearly took that mask. ``cost_margin`` is how much cheaper
  this choice was than exchanging masks with the nearest competing track (empty when no
  other track competed). A small margin after a merge is the likeliest place for a swap.

The log is bounded: at most ``max_events`` closed events are kept (the oldest are dropped and
counted in :attr:`EventLog.dropped`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

SWAP_COLUMNS = ["frame_idx", "kind", "track_a", "track_b", "cost_margin", "first_frame",
                "last_frame"]


@dataclass
class TrackEvent:
    """One entry of ``swaps.csv``.

    Attributes:
        frame_idx: frame to look at (smallest margin, merge start, or the re-link).
        kind: ``uncertain``, ``merge`` or ``relink``.
        track_a, track_b: the track ids concerned (``track_b`` 0 when there is none).
        cost_margin: extra assignment cost of the alternative (a dimensionless sum of the
            tracker's cost terms); NaN when there was no alternative.
        first_frame, last_frame: the frames the event spans (inclusive).
    """

    frame_idx: int
    kind: str
    track_a: int
    track_b: int
    cost_margin: float
    first_frame: int
    last_frame: int

    def row(self) -> list:
        """The ``swaps.csv`` row (:data:`SWAP_COLUMNS`)."""
        margin = "" if math.isnan(self.cost_margin) else round(self.cost_margin, 4)
        return [self.frame_idx, self.kind, self.track_a, self.track_b, margin,
                self.first_frame, self.last_frame]


class EventLog:
    """Collects :class:`TrackEvent` s, joining consecutive frames of one pair into one event.

    Args:
        max_events: closed events kept; older ones are dropped (and counted).
    """

    def __init__(self, max_events: int = 10_000):
        self._closed: deque[TrackEvent] = deque(maxlen=max_events)
        self._open: dict[tuple[str, int, int], TrackEvent] = {}
        self.dropped = 0

    def _close(self, ev: TrackEvent) -> None:
        if len(self._closed) == self._closed.maxlen:
            self.dropped += 1
        self._closed.append(ev)

    def note(self, frame_idx: int, kind: str, a: int, b: int, margin: float = math.nan) -> None:
        """Record ``kind`` for tracks ``a``/``b`` at ``frame_idx``; extends the pair's open
        event when it was also seen at an earlier frame and not yet closed."""
        key = (kind, min(a, b), max(a, b)) if b else (kind, a, 0)
        ev = self._open.get(key)
        if ev is not None:
            ev.last_frame = frame_idx
            if not math.isnan(margin) and not margin >= ev.cost_margin:
                ev.cost_margin, ev.frame_idx = margin, frame_idx
            return
        self._open[key] = TrackEvent(frame_idx, kind, a, b, margin, frame_idx, frame_idx)

    def end_frame(self, frame_idx: int) -> None:
        """Close the open events that were not extended at ``frame_idx``."""
        for key in [k for k, ev in self._open.items() if ev.last_frame < frame_idx]:
            self._close(self._open.pop(key))

    def events(self) -> list[TrackEvent]:
        """Every kept event (closed and open), ordered by ``first_frame``."""
        return sorted([*self._closed, *self._open.values()],
                      key=lambda e: (e.first_frame, e.frame_idx, e.track_a, e.track_b))
