"""Clicks to masks for a model that is not promptable (``rodentseg-tiny``).

The default model predicts where rodents are, not which one the user means. A click therefore
*selects* from the model's own prediction on that frame; it never draws pixels the model did not
predict:

1. The thresholded probability map is split into candidate regions: the animals of
   :func:`rodentseg.track.instances.split_instances` (connected components with their cut-off
   tail tips joined), then any remaining small component of its own.
2. A positive point selects the region it falls in, or the nearest one within ``snap_px``
   pixels (a click next to a thin tail still counts). A point with no region that close
   selects nothing, and a note says so.
3. A box selects every region that overlaps it, and the object's mask is then clipped to the
   box (the predicted pixels inside the box).
4. A negative point removes the region it falls in from the object. Clicks count in the order
   they were made, after the box: a later positive click on a removed region selects it again.
5. A region claimed by several objects (two touching animals seen as one blob, each clicked as
   its own animal, or clicked next to an animal already tracked there) is divided between
   them: its pixels are clustered around the objects' clicks (Lloyd's k-means,
   :func:`rodentseg.track.instances.kmeans_labels`, seeded at the clicks) and each pixel goes
   to the object of its cluster. This is how touching animals are told apart: a negative
   click cannot cut a blob, a second animal can.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from rodentseg.track.instances import kmeans_labels, split_instances

_EIGHT = np.ones((3, 3), bool)


@dataclass
class FramePrompt:
    """The clicks of one object on one frame, in frame pixels (x = column, y = row).

    Attributes:
        points: list of (x, y) float pixel positions.
        labels: one per point, 1 = on the animal (foreground), 0 = not on it (background).
        box: ``(x0, y0, x1, y1)`` pixels with x0 < x1 and y0 < y1, or None.
    """

    points: list[tuple[float, float]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    box: tuple[float, float, float, float] | None = None

    def empty(self) -> bool:
        """True when the prompt holds no point and no box."""
        return not self.points and self.box is None

    def arrays(self) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """``points (P, 2) float32, labels (P,) int32, box (4,) float32``, each None if absent."""
        pts = np.array(self.points, np.float32).reshape(-1, 2) if self.points else None
        lab = np.array(self.labels, np.int32) if self.points else None
        box = np.array(self.box, np.float32) if self.box is not None else None
        return pts, lab, box


def region_labels(prob: np.ndarray, threshold: float = 0.5, min_area: int = 30) -> np.ndarray:
    """Candidate regions of a probability map (step 1 of the module docstring).

    Args:
        prob: (H, W) float32 rodent probability in [0, 1].
        threshold: probability above which a pixel is rodent.
        min_area: smallest animal in pixels (smaller blobs are regions of their own).

    Returns:
        (H, W) int32, 0 = background, 1..K = the animals (largest first), K+1.. = leftovers.
    """
    inst = split_instances(prob, threshold, None, min_area)
    lab = np.zeros(prob.shape, np.int32)
    for k, m in enumerate(inst.masks):
        lab[m] = k + 1
    rest = (prob > threshold) & (lab == 0)
    if rest.any():
        raw, _ = ndimage.label(rest, structure=_EIGHT)
        lab[rest] = raw[rest] + len(inst.masks)
    return lab


def _pixel(v: float, n: int) -> int:
    """Nearest pixel index to coordinate ``v``, clipped to 0..n-1."""
    return min(max(int(np.floor(v + 0.5)), 0), n - 1)


def _snap(lab: np.ndarray, x: float, y: float, snap_px: int) -> tuple[int, int, int] | None:
    """(region, x, y) of the region pixel nearest to (x, y) within ``snap_px``, or None."""
    h, w = lab.shape
    xi, yi = _pixel(x, w), _pixel(y, h)
    if lab[yi, xi]:
        return int(lab[yi, xi]), xi, yi
    y0, x0 = max(yi - snap_px, 0), max(xi - snap_px, 0)
    sub = lab[y0:yi + snap_px + 1, x0:xi + snap_px + 1]
    ys, xs = np.nonzero(sub)
    if not len(ys):
        return None
    d2 = (ys + y0 - yi) ** 2 + (xs + x0 - xi) ** 2
    k = int(np.argmin(d2))
    if d2[k] > snap_px**2:
        return None
    return int(sub[ys[k], xs[k]]), int(xs[k] + x0), int(ys[k] + y0)


def _box_slice(box, h: int, w: int) -> tuple[slice, slice]:
    x0, y0, x1, y1 = box
    return (slice(max(int(np.floor(y0)), 0), min(int(np.ceil(y1)), h)),
            slice(max(int(np.floor(x0)), 0), min(int(np.ceil(x1)), w)))


def masks_from_prompts(prob: np.ndarray, prompts: dict[int, FramePrompt],
                       keep: dict[int, np.ndarray] | None = None, threshold: float = 0.5,
                       min_area: int = 30, snap_px: int = 10
                       ) -> tuple[dict[int, np.ndarray], list[str]]:
    """Masks of the clicked objects on one frame (see the module docstring).

    Args:
        prob: (H, W) float32 rodent probability of the frame, in [0, 1].
        prompts: ``{obj_id: FramePrompt}``, the clicks of each object on this frame.
        keep: ``{obj_id: (H, W) bool}`` masks of objects already on the frame without clicks
            here (from propagation). Each claims the regions it overlaps, seeded at its
            centroid there, so that a click on an animal touching it divides the blob.
        threshold: probability above which a pixel is rodent.
        min_area: smallest animal in pixels.
        snap_px: how far, in pixels, a positive point may be from the predicted region it selects.

    Returns:
        ``{obj_id: (H, W) bool}`` for every object of ``prompts`` and ``keep`` (possibly
        empty), and notes for the user (points that selected nothing).
    """
    keep = keep or {}
    lab = region_labels(prob, threshold, min_area)
    h, w = lab.shape
    seeds: dict[int, list[tuple[float, float, int]]] = {}  # region -> (x, y, owner)
    notes = []
    for oid, p in prompts.items():
        chosen: dict[int, list[tuple[float, float, bool]]] = {}  # region -> (x, y, is point)
        if p.box is not None:
            sy, sx = _box_slice(p.box, h, w)
            sub = lab[sy, sx]
            for r in np.unique(sub[sub > 0]):
                ys, xs = np.nonzero(sub == r)
                chosen[int(r)] = [(xs.mean() + sx.start, ys.mean() + sy.start, False)]
        for (x, y), label in zip(p.points, p.labels):
            if not label:
                chosen.pop(int(lab[_pixel(y, h), _pixel(x, w)]), None)
                continue
            hit = _snap(lab, x, y, snap_px)
            if hit is None:
                notes.append(f"animal {oid}: the model predicts no animal within {snap_px} px "
                             f"of ({x:.0f}, {y:.0f})")
                continue
            points = [s for s in chosen.get(hit[0], []) if s[2]]  # a click replaces box seeds
            chosen[hit[0]] = [*points, (hit[1], hit[2], True)]
        for r, ss in chosen.items():
            seeds.setdefault(r, []).extend((x, y, oid) for x, y, _ in ss)
    for oid, m in keep.items():
        if oid in prompts or not m.any():
            continue
        for r in np.unique(lab[m & (lab > 0)]):
            ys, xs = np.nonzero(m & (lab == r))
            seeds.setdefault(int(r), []).append((xs.mean(), ys.mean(), oid))
    out = {oid: np.zeros((h, w), bool) for oid in (*prompts, *keep)}
    objects = ndimage.find_objects(lab)
    for r, ss in seeds.items():
        sl = objects[r - 1]
        region = lab[sl] == r
        owners = {s[2] for s in ss}
        if len(owners) == 1:
            out[ss[0][2]][sl] |= region
            continue
        ys, xs = np.nonzero(region)
        pts = np.stack([xs + sl[1].start, ys + sl[0].start], 1)
        who = np.array([s[2] for s in ss])[kmeans_labels(pts, np.array([s[:2] for s in ss]))]
        for oid in owners:
            sel = who == oid
            out[oid][ys[sel] + sl[0].start, xs[sel] + sl[1].start] = True
    for oid, p in prompts.items():
        if p.box is not None:
            sy, sx = _box_slice(p.box, h, w)
            clipped = np.zeros((h, w), bool)
            clipped[sy, sx] = out[oid][sy, sx]
            out[oid] = clipped
    return out, notes


def stability_from_prob(prob: np.ndarray, mask: np.ndarray, offset: float = 1.0,
                        margin: int = 4) -> float:
    """How little a mask would change if the threshold moved, for the review queue.

    The analogue of SAM's stability score (:func:`rodentseg.annotate.preprocess.stability_score`,
    Kirillov et al. 2023) on a probability map: near the mask (its box grown by ``margin``
    pixels), the pixels with logit > ``offset`` divided by those with logit > ``-offset``.

    Args:
        prob: (H, W) float32 probabilities in [0, 1].
        mask: (H, W) bool, the object's mask.
        offset: threshold shift in logit units (1.0 = probabilities 0.73 vs 0.27).
        margin: pixels added around the mask's box.

    Returns:
        A float in [0, 1]; 1.0 for a crisp mask, 0.0 for an empty one.
    """
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return 0.0
    y0, y1 = max(rows[0] - margin, 0), rows[-1] + margin + 1
    x0, x1 = max(cols[0] - margin, 0), cols[-1] + margin + 1
    p = prob[y0:y1, x0:x1]
    hi, lo = 1.0 / (1.0 + np.exp(-offset)), 1.0 / (1.0 + np.exp(offset))
    union = np.count_nonzero(p > lo)
    return float(np.count_nonzero(p > hi) / union) if union else 0.0
