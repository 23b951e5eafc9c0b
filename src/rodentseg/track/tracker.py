"""Frame-to-frame identity assignment for animal masks.

Each frame, the cost of giving detected mask ``j`` to track ``i`` is

    min(|c_j - p_i| / gate_px, 10) + iou_weight * (1 - IoU(m_i shifted, m_j))
        + appearance_weight * (1 - BC(h_i, h_j)) + area_weight * min(|log(a_j / a_i)|, 2)

where ``p_i`` is the track's position predicted by a constant-velocity Kalman filter
(:mod:`rodentseg.track.kalman`), ``m_i`` its last mask moved by the predicted displacement,
``h`` colour histograms of the animals' pixels compared by the Bhattacharyya coefficient
(:mod:`rodentseg.track.appearance`, only when the frame's pixels are given) and ``a`` areas in
pixels (the track's: a running mean). The assignment minimising the total cost is solved with
``scipy.optimize.linear_sum_assignment`` (Hungarian method, Kuhn 1955), as in SORT (Bewley et
al. 2016) with masks in place of boxes and appearance as in DeepSORT (Wojke et al. 2017).

With a known number of animals N the tracker holds exactly N ``track_id`` s (1..N):

- a track that finds no mask keeps coasting on its prediction (its velocity is dropped after
  ``max_coast`` frames) and is re-linked to the next unclaimed mask however far it moved
  (contact, occlusion, leaving the view);
- when animals run into one blob (a track without a mask whose expected region overlaps a
  mask at least ``merge_area_ratio`` times the size of the animal that got it), the blob is cut
  between them, each pixel going to the nearest predicted position; each keeps its id on its
  piece, and their filters trust these pieces little (``merge_noise``), so that they pass
  through the merge on their own momentum. Animals that meet and turn back inside a blob look
  the same as animals that cross: the motion model then bets on crossing, and only appearance
  (different-looking animals, with ``frame`` given) can tell them apart when they separate.
  Cutting blobs is the weak point: look-alike animals that stay in contact for many frames as
  one blob are often swapped (``benchmarks/track_identity.py``, ``blobs``). Masks that
  separate touching animals (instance segmenters, SAM 2) avoid it.

With an unknown number, a mask that no track claims within the gate starts a new id, and a
track lost for more than ``max_lost`` frames ends; ids are never reused.

Every merge, every re-link after a merge, every re-link after a loss that another track nearly
won (``relink_margin``) and every assignment whose swap would cost less than
``uncertain_margin`` more is logged (:mod:`rodentseg.track.events`, written to ``swaps.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from rodentseg.track.appearance import colour_histogram, histogram_distance
from rodentseg.track.events import EventLog, TrackEvent
from rodentseg.track.instances import kmeans_labels
from rodentseg.track.kalman import CentroidKalman
from rodentseg.types import FrameMasks, mask_box

_INF = 1e6
_EMA = 0.2  # weight of the newest mask in a track's running area and histogram


@dataclass
class _Track:
    track_id: int
    kf: CentroidKalman
    box: tuple[int, int, int, int]  # y0, y1, x0, x1 (end exclusive) of the last mask
    crop: np.ndarray  # bool, the last mask inside box
    centroid: np.ndarray  # (x, y) of the last mask, px
    area: float  # running mean of the area, px
    hist: np.ndarray | None  # running colour histogram, None until a frame is given
    lost: int = 0  # consecutive frames without any mask
    merged: int = 0  # consecutive frames inside a merged blob

    def predicted(self) -> np.ndarray:
        """(2,) (x, y) expected at the next frame, px."""
        return self.kf.position + self.kf.velocity


@dataclass
class _Detections:
    keep: np.ndarray  # (K,) index into the input masks
    boxes: list
    crops: list
    cents: np.ndarray  # (K, 2)
    areas: np.ndarray  # (K,)
    hists: np.ndarray | None  # (K, 48)


def _describe(masks: np.ndarray, frame: np.ndarray | None) -> _Detections:
    keep, boxes, crops, cents, areas, hists = [], [], [], [], [], []
    for k, m in enumerate(masks):
        box = mask_box(m)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        crop = m[y0:y1, x0:x1]
        ys, xs = np.nonzero(crop)
        keep.append(k)
        boxes.append((y0, y1, x0, x1))
        crops.append(crop)
        cents.append((xs.mean() + x0, ys.mean() + y0))
        areas.append(len(xs))
        if frame is not None:
            hists.append(colour_histogram(frame, boxes[-1], crop))
    return _Detections(np.array(keep, np.int64), boxes, crops, np.array(cents).reshape(-1, 2),
                       np.array(areas, float), np.array(hists) if frame is not None else None)


def _overlap(box_a, crop_a, box_b, crop_b) -> int:
    """Pixels shared by two box-cropped masks."""
    y0, y1 = max(box_a[0], box_b[0]), min(box_a[1], box_b[1])
    x0, x1 = max(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    if y0 >= y1 or x0 >= x1:
        return 0
    a = crop_a[y0 - box_a[0]:y1 - box_a[0], x0 - box_a[2]:x1 - box_a[2]]
    b = crop_b[y0 - box_b[0]:y1 - box_b[0], x0 - box_b[2]:x1 - box_b[2]]
    return int(np.count_nonzero(a & b))


class Tracker:
    """Gives each animal mask a ``track_id`` that stays the same across frames.

    Args:
        n_animals: known number of animals (ids 1..N, never more), or None.
        gate_px: centroid distance, in pixels, at which the distance cost reaches 1; with an
            unknown count, a mask farther than this from every track (and not overlapping it)
            starts a new track. Raise it for fast animals or low frame rates; too high and
            an animal entering the view may take a lost animal's id.
        iou_weight: weight of (1 - IoU) against the normalised distance (weight 1).
        appearance_weight: weight of the colour-histogram distance (used when frames are
            given). Raise it for animals of different colours; it does nothing for look-alikes.
        area_weight: weight of the log area ratio (animals of different sizes).
        max_lost: with an unknown count, frames a track may go unseen before it ends.
        max_coast: frames a lost track keeps moving on its last velocity before it stops.
        accel_std: Kalman process noise, px/frame^2 (see :class:`CentroidKalman`).
        meas_std: Kalman measurement noise of a centroid, px.
        merge_area_ratio: a mask at least this many times the area of the animal it was given
            to may hold a second, unmatched animal (known count only).
        merge_noise: measurement variance multiplier for centroids cut from a merged blob.
            Higher trusts the momentum from before the merge more (animals crossing keep
            their ids); lower follows the pieces (animals that stop and turn inside the blob).
        uncertain_margin: log an ``uncertain`` event when exchanging two tracks' masks would
            cost less than this much more.
        relink_margin: log a ``relink`` of a track that was lost (not merged) when another
            track's mask would have cost less than this much more (re-links after merges are
            always logged).
        max_events: most events kept in :attr:`log`.

    Raises:
        ValueError: ``n_animals`` < 1.
    """

    def __init__(self, n_animals: int | None = None, gate_px: float = 80.0,
                 iou_weight: float = 1.0, appearance_weight: float = 1.0,
                 area_weight: float = 0.3, max_lost: int = 30, max_coast: int = 15,
                 accel_std: float = 1.0, meas_std: float = 2.0, merge_area_ratio: float = 1.4,
                 merge_noise: float = 100.0, uncertain_margin: float = 0.3,
                 relink_margin: float = 1.0,
                 max_events: int = 10_000):
        if n_animals is not None and n_animals < 1:
            raise ValueError(f"n_animals must be >= 1 or None, got {n_animals}")
        self.n_animals = n_animals
        self.gate_px, self.iou_weight = gate_px, iou_weight
        self.appearance_weight, self.area_weight = appearance_weight, area_weight
        self.max_lost, self.max_coast = max_lost, max_coast
        self.accel_std, self.meas_std = accel_std, meas_std
        self.merge_area_ratio, self.merge_noise = merge_area_ratio, merge_noise
        self.uncertain_margin, self.relink_margin = uncertain_margin, relink_margin
        self.tracks: list[_Track] = []
        self.log = EventLog(max_events)
        self._next_id = 1
        self._last_frame: int | None = None

    @property
    def events(self) -> list[TrackEvent]:
        """The logged merges, re-links and uncertain assignments (see :mod:`..events`)."""
        return self.log.events()

    def predicted_centroids(self) -> np.ndarray:
        """(T, 2) float predicted (x, y) of every live track for the next frame, in pixels."""
        return np.array([t.predicted() for t in self.tracks]).reshape(-1, 2)

    def _cost(self, det: _Detections) -> np.ndarray:
        n_t, n_d = len(self.tracks), len(det.keep)
        cost = np.full((n_t, n_d), _INF)
        if not (n_t and n_d):
            return cost
        pred = np.array([t.kf.position for t in self.tracks])
        dist = np.linalg.norm(det.cents[None] - pred[:, None], axis=2) / self.gate_px
        iou = np.zeros((n_t, n_d))
        for i, t in enumerate(self.tracks):
            dy, dx = np.round(pred[i][::-1] - t.centroid[::-1]).astype(int)
            box = (t.box[0] + dy, t.box[1] + dy, t.box[2] + dx, t.box[3] + dx)
            for j, (b, c) in enumerate(zip(det.boxes, det.crops)):
                inter = _overlap(box, t.crop, b, c)
                if inter:
                    iou[i, j] = inter / (np.count_nonzero(t.crop) + det.areas[j] - inter)
        area = np.array([t.area for t in self.tracks])
        c = (np.minimum(dist, 10.0) + self.iou_weight * (1 - iou)
             + self.area_weight * np.minimum(np.abs(np.log(det.areas[None] / area[:, None])), 2))
        if det.hists is not None and all(t.hist is not None for t in self.tracks):
            c += self.appearance_weight * histogram_distance(
                np.array([t.hist for t in self.tracks]), det.hists)
        ok = (iou > 0) | (dist <= 1) | (self.n_animals is not None)
        cost[ok] = c[ok]
        return cost

    def update(self, frame_idx: int, masks: np.ndarray, scores: np.ndarray,
               frame: np.ndarray | None = None) -> FrameMasks:
        """Assign ids to one frame's masks.

        Args:
            frame_idx: index of the frame (increasing from call to call; gaps are allowed).
            masks: (K, H, W) bool, one per detected animal (empty masks are ignored); their
                order and any ids they had carry no meaning.
            scores: (K,) float.
            frame: (H, W, 3) uint8 RGB pixels of the frame, for appearance; optional.

        Returns:
            The frame's masks with ``obj_ids`` = track ids, ordered by id. With a known count,
            masks beyond the N that were assigned are dropped, and a blob holding several
            tracked animals is returned cut into one piece per animal.
        """
        dt = 1 if self._last_frame is None else frame_idx - self._last_frame
        self._last_frame = frame_idx
        for t in self.tracks:
            t.kf.predict(dt)
            if t.lost > self.max_coast:
                t.kf.stop()
        scores = np.asarray(scores, np.float32).reshape(-1)
        det = _describe(masks, frame)
        cost = self._cost(det)
        rows, cols = linear_sum_assignment(cost) if cost.size else ([], [])
        owner = {int(j): int(i) for i, j in zip(rows, cols) if cost[i, j] < _INF}  # det -> track
        self._log_uncertain(frame_idx, cost, owner)
        pieces = self._merges(frame_idx, det, owner) if self.n_animals is not None else {}

        out: dict[int, tuple[np.ndarray, float]] = {}  # track_id -> (mask, score)
        h, w = masks.shape[1:]
        claimed = set(owner.values())
        for i, t in enumerate(self.tracks):
            if i not in claimed and i not in pieces:
                t.lost += 1
                t.merged = 0
        for j, i in owner.items():
            if i in pieces:
                continue
            t = self.tracks[i]
            if t.lost or t.merged:
                self._log_relink(frame_idx, i, cost, owner, always=t.merged > 0)
            t.kf.update(det.cents[j])
            t.box, t.crop, t.centroid = det.boxes[j], det.crops[j], det.cents[j]
            t.area = (1 - _EMA) * t.area + _EMA * det.areas[j]
            if det.hists is not None:
                t.hist = det.hists[j] if t.hist is None else (1 - _EMA) * t.hist + _EMA * det.hists[j]
            t.lost = t.merged = 0
            out[t.track_id] = (masks[det.keep[j]], scores[det.keep[j]])
        for i, (box, crop, cent, j) in pieces.items():
            t = self.tracks[i]
            t.kf.update(cent, self.merge_noise)
            t.box, t.crop, t.centroid = box, crop, cent
            t.lost, t.merged = 0, t.merged + 1
            full = np.zeros((h, w), bool)
            full[box[0]:box[1], box[2]:box[3]] = crop
            out[t.track_id] = (full, scores[det.keep[j]])
        for j in range(len(det.keep)):
            if j in owner:
                continue
            if self.n_animals is not None and self._next_id > self.n_animals:
                continue  # all N identities exist and are claimed this frame
            t = _Track(self._next_id, CentroidKalman(det.cents[j], self.accel_std, self.meas_std),
                       det.boxes[j], det.crops[j], det.cents[j], float(det.areas[j]),
                       None if det.hists is None else det.hists[j])
            self._next_id += 1
            self.tracks.append(t)
            out[t.track_id] = (masks[det.keep[j]], scores[det.keep[j]])
        if self.n_animals is None:
            self.tracks = [t for t in self.tracks if t.lost <= self.max_lost]
        self.log.end_frame(frame_idx)
        ids = np.array(sorted(out), np.int64)
        stack = np.stack([out[i][0] for i in ids]) if len(ids) else np.zeros((0, h, w), bool)
        return FrameMasks(frame_idx, ids, stack, np.array([out[i][1] for i in ids], np.float32))

    def _merges(self, frame_idx: int, det: _Detections, owner: dict[int, int]) -> dict:
        """Cut blobs that hold a tracked animal besides the one they were given to.

        Returns:
            ``{track index: (box, crop, centroid, det index)}`` for every animal of a cut blob.
        """
        claimed = set(owner.values())
        groups: dict[int, list[int]] = {}
        for u, t in enumerate(self.tracks):
            if u in claimed:
                continue
            p = t.kf.position
            best, best_score = None, 0.0
            for j, i in owner.items():
                if det.areas[j] < self.merge_area_ratio * self.tracks[i].area:
                    continue
                y0, y1, x0, x1 = det.boxes[j]
                px, py = round(float(p[0])) - x0, round(float(p[1])) - y0
                inside = 0 <= py < y1 - y0 and 0 <= px < x1 - x0 and det.crops[j][py, px]
                dy, dx = np.round(p[::-1] - t.centroid[::-1]).astype(int)
                box = (t.box[0] + dy, t.box[1] + dy, t.box[2] + dx, t.box[3] + dx)
                score = inside + _overlap(box, t.crop, det.boxes[j], det.crops[j]) / t.area
                if score > max(best_score, 0.2):
                    best, best_score = j, score
            if best is not None:
                groups.setdefault(best, [owner[best]]).append(u)
        pieces = {}
        for j, members in groups.items():
            crop, (y0, _, x0, _) = det.crops[j], det.boxes[j]
            ys, xs = np.nonzero(crop)
            seeds = np.array([self.tracks[i].kf.position for i in members]) - (x0, y0)
            lab = kmeans_labels(np.stack([xs, ys], 1), seeds, iters=1)  # nearest prediction
            for k, i in enumerate(members):
                sel = lab == k
                if not sel.any():
                    continue
                py, px = ys[sel], xs[sel]
                b = (y0 + int(py.min()), y0 + int(py.max()) + 1, x0 + int(px.min()),
                     x0 + int(px.max()) + 1)
                piece = np.zeros((b[1] - b[0], b[3] - b[2]), bool)
                piece[py + y0 - b[0], px + x0 - b[2]] = True
                pieces[i] = (b, piece, np.array([px.mean() + x0, py.mean() + y0]), j)
            for i in members[1:]:
                self.log.note(frame_idx, "merge", self.tracks[members[0]].track_id,
                              self.tracks[i].track_id)
        return pieces

    def _swap_deltas(self, cost: np.ndarray, owner: dict[int, int]):
        """(M,) track indices, (M, M) extra cost of exchanging the masks of two assigned tracks."""
        js = np.array(list(owner), np.int64)
        ts = np.array([owner[j] for j in js], np.int64)
        c = cost[np.ix_(ts, js)]
        d = np.diag(c)
        return ts, c + c.T - d[:, None] - d[None, :]

    def _log_uncertain(self, frame_idx: int, cost: np.ndarray, owner: dict[int, int]) -> None:
        if len(owner) < 2:
            return
        ts, delta = self._swap_deltas(cost, owner)
        for a, b in zip(*np.nonzero(np.triu(delta < self.uncertain_margin, 1))):
            ta, tb = self.tracks[ts[a]], self.tracks[ts[b]]
            if not (ta.lost or ta.merged or tb.lost or tb.merged):
                self.log.note(frame_idx, "uncertain", ta.track_id, tb.track_id,
                              float(delta[a, b]))

    def _log_relink(self, frame_idx: int, i: int, cost: np.ndarray, owner: dict[int, int],
                    always: bool) -> None:
        """Log track ``i`` getting a mask again: always after a merge, else when another
        track competed for it at less than ``relink_margin`` extra cost."""
        ts, delta = self._swap_deltas(cost, owner)
        row = delta[int(np.flatnonzero(ts == i)[0])]
        others = np.flatnonzero(ts != i)
        k = others[np.argmin(row[others])] if len(others) else None
        if k is not None and (always or row[k] < self.relink_margin):
            self.log.note(frame_idx, "relink", self.tracks[i].track_id,
                          self.tracks[ts[k]].track_id, float(row[k]))
        elif always:
            self.log.note(frame_idx, "relink", self.tracks[i].track_id, 0)

