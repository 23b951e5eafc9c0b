"""Accumulate per-frame mask scores, then reduce them to video-level metrics (update/compute).

``SegmentationMetrics.update(pred, gt)`` scores one frame and keeps only numbers (no masks), so
memory grows with frames x objects, not with pixels; ``compute()`` reduces what was kept.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from rodentseg.errors import RodentsegError
from rodentseg.evaluate.metrics import (
    _iou_matrix,
    _pair_scores,
    boundary_tolerance_px,
    db_statistics,
    mask_bbox,
    match_objects,
)
from rodentseg.types import FrameMasks

MATCH_MODES = ("iou", "id")


@dataclass(frozen=True)
class ObjectScore:
    """The scores of one object in one frame (one row of ``per_frame.csv``).

    Attributes:
        frame_idx: 0-based frame index.
        obj_id: ground-truth object id; for a false positive 0 (``match="iou"``) or the
            prediction's id (``match="id"``).
        pred_id: id of the prediction paired with it, 0 when none (a miss).
        status: ``"matched"``, ``"missed"`` (no prediction paired) or ``"false_positive"``
            (a prediction with no ground-truth object).
        iou: |P & G| / |P | G|; NaN when both masks are empty.
        j: DAVIS region similarity (as ``iou``, but 1 when both are empty).
        f: DAVIS boundary F-measure.
        gt_area, pred_area: mask areas in pixels.
        intersection, union: |P & G| and |P | G| in pixels.
    """

    frame_idx: int
    obj_id: int
    pred_id: int
    status: str
    iou: float
    j: float
    f: float
    gt_area: int
    pred_area: int
    intersection: int
    union: int

    @property
    def jf(self) -> float:
        """(J + F) / 2."""
        return (self.j + self.f) / 2

    def as_row(self) -> dict:
        """The CSV row: the attributes plus ``jf``."""
        return {**asdict(self), "jf": self.jf}


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


class SegmentationMetrics:
    """IoU, DAVIS J/F/J&F and per-class IoU over a video, accumulated one frame at a time.

    Args:
        boundary_tol: boundary tolerance of F, a fraction of the frame diagonal (< 1, DAVIS
            default 0.008) or whole pixels (>= 1); see ``metrics.boundary_tolerance_px``.
        match: how predictions are paired with ground-truth objects in each frame. ``"iou"``
            (default): Hungarian assignment maximising the total IoU, so prediction ids need not
            equal ground-truth ids (a segmentation score; identity swaps are not penalised).
            ``"id"``: equal ``obj_id`` (a tracking score; swaps cost J and F).
        semantic: masks are semantic (``obj_id`` = class id): implies ``match="id"`` and
            per-class IoU is kept for every class. Otherwise the classes are background (0) and
            animal (1, the union of all objects).

    Example::

        m = SegmentationMetrics()
        for pred, gt in pairs:
            m.update(pred, gt)
        result = m.compute()
    """

    def __init__(self, boundary_tol: float = 0.008, match: str = "iou", semantic: bool = False):
        if match not in MATCH_MODES:
            raise RodentsegError(f"match must be one of {MATCH_MODES}, got {match!r}")
        try:
            boundary_tolerance_px((1, 1), boundary_tol)  # validate early
        except ValueError as e:
            raise RodentsegError(str(e)) from None
        self.boundary_tol = boundary_tol
        self.semantic = semantic
        self.match = "id" if semantic else match
        self.reset()

    def reset(self) -> None:
        """Forget every frame seen so far."""
        self.rows: list[ObjectScore] = []
        self._frames: dict[int, tuple[float, float, float]] = {}  # frame -> mean iou, j, f
        self._cls_inter: dict[int, int] = {}
        self._cls_union: dict[int, int] = {}
        self._radius: dict[tuple[int, int], float] = {}

    def update(self, pred: FrameMasks, gt: FrameMasks) -> list[ObjectScore]:
        """Score one frame.

        Args:
            pred: the predicted objects (an empty FrameMasks when the frame has no prediction).
            gt: the ground-truth objects of the same frame (``frame_idx`` is taken from it).

        Returns:
            The rows added for this frame: one per ground-truth object, then one per unpaired
            prediction. A frame with no object on either side adds none (it scores J = F = 1).

        Raises:
            RodentsegError: the two masks have different frame sizes.
            ValueError: the frame was already scored.
        """
        frame = int(gt.frame_idx)
        if frame in self._frames:
            raise ValueError(f"frame {frame} was already scored")
        if len(pred) and pred.shape != gt.shape:
            raise RodentsegError(f"frame {frame}: prediction masks are {pred.shape} (H, W) but "
                                 f"ground-truth masks are {gt.shape}; both must be the same size")
        shape = gt.shape
        if shape not in self._radius:
            self._radius[shape] = boundary_tolerance_px(shape, self.boundary_tol)
        radius = self._radius[shape]
        pm, gm = pred.masks, gt.masks
        pbox = [mask_bbox(m) for m in pm]
        gbox = [mask_bbox(m) for m in gm]
        parea = [_area(m, b) for m, b in zip(pm, pbox)]
        garea = [_area(m, b) for m, b in zip(gm, gbox)]
        pairs = self._pairs(pred, gt, pbox, gbox, parea, garea)
        paired_g = {g: p for p, g in pairs}

        rows = []
        for gi, gid in enumerate(gt.obj_ids):
            pi = paired_g.get(gi)
            if pi is None:
                inter, union, f = _pair_scores(None, None, gm[gi], gbox[gi], radius)
                rows.append(_row(frame, int(gid), 0, "missed", inter, union, f, garea[gi], 0))
            else:
                inter, union, f = _pair_scores(pm[pi], pbox[pi], gm[gi], gbox[gi], radius)
                rows.append(_row(frame, int(gid), int(pred.obj_ids[pi]), "matched", inter,
                                 union, f, garea[gi], parea[pi]))
        paired_p = set(paired_g.values())
        for pi, pid in enumerate(pred.obj_ids):
            if pi not in paired_p:
                inter, union, f = _pair_scores(pm[pi], pbox[pi], None, None, radius)
                rows.append(_row(frame, int(pid) if self.match == "id" else 0, int(pid),
                                 "false_positive", inter, union, f, 0, parea[pi]))
        self._update_classes(pred, gt, pbox + gbox, rows)
        self.rows.extend(rows)
        if rows:
            self._frames[frame] = (_nanmean([r.iou for r in rows]),
                                   float(np.mean([r.j for r in rows])),
                                   float(np.mean([r.f for r in rows])))
        else:
            self._frames[frame] = (float("nan"), 1.0, 1.0)
        return rows

    def _pairs(self, pred, gt, pbox, gbox, parea, garea) -> list[tuple[int, int]]:
        if self.match == "id":
            first = {}
            for pi, pid in enumerate(pred.obj_ids):
                first.setdefault(int(pid), pi)
            pairs, used = [], set()
            for gi, gid in enumerate(gt.obj_ids):
                pi = first.get(int(gid))
                if pi is not None and pi not in used:
                    pairs.append((pi, gi))
                    used.add(pi)
            return pairs
        if not len(pred) or not len(gt):
            return []
        mat = _iou_matrix(pred.masks, pbox, parea, gt.masks, gbox, garea)
        return match_objects(mat)

    def _update_classes(self, pred, gt, boxes, rows) -> None:
        """Per-class intersection/union pixel counts: background, then animal or each class."""
        h, w = gt.shape
        boxes = [b for b in boxes if b is not None]
        fg_inter = fg_union = 0
        if boxes:
            y0, y1 = min(b[0] for b in boxes), max(b[1] for b in boxes) + 1
            x0, x1 = min(b[2] for b in boxes), max(b[3] for b in boxes) + 1
            crop = (slice(y0, y1), slice(x0, x1))
            p = pred.masks[(slice(None), *crop)].any(0) if len(pred) else False
            g = gt.masks[(slice(None), *crop)].any(0) if len(gt) else False
            fg_inter = int(np.count_nonzero(p & g))
            fg_union = int(np.count_nonzero(p | g))
        counts = {0: (h * w - fg_union, h * w - fg_inter)}
        if not self.semantic:
            counts[1] = (fg_inter, fg_union)
        else:
            for r in rows:
                i0, u0 = counts.get(r.obj_id, (0, 0))
                counts[r.obj_id] = (i0 + r.intersection, u0 + r.union)
        for c, (i, u) in counts.items():
            self._cls_inter[c] = self._cls_inter.get(c, 0) + i
            self._cls_union[c] = self._cls_union.get(c, 0) + u

    def frame_table(self) -> dict[str, np.ndarray]:
        """Per-frame means over the frame's rows (ground-truth objects and false positives), in
        frame order.

        Returns:
            ``frame_idx`` (F,) int64 and ``iou``, ``j``, ``f``, ``jf`` (F,) float64 (``iou`` is NaN
            and ``j`` = ``f`` = 1 for a frame with no object on either side).
        """
        frames = np.array(sorted(self._frames), dtype=np.int64)
        vals = np.array([self._frames[i] for i in frames], dtype=np.float64).reshape(-1, 3)
        return {"frame_idx": frames, "iou": vals[:, 0], "j": vals[:, 1], "f": vals[:, 2],
                "jf": (vals[:, 1] + vals[:, 2]) / 2}

    def compute(self) -> dict:
        """Reduce everything seen so far.

        Returns:
            A JSON-ready dict (NaN where undefined):

            - ``frames``: frames scored.
            - ``objects``: counts of ``gt_instances`` (object-frames), ``matched``, ``missed``,
              ``false_positives``.
            - ``iou``: ``mean`` over ground-truth object-frames (a miss counts 0; false positives
              are not in it, see ``objects``) and ``per_object`` {obj_id: mean}.
            - ``semantic``: ``per_class_iou`` {class: IoU} from pixel counts summed over all
              frames, and ``miou``, their mean over classes present in either input.
            - ``davis``: ``J`` and ``F`` with ``mean``, ``recall``, ``decay``; ``J&F`` with
              ``mean`` = (J mean + F mean) / 2; and ``per_object``. As in davis2017
              ``evaluation.py``: each ground-truth object has one score per scored frame (frames
              where neither it nor a prediction paired with it exists score 1),
              ``db_statistics`` is taken per object, then averaged over objects.
            - ``boundary_tol_px``: the F tolerance in pixels, per frame size seen.
        """
        rows = self.rows
        gt_rows = [r for r in rows if r.status != "false_positive"]
        gt_ids = sorted({r.obj_id for r in gt_rows})
        per_obj_iou = {str(k): _nanmean([r.iou for r in gt_rows if r.obj_id == k]) for k in gt_ids}
        classes = sorted(self._cls_union)
        per_class = {str(c): (self._cls_inter[c] / self._cls_union[c]
                              if self._cls_union[c] else float("nan")) for c in classes}
        return {
            "frames": len(self._frames),
            "objects": {"gt_instances": len(gt_rows),
                        "matched": sum(r.status == "matched" for r in rows),
                        "missed": sum(r.status == "missed" for r in rows),
                        "false_positives": sum(r.status == "false_positive" for r in rows)},
            "iou": {"mean": _nanmean([r.iou for r in gt_rows]),
                    "per_object": per_obj_iou},
            "semantic": {"per_class_iou": per_class, "miou": _nanmean(list(per_class.values()))},
            "davis": self._davis(gt_ids),
            "boundary_tol_px": sorted(set(self._radius.values())),
        }

    def _davis(self, gt_ids: list[int]) -> dict:
        frames = sorted(self._frames)
        pos = {f: i for i, f in enumerate(frames)}
        per_object, stats = {}, {"J": [], "F": []}
        for k in gt_ids:
            seq = {"J": np.ones(len(frames)), "F": np.ones(len(frames))}
            for r in self.rows:
                if r.obj_id == k:
                    seq["J"][pos[r.frame_idx]] = r.j
                    seq["F"][pos[r.frame_idx]] = r.f
            per_object[str(k)] = {}
            for name in ("J", "F"):
                m, rec, dec = db_statistics(seq[name])
                stats[name].append((m, rec, dec))
                per_object[str(k)][name] = {"mean": m, "recall": rec, "decay": dec}
        out = {}
        for name in ("J", "F"):
            arr = np.array(stats[name], dtype=np.float64).reshape(-1, 3)
            out[name] = {key: _nanmean(arr[:, i]) for i, key in
                         enumerate(("mean", "recall", "decay"))}
        out["J&F"] = {"mean": (out["J"]["mean"] + out["F"]["mean"]) / 2}
        out["per_object"] = per_object
        return out


def _row(frame, obj_id, pred_id, status, inter, union, f, gt_area, pred_area) -> ObjectScore:
    return ObjectScore(frame, obj_id, pred_id, status, inter / union if union else math.nan,
                       inter / union if union else 1.0, f, int(gt_area), int(pred_area),
                       int(inter), int(union))


def _area(mask: np.ndarray, box) -> int:
    if box is None:
        return 0
    return int(np.count_nonzero(mask[box[0]:box[1] + 1, box[2]:box[3] + 1]))
