"""Split a frame's rodent probability map into one mask per animal.

Connected components (8-connectivity) of the thresholded map are the candidate animals. Small
fragments (a tail tip cut off by a thin gap) join the nearest animal within ``merge_px`` if they
are small next to it (at most ``max_fragment`` of its area); other specks are dropped. With a
known number N of animals, the blobs kept are those that the tracks' predicted centroids pick
(optimal one-to-one assignment by distance, ``scipy.optimize.linear_sum_assignment``, within
``link_px``, among blobs of at least ``min_pick`` of the largest one's area), then the largest
others up to N; extra blobs are treated as fragments. So a dark patch of wall that looks like a
bigger mouse for a few frames does not take the animal's place. While there are fewer blobs
than animals the blob most likely to hold several animals (the one holding most predicted track
positions, else the largest) is cut in two by 2-means clustering of its pixel coordinates,
seeded with the tracks' predicted centroids when they are known (Lloyd 1982). That cut is a
straight line between touching animals: adequate for the identities and the centroids, not a
pixel-exact boundary where the bodies overlap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

_EIGHT = np.ones((3, 3), bool)


@dataclass
class Instances:
    """Masks of the animals found in one frame.

    Attributes:
        masks: (K, H, W) bool.
        scores: (K,) float32, mean rodent probability inside each mask.
    """

    masks: np.ndarray
    scores: np.ndarray


def kmeans_labels(pts: np.ndarray, seeds: np.ndarray, iters: int = 10) -> np.ndarray:
    """Lloyd's k-means (Lloyd 1982) of points from given starting centres.

    Args:
        pts: (P, 2) float (x, y) pixel coordinates.
        seeds: (M, 2) float starting centres (x, y); a centre that loses all its points
            stays where it was.
        iters: most Lloyd iterations (it stops earlier once no point changes cluster).

    Returns:
        (P,) int64 cluster index in [0, M) of each point.
    """
    pts = np.asarray(pts, np.float32)
    c = np.asarray(seeds, np.float32).copy()
    lab = np.full(len(pts), -1)
    for _ in range(iters):
        new = ((pts[:, None, :] - c[None]) ** 2).sum(2).argmin(1)
        if (new == lab).all():
            break
        lab = new
        for k in range(len(c)):
            sel = lab == k
            if sel.any():
                c[k] = pts[sel].mean(0)
    return lab


def _kmeans2(ys: np.ndarray, xs: np.ndarray, seeds: np.ndarray, iters: int = 10) -> np.ndarray:
    """Two-cluster :func:`kmeans_labels` on pixel coordinates; returns a (P,) bool label."""
    return kmeans_labels(np.stack([xs, ys], 1), seeds[:2], iters) == 1


def _split_seeds(ys, xs, priors: np.ndarray | None) -> np.ndarray:
    """Two starting centres: predicted track centroids inside the blob's box, else the two
    ends of the blob along its principal axis."""
    if priors is not None and len(priors):
        inside = priors[(priors[:, 0] >= xs.min() - 5) & (priors[:, 0] <= xs.max() + 5)
                        & (priors[:, 1] >= ys.min() - 5) & (priors[:, 1] <= ys.max() + 5)]
        if len(inside) >= 2:
            return inside[:2]
    pts = np.stack([xs, ys], 1).astype(np.float32)
    mean = pts.mean(0)
    _, _, vt = np.linalg.svd(pts - mean, full_matrices=False)
    proj = (pts - mean) @ vt[0]
    return np.stack([mean + vt[0] * np.percentile(proj, 25), mean + vt[0] * np.percentile(proj, 75)])


def _keep_n(big: np.ndarray, areas: np.ndarray, n: int, fg: np.ndarray, lab: np.ndarray,
            priors: np.ndarray | None, link_px: float, min_pick: float) -> np.ndarray:
    """Component indices (``big``, largest first) to keep as the ``n`` animals: those assigned
    to the predicted track centroids ``priors`` (T, 2) within ``link_px`` among the blobs of at
    least ``min_pick`` times the largest one's area, then the largest others."""
    if len(big) <= n or priors is None or not len(priors):
        return big[:n]
    cand = big[areas[big] >= min_pick * areas[big[0]]]
    cents = np.array(ndimage.center_of_mass(fg, lab, cand + 1))[:, ::-1]  # (x, y) per candidate
    dist = np.linalg.norm(priors[:, None] - cents[None], axis=2)  # (T, candidates) pixels
    rows, cols = linear_sum_assignment(dist)
    chosen = [int(cand[c]) for r, c in zip(rows, cols) if dist[r, c] <= link_px]
    rest = [int(b) for b in big if b not in chosen]
    return np.array((chosen + rest)[:n], dtype=big.dtype)


