"""Mask metrics for one pair of masks: IoU, DAVIS region similarity J and boundary F-measure F.

All masks are (H, W) bool arrays, row = y, column = x, at full frame resolution.

Sources (the formulas and edge-case conventions are those of the DAVIS 2017 benchmark code,
davisvideochallenge/davis2017-evaluation at commit 30b698a691681588bbcfe0f2a7c7c680d49bb72d):

- ``davis2017/metrics.py``: :func:`region_similarity` follows ``db_eval_iou``,
  :func:`boundary_f_measure` follows ``f_measure`` (called through ``db_eval_boundary``) and
  :func:`seg2bmap` follows ``_seg2bmap``.
- ``davis2017/utils.py``: :func:`db_statistics` follows ``db_statistics`` (mean, recall, decay).

The reference dilates whole-frame boundary maps with ``cv2.dilate`` and a
``skimage.morphology.disk``. Here the same numbers come from numpy/scipy: the boundary maps are
computed only inside the union bounding box of the two masks (grown by one pixel, see
:func:`_pair_scores`), and "inside the dilated boundary" is looked up only at the other mask's
boundary pixels, as "within Euclidean distance r of a boundary pixel", which is what dilation
by ``disk(r) = {(dx, dy): dx**2 + dy**2 <= r**2}`` means (see :func:`_count_near`). The
results are identical, at a small fraction of the cost.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree

BBox = tuple[int, int, int, int]  # y0, y1, x0, x1, inclusive pixel indices


def mask_bbox(mask: np.ndarray) -> BBox | None:
    """Tight bounding box of a (H, W) bool mask as ``(y0, y1, x0, x1)`` (inclusive), or None
    when the mask is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union |pred & gt| / |pred | gt| of two (H, W) bool masks.

    Returns NaN when both masks are empty (0 / 0 is undefined); compare
    :func:`region_similarity`, which scores that case 1 as DAVIS does.
    """
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    union = np.count_nonzero(pred | gt)
    return float("nan") if union == 0 else np.count_nonzero(pred & gt) / union


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """DAVIS region similarity J (the Jaccard index) of two (H, W) bool masks, in [0, 1].

    Equals :func:`iou`, except that two empty masks score 1 (``db_eval_iou`` in
    davis2017/metrics.py, without void pixels).
    """
    value = iou(pred, gt)
    return 1.0 if math.isnan(value) else value


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map of a (H, W) mask, as ``_seg2bmap`` in davis2017/metrics.py.

    A pixel is on the boundary when it differs from its east, south or south-east neighbour
    (the boundary sits half a pixel towards the origin). On the last row only the east
    neighbour counts, on the last column only the south one, and the bottom-right pixel is
    never a boundary pixel. So a mask that fills the whole frame has no boundary at all.

    Returns:
        (H, W) bool.
    """
    seg = np.asarray(seg, bool)
    e = np.zeros_like(seg)
    s = np.zeros_like(seg)
    se = np.zeros_like(seg)
    e[:, :-1] = seg[:, 1:]
    s[:-1, :] = seg[1:, :]
    se[:-1, :-1] = seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def boundary_tolerance_px(shape: tuple[int, int], bound_th: float = 0.008) -> float:
    """Boundary tolerance in pixels, as in ``f_measure`` of davis2017/metrics.py.

    Args:
        shape: (H, W) of the frame.
        bound_th: below 1, a fraction of the image diagonal (DAVIS default 0.008, i.e. 7 px for
            640x480); 1 or more, a number of pixels, which must be whole because the reference
            builds its disk with ``np.arange(-r, r + 1)``.

    Returns:
        ``ceil(bound_th * hypot(H, W))`` for fractions, else ``bound_th``.

    Raises:
        ValueError: ``bound_th`` is negative, or not a whole number of pixels when >= 1.
    """
    if bound_th < 0 or (bound_th >= 1 and bound_th != int(bound_th)):
        raise ValueError(f"boundary tolerance must be a fraction of the diagonal in [0, 1) or "
                         f"a whole number of pixels >= 1, got {bound_th}")
    if bound_th >= 1:
        return float(bound_th)
    return float(np.ceil(bound_th * np.linalg.norm(shape)))


