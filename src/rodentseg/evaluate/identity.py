"""Identity metrics for mask tracks: IDF1, ID switches, MOTA, computed by py-motmetrics.

Each frame, ground-truth and predicted masks are compared by mask IoU; pairs below
``iou_threshold`` cannot match (distance NaN for motmetrics), the others have distance
``1 - IoU``. The metrics are those of ``motmetrics`` (cheind/py-motmetrics):

- CLEAR MOT (Bernardin and Stiefelhagen 2008): ``mota`` = 1 - (misses + false positives +
  ID switches) / ground-truth objects; ``motp`` = mean ``1 - IoU`` of the matches (lower is
  better); ``num_switches`` = times a ground-truth animal's matched track id changes.
- Identity scores (Ristani et al. 2016): one global one-to-one mapping of ground-truth animals
  to track ids; ``idf1``, ``idp``, ``idr`` = F1, precision and recall of the frames where
  the mapped pair matches.

Accumulate with :meth:`IdentityMetrics.update`, reduce with :meth:`IdentityMetrics.compute`.
"""

from __future__ import annotations

import numpy as np

from rodentseg.evaluate.metrics import pairwise_iou
from rodentseg.types import FrameMasks

IDENTITY_METRICS = ["idf1", "idp", "idr", "num_switches", "mota", "motp", "num_matches",
                    "num_misses", "num_false_positives", "num_objects", "num_predictions",
                    "num_unique_objects", "mostly_tracked", "num_fragmentations", "num_frames"]


class IdentityMetrics:
    """Accumulates per-frame matches of predicted to ground-truth animal masks.

    Args:
        iou_threshold: smallest mask IoU at which a prediction may match a ground-truth
            animal (0.5 is the common choice for MOT benchmarks).

    Raises:
        ImportError: ``motmetrics`` is missing (``pip install motmetrics``).
        ValueError: ``iou_threshold`` not in (0, 1].
    """

    def __init__(self, iou_threshold: float = 0.5):
        import motmetrics

        if not 0 < iou_threshold <= 1:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        self.iou_threshold = iou_threshold
        self._mm = motmetrics
        self._acc = motmetrics.MOTAccumulator(auto_id=False)

    def update(self, gt: FrameMasks | None, pred: FrameMasks | None) -> None:
        """Add one frame.

        Args:
            gt: the true animals of the frame (``obj_ids`` = animal identities, masks
                (G, H, W) bool), or None when the frame has none.
            pred: the tracked animals (``obj_ids`` = track ids, masks (P, H, W) bool), or
                None when the tracker gave none. At least one of the two is given, both with
                the same ``frame_idx``.

        Raises:
            ValueError: both are None, or their frame indices or sizes differ.
        """
        if gt is None and pred is None:
            raise ValueError("update needs the ground truth or the prediction of a frame")
        frame = gt.frame_idx if gt is not None else pred.frame_idx
        if gt is not None and pred is not None and (
                gt.frame_idx != pred.frame_idx or gt.shape != pred.shape):
            raise ValueError(f"ground truth frame {gt.frame_idx} {gt.shape} and prediction "
                             f"frame {pred.frame_idx} {pred.shape} differ")
        g_ids = gt.obj_ids.tolist() if gt is not None else []
        p_ids = pred.obj_ids.tolist() if pred is not None else []
        dist = np.full((len(g_ids), len(p_ids)), np.nan)
        if g_ids and p_ids:
            iou = pairwise_iou(gt.masks, pred.masks)  # (G, P)
            dist = np.where(iou >= self.iou_threshold, 1.0 - iou, np.nan)
        self._acc.update(g_ids, p_ids, dist, frameid=frame)

    def compute(self) -> dict[str, float]:
        """The metrics of :data:`IDENTITY_METRICS` over every frame added (rates in [0, 1],
        ``mota`` may be negative, counts as int)."""
        mh = self._mm.metrics.create()
        table = mh.compute(self._acc, metrics=IDENTITY_METRICS, name="all")
        out = {}
        for k in IDENTITY_METRICS:
            v = table[k].iloc[0]
            out[k] = int(v) if k.startswith("num_") or k == "mostly_tracked" else float(v)
        return out


def identity_metrics(gt_frames, pred_frames, iou_threshold: float = 0.5) -> dict[str, float]:
    """IDF1, ID switches, MOTA, ... of two frame streams joined on ``frame_idx``.

    Args:
        gt_frames, pred_frames: iterables of :class:`FrameMasks`, each in increasing
            ``frame_idx``; a frame missing on one side counts as empty there.

    Returns:
        See :meth:`IdentityMetrics.compute`.
    """
    m = IdentityMetrics(iou_threshold)
    gt_it, pr_it = iter(gt_frames), iter(pred_frames)
    g, p = next(gt_it, None), next(pr_it, None)
    while g is not None or p is not None:
        if p is None or (g is not None and g.frame_idx < p.frame_idx):
            m.update(g, None)
            g = next(gt_it, None)
        elif g is None or p.frame_idx < g.frame_idx:
            m.update(None, p)
            p = next(pr_it, None)
        else:
            m.update(g, p)
            g, p = next(gt_it, None), next(pr_it, None)
    return m.compute()