def split_instances(prob: np.ndarray, threshold: float = 0.5, n_animals: int | None = None,
                    min_area: int = 30, merge_px: float = 12.0, max_fragment: float = 0.1,
                    priors: np.ndarray | None = None, link_px: float = 50.0,
                    min_pick: float = 0.25) -> Instances:
    """Animal masks from a rodent probability map.

    Args:
        prob: (H, W) float32 in [0, 1].
        threshold: probability above which a pixel is rodent.
        n_animals: known number of animals, or None to keep every blob of ``min_area`` or more.
        min_area: smallest blob, in pixels, that counts as an animal by itself.
        merge_px: a smaller blob whose bounding box lies within this many pixels of an
            animal's joins that animal (tail tips); otherwise it is dropped.
        max_fragment: ... and only if its area is at most this fraction of the animal's. A
            detached tail tip is a few percent of the body; a larger blob next to an animal is
            something else (its shadow or reflection on a dark wall, another animal beyond
            ``n_animals``), which would drag the centroid. Raising it keeps larger detached
            parts (a head cut off by a cable) at the risk of merging such look-alikes; 0.1 was
            chosen on the tracktor video, where mirror images on the dark wall were the
            largest error (centroid agreement 97.9% -> 99.0%).
        priors: (T, 2) float predicted (x, y) centroids of the tracks, in pixels, used to pick
            the ``n_animals`` blobs among more and to seed splits of touching animals; None when
            unknown (then the largest blobs are kept).
        link_px: a predicted centroid picks a blob only if the blob's centroid lies within this
            many pixels of it.
        min_pick: ... and only a blob of at least this fraction of the largest blob's area (a
            cut-off tail or a speck near a stale prediction is no animal; on the tracktor video
            the dark-wall patches that outgrow the mouse are 1-2x its area).

    Returns:
        The animals, largest first.
    """
    fg = prob > threshold
    lab, n = ndimage.label(fg, structure=_EIGHT)
    if n == 0:
        return Instances(np.zeros((0, *prob.shape), bool), np.zeros(0, np.float32))
    areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    boxes = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop)
                      for s in ndimage.find_objects(lab)])  # y0, y1, x0, x1
    order = np.argsort(-areas, kind="stable")
    big = order[areas[order] >= min_area]
    if n_animals is not None:
        big = _keep_n(big, areas, n_animals, fg, lab, priors, link_px, min_pick)
    group = np.zeros(n + 1, np.int32)  # component label -> animal number (0 = dropped)
    group[big + 1] = np.arange(1, len(big) + 1)
    small = np.setdiff1d(np.arange(n), big)
    if len(big) and len(small):
        b, s_ = boxes[big][None], boxes[small][:, None]
        dy = np.maximum(np.maximum(b[..., 0] - s_[..., 1], s_[..., 0] - b[..., 1]), 0)
        dx = np.maximum(np.maximum(b[..., 2] - s_[..., 3], s_[..., 2] - b[..., 3]), 0)
        gap = np.hypot(dx, dy)  # (small, big) box-to-box distance in pixels
        nearest = gap.argmin(1)
        near = gap[np.arange(len(small)), nearest] <= merge_px
        near &= areas[small] <= max_fragment * areas[big][nearest]
        group[small[near] + 1] = nearest[near] + 1
    animal = group[lab]
    masks = [animal == k for k in range(1, len(big) + 1)]
    if n_animals is not None:
        while 0 < len(masks) < n_animals:
            def n_priors(m):
                if priors is None or not len(priors):
                    return 0
                px = np.clip(np.round(priors).astype(int), 0, [prob.shape[1] - 1, prob.shape[0] - 1])
                return int(m[px[:, 1], px[:, 0]].sum())
            k = max(range(len(masks)), key=lambda t: (n_priors(masks[t]), masks[t].sum()))
            ys, xs = np.nonzero(masks[k])
            if len(ys) < 2 * min_area:
                break
            part = _kmeans2(ys, xs, _split_seeds(ys, xs, priors))
            if part.all() or not part.any():
                break
            a = np.zeros_like(masks[k])
            a[ys[part], xs[part]] = True
            masks[k] = masks[k] & ~a
            masks.append(a)
    if not masks:
        return Instances(np.zeros((0, *prob.shape), bool), np.zeros(0, np.float32))
    m = np.stack(masks)
    m = m[np.argsort(-m.sum((1, 2)), kind="stable")]
    scores = np.array([prob[x].mean() for x in m], np.float32)
    return Instances(m, scores)