@lru_cache(maxsize=16)
def _disk_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    """(dy, dx) int64 of ``skimage.morphology.disk(radius)``: all offsets with
    dy**2 + dx**2 <= radius**2."""
    r = int(radius)
    grid = np.arange(-r, r + 1)
    dx, dy = np.meshgrid(grid, grid)
    keep = dx**2 + dy**2 <= radius**2
    return dy[keep].astype(np.int64), dx[keep].astype(np.int64)


_GATHER_LIMIT = 4_000_000  # above this many point x offset look-ups, use a k-d tree instead


def _count_near(src: np.ndarray, dst: np.ndarray, radius: float, shape: tuple[int, int]) -> int:
    """How many of the (K, 2) (row, col) points ``src`` lie within Euclidean distance
    ``radius`` (inclusive) of one of the points ``dst``, all inside a (h, w) crop ``shape``.

    This is ``sum(src_boundary * dilate(dst_boundary, disk(radius)))`` of the reference. For
    the usual sizes each src point looks up every disk offset in a padded grid of the dst
    points; for very large ones (4K frames, long boundaries) a k-d tree answers the same
    question: squared pixel distances are integers, so "d**2 <= r**2" is "d < sqrt(r**2 +
    0.5)" exactly (r is whole, see :func:`boundary_tolerance_px`; cKDTree's bound is strict).
    """
    dy, dx = _disk_offsets(radius)
    if len(src) * len(dy) > _GATHER_LIMIT:
        d, _ = cKDTree(dst).query(src, k=1, distance_upper_bound=math.sqrt(radius**2 + 0.5))
        return int(np.count_nonzero(np.isfinite(d)))
    r = int(radius)
    w2 = shape[1] + 2 * r
    grid = np.zeros((shape[0] + 2 * r) * w2, bool)
    grid[(dst[:, 0] + r) * w2 + dst[:, 1] + r] = True
    flat = (src[:, 0] + r) * w2 + src[:, 1] + r
    return int(np.count_nonzero(grid[flat[:, None] + (dy * w2 + dx)[None, :]].any(axis=1)))


def _f_from_counts(n_fg: int, n_gt: int, fg_match: int, gt_match: int) -> float:
    """F-measure from boundary pixel counts, with the empty-boundary rules of ``f_measure``."""
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision, recall = fg_match / n_fg, gt_match / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _pair_scores(pred: np.ndarray | None, pbox: BBox | None, gt: np.ndarray | None,
                 gbox: BBox | None, radius: float) -> tuple[int, int, float]:
    """Intersection, union (pixels) and boundary F of one prediction/ground-truth pair.

    Args:
        pred, gt: (H, W) bool masks, or None for "no object" (an empty mask).
        pbox, gbox: their :func:`mask_bbox` (None when empty or absent).
        radius: boundary tolerance in pixels (:func:`boundary_tolerance_px` of the full frame).

    Everything is computed in the union box grown by one row/column on each side (clipped to
    the frame). This gives the full-frame result exactly: boundary pixels of a mask lie in its
    box or one row/column before it; the crop's extra last row/column is empty, so the
    reference's special last-row/column rule changes nothing there unless it is the frame's
    own last row/column; and a point's distance to the nearest boundary pixel only involves
    boundary pixels, all of which are inside the crop.
    """
    boxes = [b for b in (pbox, gbox) if b is not None]
    if not boxes:
        return 0, 0, 1.0  # both empty: J = 1 and F = 1 (no boundary on either side)
    frame = (pred if pred is not None else gt).shape
    y0 = max(min(b[0] for b in boxes) - 1, 0)
    y1 = min(max(b[1] for b in boxes) + 1, frame[0] - 1)
    x0 = max(min(b[2] for b in boxes) - 1, 0)
    x1 = min(max(b[3] for b in boxes) + 1, frame[1] - 1)
    shape = (y1 - y0 + 1, x1 - x0 + 1)
    p = pred[y0:y1 + 1, x0:x1 + 1] if pbox is not None else np.zeros(shape, bool)
    g = gt[y0:y1 + 1, x0:x1 + 1] if gbox is not None else np.zeros(shape, bool)
    inter = int(np.count_nonzero(p & g))
    union = int(np.count_nonzero(p | g))
    fg_pts = np.argwhere(seg2bmap(p))
    gt_pts = np.argwhere(seg2bmap(g))
    n_fg, n_gt = len(fg_pts), len(gt_pts)
    fg_match = gt_match = 0
    if n_fg and n_gt:
        fg_match = _count_near(fg_pts, gt_pts, radius, shape)
        gt_match = _count_near(gt_pts, fg_pts, radius, shape)
    return inter, union, _f_from_counts(n_fg, n_gt, fg_match, gt_match)


