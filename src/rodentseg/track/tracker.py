"""Frame-to-frame identity assignment for animal masks.

Each frame, a cost between every live track and every detected mask combines mask overlap
with the track's last mask (1 - IoU) and the distance from the track's constant-velocity
predicted centroid, normalised by ``gate_px``; the assignment minimising the total cost is
solved with ``scipy.optimize.linear_sum_assignment`` (Hungarian method, Kuhn 1955), as in
SORT (Bewley et al. 2016) with masks in place of boxes.

With a known number of animals the tracker holds exactly that many ``track_id`` s (1..N): a
track that finds no mask keeps its predicted position while lost, and is re-linked to the next
unclaimed mask however far it moved (contact, occlusion, leaving the view). With an unknown
number, a mask that no track claims within the gate starts a new id, and a track lost for more
than ``max_lost`` frames ends; ids are never reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from rodentseg.types import FrameMasks

_INF = 1e6


@dataclass
class _Track:
    track_id: int
    box: tuple[int, int, int, int]  # y0, y1, x0, x1 (end exclusive)
    crop: np.ndarray  # bool mask inside box
    centroid: np.ndarray  # (x, y) pixels
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))
    lost: int = 0

    def predicted(self) -> np.ndarray:
        return self.centroid + self.velocity * (self.lost + 1)


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _iou(t: _Track, box, crop) -> float:
    y0, y1 = max(t.box[0], box[0]), min(t.box[1], box[1])
    x0, x1 = max(t.box[2], box[2]), min(t.box[3], box[3])
    if y0 >= y1 or x0 >= x1:
        return 0.0
    a = t.crop[y0 - t.box[0]:y1 - t.box[0], x0 - t.box[2]:x1 - t.box[2]]
    b = crop[y0 - box[0]:y1 - box[0], x0 - box[2]:x1 - box[2]]
    inter = np.count_nonzero(a & b)
    return inter / (np.count_nonzero(t.crop) + np.count_nonzero(crop) - inter)


class Tracker:
    """Gives each animal mask a ``track_id`` that stays the same across frames.

    Args:
        n_animals: known number of animals (ids 1..N, never more), or None.
        gate_px: centroid distance, in pixels, at which the distance cost reaches 1; with an
            unknown count, a mask farther than this from every track (and not overlapping it)
            starts a new track. Raise it for fast animals or low frame rates; too high and
            an animal entering the view may take a lost animal's id.
        iou_weight: weight of (1 - IoU) against the normalised distance (weight 1).
        max_lost: with an unknown count, frames a track may go unseen before it ends.
        smoothing: weight of the newest displacement in the velocity estimate (0..1).
    """

    def __init__(self, n_animals: int | None = None, gate_px: float = 80.0,
                 iou_weight: float = 1.0, max_lost: int = 30, smoothing: float = 0.5):
        if n_animals is not None and n_animals < 1:
            raise ValueError(f"n_animals must be >= 1 or None, got {n_animals}")
        self.n_animals = n_animals
        self.gate_px = gate_px
        self.iou_weight = iou_weight
        self.max_lost = max_lost
        self.smoothing = smoothing
        self.tracks: list[_Track] = []
        self._next_id = 1

    def predicted_centroids(self) -> np.ndarray:
        """(T, 2) float predicted (x, y) of every live track for the next frame, in pixels."""
        return np.array([t.predicted() for t in self.tracks]).reshape(-1, 2)

    def update(self, frame_idx: int, masks: np.ndarray, scores: np.ndarray) -> FrameMasks:
        """Assign ids to one frame's masks.

        Args:
            frame_idx: index of the frame.
            masks: (K, H, W) bool, one per detected animal (empty masks are ignored).
            scores: (K,) float.

        Returns:
            The frame's masks with ``obj_ids`` = track ids, ordered by id. With a known count,
            masks beyond the N that were assigned are dropped.
        """
        keep = [k for k in range(len(masks)) if masks[k].any()]
        masks, scores = masks[keep], np.asarray(scores)[keep]
        boxes = [_box(m) for m in masks]
        crops = [m[b[0]:b[1], b[2]:b[3]] for m, b in zip(masks, boxes)]
        cents = [np.array([xs.mean() + b[2], ys.mean() + b[0]])
                 for (ys, xs), b in ((np.nonzero(c), b) for c, b in zip(crops, boxes))]
        n_t, n_d = len(self.tracks), len(masks)
        cost = np.full((n_t, n_d), _INF)
        if n_t and n_d:
            pred = self.predicted_centroids()
            dist = np.linalg.norm(np.array(cents)[None] - pred[:, None], axis=2) / self.gate_px
            tb, db = np.array([t.box for t in self.tracks]), np.array(boxes)
            overlap = ((np.minimum(tb[:, None, 1], db[None, :, 1])
                        > np.maximum(tb[:, None, 0], db[None, :, 0]))
                       & (np.minimum(tb[:, None, 3], db[None, :, 3])
                          > np.maximum(tb[:, None, 2], db[None, :, 2])))
            iou = np.zeros((n_t, n_d))
            for i, j in zip(*np.nonzero(overlap)):
                iou[i, j] = _iou(self.tracks[i], boxes[j], crops[j])
            ok = (iou > 0) | (dist <= 1) | (self.n_animals is not None)
            cost[ok] = (self.iou_weight * (1 - iou) + np.minimum(dist, 10.0))[ok]
        rows, cols = linear_sum_assignment(cost) if n_t and n_d else ([], [])
        assigned: dict[int, int] = {}
        for i, j in zip(rows, cols):
            if cost[i, j] < _INF:
                assigned[j] = i
        for i, t in enumerate(self.tracks):
            if i not in assigned.values():
                t.lost += 1
        for j, i in assigned.items():
            t = self.tracks[i]
            step = (cents[j] - t.centroid) / (t.lost + 1)
            t.velocity = self.smoothing * step + (1 - self.smoothing) * t.velocity
            t.box, t.crop, t.centroid, t.lost = boxes[j], crops[j], cents[j], 0
        out_ids: dict[int, int] = {j: self.tracks[i].track_id for j, i in assigned.items()}
        for j in range(n_d):
            if j in out_ids:
                continue
            if self.n_animals is not None and self._next_id > self.n_animals:
                continue  # all N identities exist and are claimed this frame
            t = _Track(self._next_id, boxes[j], crops[j], cents[j])
            self._next_id += 1
            self.tracks.append(t)
            out_ids[j] = t.track_id
        if self.n_animals is None:
            self.tracks = [t for t in self.tracks if t.lost <= self.max_lost]
        order = np.array(sorted(out_ids, key=out_ids.get), np.int64)
        return FrameMasks(frame_idx, np.array([out_ids[j] for j in order], np.int64),
                          masks[order], scores[order])