def boundary_f_measure(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> float:
    """DAVIS boundary F-measure of two (H, W) bool masks, in [0, 1].

    ``f_measure(foreground_mask=pred, gt_mask=gt, bound_th=bound_th)`` of davis2017/metrics.py
    without void pixels: precision = fraction of prediction boundary pixels within the
    tolerance (:func:`boundary_tolerance_px`) of the ground-truth boundary, recall = the
    converse, F = their harmonic mean. Empty boundaries: none on either side gives 1, none on
    one side only gives 0.
    """
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"expected two (H, W) masks of one shape, got {pred.shape} and {gt.shape}")
    radius = boundary_tolerance_px(pred.shape, bound_th)
    return _pair_scores(pred, mask_bbox(pred), gt, mask_bbox(gt), radius)[2]


def db_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """DAVIS mean, recall and decay of one object's per-frame scores (``db_statistics`` in
    davis2017/utils.py).

    Args:
        values: (T,) float, the object's J (or F) in frame order.

    Returns:
        ``(mean, recall, decay)``: the mean; the fraction of frames scoring > 0.5; the mean of
        the first of 4 frame bins minus the mean of the last (bin edges
        ``round(linspace(1, T, 5)) - 1``, each bin including its right edge, as in the
        reference). NaN for T = 0. The reference stores the edges as uint8, which wraps past
        255 frames; here they are int64 (identical results up to 256 frames).
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(v))
        recall = float(np.mean(v > 0.5))
        ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.int64)
        bins = [v[ids[i]:ids[i + 1] + 1] for i in range(4)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return mean, recall, decay


def intersection(a: np.ndarray, abox: BBox | None, b: np.ndarray, bbox: BBox | None) -> int:
    """|a & b| in pixels for two (H, W) bool masks, looking only where their boxes overlap."""
    if abox is None or bbox is None:
        return 0
    y0, y1 = max(abox[0], bbox[0]), min(abox[1], bbox[1])
    x0, x1 = max(abox[2], bbox[2]), min(abox[3], bbox[3])
    if y0 > y1 or x0 > x1:
        return 0
    return int(np.count_nonzero(a[y0:y1 + 1, x0:x1 + 1] & b[y0:y1 + 1, x0:x1 + 1]))


def pairwise_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of every prediction with every ground-truth object.

    Args:
        pred: (P, H, W) bool. gt: (G, H, W) bool.

    Returns:
        (P, G) float64; 0 where both masks are empty.
    """
    pbox = [mask_bbox(m) for m in pred]
    gbox = [mask_bbox(m) for m in gt]
    return _iou_matrix(pred, pbox, [int(np.count_nonzero(m)) for m in pred],
                       gt, gbox, [int(np.count_nonzero(m)) for m in gt])


def _iou_matrix(pred, pbox, parea, gt, gbox, garea) -> np.ndarray:
    """:func:`pairwise_iou` with the boxes and areas (pixels) of the masks already known."""
    out = np.zeros((len(pred), len(gt)))
    for i in range(len(pred)):
        for j in range(len(gt)):
            inter = intersection(pred[i], pbox[i], gt[j], gbox[j])
            union = parea[i] + garea[j] - inter
            out[i, j] = inter / union if union else 0.0
    return out


def match_objects(iou_matrix: np.ndarray) -> list[tuple[int, int]]:
    """One-to-one matching of predictions to ground-truth objects by maximum total IoU.

    Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on the (P, G) IoU matrix;
    assigned pairs with IoU 0 are dropped (they stay a miss and a false positive).

    Returns:
        ``(pred_index, gt_index)`` pairs, sorted by gt_index.
    """
    if iou_matrix.size == 0:
        return []
    rows, cols = linear_sum_assignment(iou_matrix, maximize=True)
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if iou_matrix[r, c] > 0]
    return sorted(pairs, key=lambda rc: rc[1])
