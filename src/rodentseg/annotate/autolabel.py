"""Masks from what a lab already has: keypoints, a still camera, and the current model.

:func:`label_frame` makes one frame's instance label from three cues:

1. **Contrast** of each pixel against the **background**: the video's own background where the
   animals move (per-pixel temporal median of sampled frames, with the pixels near each frame's
   keypoints left out of the median, so an animal that rests in one place does not become
   background), else a local background (a median filter of the frame several body widths wide)
   when there are too few frames to model it. The contrast is the luma difference, or with
   ``LabelParams.colour`` on a colour video the distance in CIE L*a*b* (a brown coat on a grey
   floor of its brightness differs in hue, not in luma).
2. **Keypoints**: which animal is where, its polarity (dark on light or light on dark, sampled
   at its body keypoints, so white and black mice on any floor are handled alike) and its
   contrast level, its extent (the spread of its keypoints: the body length), a region around
   its keypoints that bounds its mask, and the convex hull of its body points, which joins the
   mask. Without keypoints, the largest blobs that differ from the background stand for the
   animals (:mod:`rodentseg.annotate.autolabel_run`).
3. **The animal's own contrast level** sets the threshold (a fraction ``frac`` of it), so a
   shadow or halo, which darkens the floor less than fur does, is left out, as in the silver
   masks of ``openfield-m4s1``; a morphological opening of a few pixels (scaled with the body)
   removes thin lines, tethers and the tail, and the tail is then traced from the tail-base
   keypoint along its darkest line (:func:`trace_tail`).

Pixels claimed by two animals go to the one with the nearest keypoint. Each animal-frame gets a
doubt in [0, 1] from the cues that disagree (:data:`DOUBT_CUES`): body keypoints outside its
mask, an area far from the animal's median area, a weak contrast, contact with another animal,
the frame border, several pieces. Frames whose doubt exceeds ``max_doubt`` are left out of the
training layout and listed with their reason.

The threshold-and-shape recipe follows the one that made the checked silver masks of
``../shared/data/openfield-m4s1`` (its README); the masked median background is the classic
background subtraction of video trackers (idTracker, Tracktor, ezTrack), made robust to resting
animals with the keypoints.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from rodentseg.errors import RodentsegError

#: Body-part names that are not on the body's outline (left out of polarity sampling and of
#: the doubt check): tail points past its base, paws, ear tips, whiskers.
_OFF_BODY = ("tail", "paw", "hand", "foot", "tip", "whisker", "finger", "toe")
_TAIL_BASE = ("tailbase", "tail_base", "tail base", "tailroot", "tail_root", "tail root",
              "tail", "tti", "tail_0")

#: The doubt cues of one animal-frame, each in [0, 1].
DOUBT_CUES = ("keypoints", "area", "contrast", "contact", "border", "pieces", "missing",
              "prompted")


def is_tail_base(name: str) -> bool:
    """True for the names keypoint files give the tail's base (``tailbase``, ``tail_base``,
    ``TTI``, ``tail`` alone, ...)."""
    return name.strip().lower().replace("-", "_") in _TAIL_BASE


def is_body_part(name: str) -> bool:
    """True for keypoints on the trunk or head outline (snout, ears, neck, hips, tail base);
    False for tail points past the base, paws, ear tips and whiskers."""
    n = name.strip().lower().replace("-", "_")
    if n in _TAIL_BASE:
        return True
    return not any(w in n for w in _OFF_BODY)


@dataclass
class AnimalPrior:
    """Where one animal is on one frame.

    Attributes:
        name: the individual's name in the keypoint file (``""`` for single-animal files).
        xy: (P, 2) float (x, y) pixels of its keypoints inside the frame (all parts).
        body: (P,) bool, which of them are body points (:func:`is_body_part`).
        length_px: body length in pixels (spread of its keypoints over the video, median).
        tail_base: (2,) float (x, y) of the tail's base, or None when no keypoint names it
            (then the tail may start anywhere on the body).
    """

    name: str
    xy: np.ndarray
    body: np.ndarray
    length_px: float
    tail_base: np.ndarray | None = None

    @property
    def body_xy(self) -> np.ndarray:
        """(Q, 2) the body points, or all points when none is a body point."""
        return self.xy[self.body] if self.body.any() else self.xy


@dataclass
class LabelParams:
    """Settings of :func:`label_frame` (defaults measured on openfield-m4s1).

    Attributes:
        frac: threshold as a fraction of the animal's contrast level. Lower takes in more of a
            pale fringe (ears, fur edge) but also shadows; higher loses thin dark parts.
        min_contrast: smallest threshold, grey levels (0-255).
        open_frac: opening radius as a fraction of the body length (at least 1 px): removes
            lines and the tail before the body is chosen.
        region_frac: the body is searched within this many body lengths of a keypoint.
        tail_frac: the longest tail, in body lengths.
        tail_contrast: the tail is traced (:func:`trace_tail`) while its contrast stays above
            this fraction of the fur's.
        tail_width_frac: the widest tail, from its centre line, in body lengths.
        max_doubt: frames with an animal above this doubt are left out.
        min_coverage: an animal's video background is trusted where at least this fraction of
            the background frames saw its place free (else a local background is used).
        hull: 1 adds the convex hull of the body keypoints (near the contrast mask) to the
            mask, 0 does not.
        colour: 1 measures the contrast of a colour video as the distance between frame and
            background in CIE L*a*b* (:func:`colour_contrast`), so a brown or agouti coat on a
            grey floor of about its brightness stands out by its hue; 0 (default) measures
            luma alone. Grey videos (:func:`is_grey`) are measured by luma either way. The
            colour distance has no sign (every animal counts as "unlike the floor"), and it
            also lifts a coloured shadow or reflection that luma would leave out.
        background_passes: without keypoints, how many times the video's background is
            made: each pass after the first leaves the blobs found against the previous one
            out of the median (animals that rest in one place on many of the sampled frames
            otherwise become background and their masks get holes; a body found in pieces
            grows back over passes). 1 (default): once. Each pass reads the background's
            frames again.
    """

    frac: float = 0.4
    min_contrast: float = 12.0
    open_frac: float = 0.045
    region_frac: float = 0.6
    tail_frac: float = 1.1
    tail_contrast: float = 0.08
    tail_width_frac: float = 0.02
    max_doubt: float = 0.5
    min_coverage: float = 0.25
    hull: float = 1.0
    colour: float = 0.0
    background_passes: float = 1.0


@dataclass
class AnimalResult:
    """One animal's mask on one frame and how sure the labelling is.

    Attributes:
        obj_id: instance id in the label image (1-based, the individual's order in the file).
        mask: (H, W) bool.
        doubt: in [0, 1], the largest cue.
        cues: each of :data:`DOUBT_CUES` -> [0, 1].
    """

    obj_id: int
    mask: np.ndarray
    doubt: float
    cues: dict = field(default_factory=dict)

    @property
    def reason(self) -> str:
        """The cue that sets the doubt (``""`` when none is above 0)."""
        return top_cue(self.cues)[1]


def top_cue(cues: dict) -> tuple[float, str]:
    """The doubt (the largest cue) and the cue that sets it (``""`` when none is above 0)."""
    name, value = max(cues.items(), key=lambda kv: kv[1], default=("", 0.0))
    return value, name if value > 0 else ""


def area_cue(area: float, median_area: float) -> float:
    """The ``area`` cue: how far a mask's area is from the animal's median, in [0, 1]
    (1.6 times larger or smaller -> 0.5)."""
    return min(1.0, abs(math.log(area / median_area)) / (2 * math.log(1.6)))


def _nearest_owner(masks: np.ndarray, animals: list[AnimalPrior]) -> None:
    """Give each pixel claimed by several of the (K, H, W) ``masks`` to the animal with the
    nearest keypoint, in place."""
    shared = masks.sum(0) > 1
    if not shared.any():
        return
    ys, xs = np.nonzero(shared)
    dist = np.stack([np.min(np.hypot(xs[:, None] - a.xy[None, :, 0],
                                     ys[:, None] - a.xy[None, :, 1]), 1) for a in animals])
    masks[:, ys, xs] = False
    masks[dist.argmin(0), ys, xs] = True


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float32 luma (ITU-R BT.601) of an (H, W, 3) uint8 RGB frame, 0-255."""
    return rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def is_grey(rgb: np.ndarray, tol: float = 4.0) -> bool:
    """True when an (H, W, 3) RGB frame (or background) carries no colour: the 99th percentile
    of its channels' largest difference is at most ``tol`` levels (compression leaves a little
    chroma in grey video)."""
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        return True
    x = rgb[::4, ::4, :3].astype(np.float32)
    spread = x.max(-1) - x.min(-1)
    return float(np.percentile(spread, 99)) <= tol


def lab(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) float32 CIE L*a*b* (sRGB, D65; L* in 0-100) of an (H, W, 3) RGB image with
    values in 0-255 (uint8 or float), by :func:`kornia.color.rgb_to_lab`.

    Raises:
        RodentsegError: kornia is not installed (the ``[train]`` extra).
    """
    try:
        import kornia
    except ImportError:
        raise RodentsegError('the colour cue needs kornia: pip install "rodentseg[train]"'
                             ) from None
    import torch

    t = torch.from_numpy(np.ascontiguousarray(rgb[..., :3], dtype=np.float32) / 255.0)
    with torch.no_grad():
        out = kornia.color.rgb_to_lab(t.clamp(0, 1).permute(2, 0, 1)[None])[0]
    return out.permute(1, 2, 0).numpy()


def colour_contrast(rgb: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(H, W) float32 contrast of a colour frame against a colour background: their CIE76
    distance in L*a*b* (:func:`lab`), times 2.55 so that a difference of lightness alone reads
    about as many units as its luma difference in grey levels (the thresholds of
    :class:`LabelParams` keep their meaning). Always >= 0.

    Args:
        rgb: (H, W, 3) uint8 RGB frame. background: (H, W, 3) float32 RGB, 0-255.
    """
    d = lab(rgb) - lab(background)
    return (2.55 * np.sqrt((d * d).sum(-1))).astype(np.float32)


def contrast(frame: np.ndarray, background: np.ndarray) -> np.ndarray:
    """(H, W) float32 signed contrast of an (H, W, 3) uint8 RGB frame against ``background``:
    frame luma minus background luma when the background is (H, W) luma, the colour distance
    (:func:`colour_contrast`, >= 0) when it is (H, W, 3) RGB."""
    if background.ndim == 3:
        return colour_contrast(frame, background)
    return luma(frame) - background


def disk(radius: float) -> np.ndarray:
    """A (2r+1, 2r+1) bool disk footprint of integer radius ``round(radius)`` (at least 1)."""
    r = max(1, int(round(radius)))
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def grow(mask: np.ndarray, radius: float) -> np.ndarray:
    """``mask`` dilated by a disk of ``radius`` pixels (Euclidean distance transform: the cost
    does not grow with the radius, unlike a structuring element)."""
    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= max(1, round(radius))


def shrink_open(mask: np.ndarray, radius: float) -> np.ndarray:
    """Morphological opening of ``mask`` by a disk of ``radius`` pixels, by distance transforms
    (erosion: farther than the radius from the background; dilation back the same way)."""
    r = max(1, round(radius))
    core = ndimage.distance_transform_edt(mask) > r
    return grow(core, r) & mask if core.any() else core


def near_points(shape: tuple[int, int], xy: np.ndarray, radius: float) -> np.ndarray:
    """(H, W) bool: pixels within ``radius`` pixels of any of the (P, 2) (x, y) points."""
    seeds = np.zeros(shape, bool)
    pts = np.floor(np.asarray(xy) + 0.5).astype(np.int64)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < shape[1]) & (pts[:, 1] >= 0) & (pts[:, 1] < shape[0])
    seeds[pts[ok, 1], pts[ok, 0]] = True
    if not seeds.any():
        return seeds
    return ndimage.distance_transform_edt(~seeds) <= radius


def local_background(y: np.ndarray, length_px: float) -> np.ndarray:
    """A background for one frame alone: a median filter about one body length wide (most
    pixels in such a window are floor even on the animal), on a grid coarse enough that the
    window is at most 15 cells, interpolated back (bilinear).

    Args:
        y: (H, W) float32 luma. length_px: body length in pixels.

    Returns:
        (H, W) float32.
    """
    f = max(4, int(np.ceil(1.2 * length_px / 15)))
    small = y[f // 2::f, f // 2::f]
    size = max(3, round(1.2 * length_px / f) | 1)
    med = ndimage.median_filter(small, size=size, mode="nearest")
    zoom = (y.shape[0] / med.shape[0], y.shape[1] / med.shape[1])
    big = ndimage.zoom(med, zoom, order=1, mode="nearest", grid_mode=True)
    out = np.empty_like(y)
    h, w = min(big.shape[0], y.shape[0]), min(big.shape[1], y.shape[1])
    out[:h, :w] = big[:h, :w]
    out[h:, :] = out[h - 1:h, :]
    out[:, w:] = out[:, w - 1:w]
    return out


def hull_mask(shape: tuple[int, int], xy: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose centres lie inside the convex hull of the (P, 2) (x, y)
    points (empty when the points span no area)."""
    from matplotlib.path import Path as MplPath
    from scipy.spatial import ConvexHull, QhullError

    out = np.zeros(shape, bool)
    pts = np.asarray(xy, float)
    if len(pts) < 3:
        return out
    try:
        hull = pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):
        return out
    x0, y0 = np.maximum(np.floor(hull.min(0)).astype(int), 0)
    x1 = min(shape[1], int(np.ceil(hull[:, 0].max())) + 1)
    y1 = min(shape[0], int(np.ceil(hull[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return out
    gy, gx = np.mgrid[y0:y1, x0:x1]
    inside = MplPath(hull).contains_points(np.stack([gx.ravel(), gy.ravel()], 1))
    out[y0:y1, x0:x1] = inside.reshape(gy.shape)
    return out


def _contrast_level(c: np.ndarray, animal: AnimalPrior) -> tuple[float, float]:
    """Polarity (+1 lighter than background, -1 darker) and contrast level of an animal.

    Both come from the trunk: the pixels inside the convex hull of its keypoints (snout, ears,
    paws, tail base span the trunk), else those within 0.15 body lengths of its body points.
    The polarity is the sign of their median contrast, the level their 75th percentile of the
    signed contrast: the fur's own contrast, not that of a pale snout, ears, paws or a bright
    tail, where keypoints are clicked.
    """
    h, w = c.shape
    trunk = hull_mask((h, w), animal.xy)
    if trunk.sum() < 20:
        trunk = near_points((h, w), animal.body_xy, max(3.0, 0.15 * animal.length_px))
    if not trunk.any():
        return 1.0, 0.0
    vals = c[trunk]
    sign = 1.0 if float(np.median(vals)) >= 0 else -1.0
    return sign, float(np.percentile(sign * vals, 75))


def _animal_mask(c: np.ndarray, animal: AnimalPrior, p: LabelParams
                 ) -> tuple[np.ndarray, float, float, np.ndarray]:
    """The mask of one animal from the contrast map ``c`` (frame minus background, luma).

    Returns:
        mask (H, W) bool, contrast level, threshold, and the mask the contrast alone found
        (before the keypoints' hull and the traced tail).
    """
    shape = c.shape
    sign, level = _contrast_level(c, animal)
    thr = max(p.min_contrast, p.frac * level)
    sc = sign * ndimage.gaussian_filter(c, 1.0)
    fg = (sc > thr) & near_points(shape, animal.xy, p.region_frac * animal.length_px)
    body = shrink_open(fg, p.open_frac * animal.length_px)
    lab, n = ndimage.label(body)
    if n == 0:
        return body, level, thr, body
    touch = near_points(shape, animal.body_xy, max(3.0, p.open_frac * animal.length_px + 2))
    keep = np.unique(lab[touch & (lab > 0)])
    body = np.isin(lab, keep)
    # the fur's edge that the opening shaved off (ears, paws, the tail's base), but not the
    # thin things that touch the body (floor lines, the tail's shadow copies): those are
    # farther than the opening's radius from what it kept
    r_open = max(1.0, p.open_frac * animal.length_px)
    whole = body | (fg & grow(body, r_open + 1))
    seen = ndimage.binary_fill_holes(whole)  # what the contrast alone found
    if p.hull and whole.any():
        # the body keypoints span the trunk (paws and a side view's feet included): what lies
        # between them is animal even where its fur is shaded down to the floor's level
        whole |= hull_mask(shape, animal.body_xy) & grow(whole, 0.25 * animal.length_px)
    whole = ndimage.binary_fill_holes(whole)
    if animal.tail_base is not None:
        other = ndimage.binary_dilation((lab > 0) & ~body, disk(2))
        whole |= trace_tail(sc, whole, animal, level, p) & ~other
    return ndimage.binary_fill_holes(whole), level, thr, seen


def trace_tail(sc: np.ndarray, body: np.ndarray, animal: AnimalPrior, level: float,
               p: LabelParams) -> np.ndarray:
    """The tail as a walk along its darkest (most contrasted) line, from the tail base outwards.

    The tail is fainter than the fur and about as faint as the shadow halo, and the lights
    often draw one or two fainter copies of it beside it, so it is traced rather than
    thresholded (as the silver masks of ``openfield-m4s1`` were): from the tail-base keypoint,
    pointing away from the body's centre, each step of 2 px goes to the most contrasted point
    within 40 degrees of the current heading (sampled in a smoothed contrast map, so the walk
    keeps to the real tail, not its fainter shadow copies); the walk stops where the contrast
    falls below ``tail_contrast`` of the fur's or after ``tail_frac`` body lengths. Each point
    of the path is widened to the half-maximum width of the contrast across the path, at most
    ``tail_width_frac`` body lengths from the centre line.

    Args:
        sc: (H, W) float signed contrast (positive = like the animal), grey levels.
        body: (H, W) bool, the body found so far (the walk starts where it leaves it).

    Returns:
        (H, W) bool, the tail (empty when none is found).
    """
    h, w = sc.shape
    tail = np.zeros((h, w), bool)
    ys, xs = np.nonzero(body)
    if not len(xs):
        return tail
    centre = np.array([xs.mean(), ys.mean()])
    pos = np.asarray(animal.tail_base, float).copy()
    heading = pos - centre
    norm = np.hypot(*heading)
    if norm < 1e-6:
        return tail
    heading /= norm
    stop = max(p.min_contrast, p.tail_contrast * level)
    half_width = max(1.0, p.tail_width_frac * animal.length_px)
    smooth = ndimage.gaussian_filter(sc, 1.0)
    # start where the line from the body's centre through the tail base leaves the body
    for _ in range(int(0.25 * animal.length_px)):
        r, c = int(round(pos[1])), int(round(pos[0]))
        if not (0 <= r < h and 0 <= c < w) or not body[r, c]:
            break
        pos = pos + heading
    angles = np.deg2rad(np.linspace(-40, 40, 9))
    best, best_score = [], 0.0
    for turn in np.deg2rad([-30, -15, 0, 15, 30]):  # several starts; the most evidence wins
        hd = _rotate(heading, turn)
        path = _walk(smooth, body, pos + 2.0 * hd, hd, angles, stop, half_width,
                     int(p.tail_frac * animal.length_px / 2.0))
        score = sum(v for _, _, v in path)
        if score > best_score:
            best, best_score = path, score
    if not best:
        return tail
    path = [(pos, best[0][1], best[0][2])] + best  # from where it leaves the body
    dense = []  # a point every half pixel, so consecutive profiles overlap
    for k, ((p0, h0, v0), (p1, _, v1)) in enumerate(zip(path[:-1], path[1:])):
        n = max(1, int(np.ceil(2 * np.hypot(*(p1 - p0)))))
        # the first segment joins the body: its centre line only (the body's blur around it
        # would widen a half-maximum profile)
        dense += [(p0 + (p1 - p0) * t, h0, v0 + (v1 - v0) * t, k > 0) for t in np.arange(n) / n]
    dense.append((*path[-1], True))
    offsets = np.arange(-half_width, half_width + 0.5, 0.5)
    for pt, hd, peak, widen in dense:
        normal = np.array([-hd[1], hd[0]])
        prof = pt[None] + (offsets if widen else np.zeros(1))[:, None] * normal[None]
        v = ndimage.map_coordinates(smooth, [prof[:, 1], prof[:, 0]], order=1, cval=0)
        keep = prof if not widen else prof[v >= 0.5 * peak]
        cols = np.floor(keep[:, 0] + 0.5).astype(int)
        rows = np.floor(keep[:, 1] + 0.5).astype(int)
        ok = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        tail[rows[ok], cols[ok]] = True
    tail |= ndimage.binary_closing(tail, np.ones((3, 3), bool))
    return tail & ~body


def _rotate(v: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _walk(smooth: np.ndarray, body: np.ndarray, pos: np.ndarray, heading: np.ndarray,
          angles: np.ndarray, stop: float, half_width: float, steps: int, step: float = 2.0
          ) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Greedy walk of :func:`trace_tail`: (point, heading, contrast) per step."""
    path = []
    for _ in range(steps):
        cands = np.stack([pos + step * _rotate(heading, a) for a in angles])
        vals = ndimage.map_coordinates(smooth, [cands[:, 1], cands[:, 0]], order=1, cval=-1e9)
        inside = ndimage.map_coordinates(body, [cands[:, 1], cands[:, 0]], order=0, cval=0)
        vals[inside > 0] = -1e9  # the walk never goes back into the body
        k = int(np.argmax(vals))
        new = cands[k]
        d = (new - pos) / step
        sides = new[None] + np.array([[-d[1], d[0]], [d[1], -d[0]]]) * (half_width + 3)
        side = ndimage.map_coordinates(smooth, [sides[:, 1], sides[:, 0]], order=1, cval=0)
        if vals[k] < stop or (len(path) > 5 and vals[k] - side.min() < 0.5 * stop):
            break  # faded, or no longer a line
        heading, pos = d, new
        path.append((pos.copy(), heading.copy(), float(vals[k])))
    return path


def _doubt(mask: np.ndarray, seen: np.ndarray, animal: AnimalPrior, level: float,
           p: LabelParams, others: np.ndarray, median_area: float | None) -> dict:
    """The cues of :data:`DOUBT_CUES` for one animal's final ``mask``; ``seen`` is the part
    the contrast found by itself (the keypoints are checked against it, not against their own
    hull)."""
    h, w = mask.shape
    cues = dict.fromkeys(DOUBT_CUES, 0.0)
    area = int(mask.sum())
    if area == 0:
        cues["missing"] = 1.0
        return cues
    pts = np.floor(animal.body_xy + 0.5).astype(np.int64)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    if ok.any():  # clicked points sit on the outline (a pale snout tip): some slack
        near = grow(seen, max(2.0, 0.05 * animal.length_px))
        outside = 1.0 - near[pts[ok, 1], pts[ok, 0]].mean()
        cues["keypoints"] = min(1.0, outside / 0.6)  # 30% of the points outside -> 0.5
    if median_area:
        cues["area"] = area_cue(area, median_area)
    cues["contrast"] = float(np.clip((2.5 * p.min_contrast - level) / (1.5 * p.min_contrast),
                                     0, 1))
    if others.any():
        touching = ndimage.binary_dilation(mask, disk(2)) & others
        cues["contact"] = min(1.0, touching.sum() / max(1.0, 0.1 * math.sqrt(area) * 4))
    edge = mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
    cues["border"] = 0.3 if edge else 0.0
    lab, n = ndimage.label(mask, np.ones((3, 3), bool))
    if n > 1:  # pieces apart from the largest: a cut-off tail tip counts little, half a body much
        sizes = ndimage.sum_labels(mask, lab, np.arange(1, n + 1))
        cues["pieces"] = min(1.0, 4.0 * (area - sizes.max()) / area)
    return cues


def label_frame(frame: np.ndarray, background: np.ndarray | None, animals: list[AnimalPrior],
                params: LabelParams | None = None,
                median_areas: dict[int, float] | None = None,
                coverage: np.ndarray | None = None) -> list[AnimalResult]:
    """Masks of the animals on one frame, from keypoints and contrast against a background.

    Args:
        frame: (H, W, 3) uint8 RGB.
        background: (H, W) float32 luma (0-255) of the empty scene, or (H, W, 3) float32 RGB
            (0-255) to measure colour contrast (:func:`contrast`; made by
            :func:`masked_median_background` with ``colour=True``), or None to use a local
            background of this frame (:func:`local_background`; in colour when
            ``params.colour`` is set and the frame is not grey).
        animals: one prior per animal; ``obj_id`` = position in the list + 1.
        median_areas: obj_id -> median mask area (pixels) over the video, for the area cue.
        coverage: (H, W) float, the fraction of background frames that saw each pixel free
            (:func:`masked_median_background`); an animal whose trunk was seen free in fewer
            than ``min_coverage`` of them (it rested there) is measured against the local
            background instead.

    Returns:
        One :class:`AnimalResult` per animal, masks disjoint (shared pixels go to the animal
        with the nearest keypoint).

    Raises:
        RodentsegError: frame and background differ in size.
    """
    p = params or LabelParams()
    y = luma(frame)
    if background is not None and background.shape[:2] != y.shape:
        raise RodentsegError(f"background is {background.shape} but the frame is {y.shape} "
                             "(H, W); expected the same size")
    in_colour = (background.ndim == 3 if background is not None
                 else bool(p.colour) and not is_grey(frame))
    results: list[tuple[np.ndarray, float]] = []  # per animal: what the contrast found, level
    masks = np.zeros((len(animals), *y.shape), bool)
    for k, a in enumerate(animals):
        # everything happens in a window around the animal: its mask cannot reach farther
        reach = (max(p.region_frac, p.tail_frac) + 0.1) * a.length_px + 8
        x0, y0 = np.maximum(np.floor(a.xy.min(0) - reach).astype(int), 0)
        x1 = min(y.shape[1], int(np.ceil(a.xy[:, 0].max() + reach)) + 1)
        y1 = min(y.shape[0], int(np.ceil(a.xy[:, 1].max() + reach)) + 1)
        win = (slice(y0, y1), slice(x0, x1))
        local = AnimalPrior(a.name, a.xy - [x0, y0], a.body, a.length_px,
                            None if a.tail_base is None else a.tail_base - [x0, y0])
        bg = None if background is None else background[win]
        if bg is not None and coverage is not None:
            trunk = hull_mask(bg.shape[:2], local.xy)
            trunk = trunk if trunk.sum() >= 20 else near_points(bg.shape[:2], local.body_xy, 3.0)
            if trunk.any() and float(np.mean(coverage[win][trunk])) < p.min_coverage:
                bg = None
        if bg is None and in_colour:  # a local background per channel
            rgb = frame[win][..., :3].astype(np.float32)
            bg = np.stack([local_background(rgb[..., i], a.length_px) for i in range(3)], -1)
        elif bg is None:
            bg = local_background(y[win], a.length_px)
        elif bg.ndim == 3 and not in_colour:
            bg = luma(bg)
        c = contrast(frame[win], bg) if bg.ndim == 3 else y[win] - bg
        mask, level, _, seen = _animal_mask(c, local, p)
        masks[k][win] = mask
        seen_full = np.zeros(y.shape, bool)
        seen_full[win] = seen
        results.append((seen_full, level))
    _nearest_owner(masks, animals)
    out = []
    for k, (a, (seen, level)) in enumerate(zip(animals, results)):
        others = np.delete(masks, k, axis=0).any(0)
        cues = _doubt(masks[k], seen, a, level, p, others, (median_areas or {}).get(k + 1))
        out.append(AnimalResult(k + 1, masks[k], top_cue(cues)[0], cues))
    return out


def prompt_masks(predictor, frame: np.ndarray, animals: list[AnimalPrior],
                 results: list[AnimalResult]) -> list[AnimalResult]:
    """The keypoints as prompts of a SAM-family model: per animal, its body points as positive
    points, the other animals' body points as negative ones, and the box of its contrast mask
    (:func:`label_frame`, widened by 10%) when it has one. The model's mask replaces the
    contrast mask; where the two disagree, the ``prompted`` cue rises (1 - their IoU, doubled:
    IoU 0.75 -> 0.5), so the cues still check each other.

    Args:
        predictor: an :class:`rodentseg.annotate.image.ImagePredictor`.
        frame: (H, W, 3) uint8 RGB. animals, results: as given to and returned by
            :func:`label_frame`, in the same order.

    Returns:
        New results (same ids), masks disjoint (shared pixels to the nearest keypoint).
    """
    if not animals:
        return results
    predictor.set_image(frame)
    h, w = frame.shape[:2]
    out, masks = [], []
    for k, (a, r) in enumerate(zip(animals, results)):
        neg = [b.body_xy for j, b in enumerate(animals) if j != k]
        pts = np.concatenate([a.body_xy, *neg]) if neg else a.body_xy
        labels = np.r_[np.ones(len(a.body_xy), np.int64),
                       np.zeros(len(pts) - len(a.body_xy), np.int64)]
        box = None
        ys, xs = np.nonzero(r.mask)
        if len(xs):
            pad = 0.1 * max(np.ptp(xs), np.ptp(ys)) + 2
            box = np.array([[max(0.0, xs.min() - pad), max(0.0, ys.min() - pad),
                             min(float(w), xs.max() + 1 + pad), min(float(h), ys.max() + 1 + pad)]])
        pred = predictor.predict(pts[None], labels[None], boxes=box, multimask_output=False)
        masks.append(pred.best()[0][0])
    masks = np.stack(masks)
    _nearest_owner(masks, animals)
    for m, r in zip(masks, results):
        union = (m | r.mask).sum()
        iou = (m & r.mask).sum() / union if union else 1.0
        cues = {**r.cues, "prompted": float(min(1.0, 2.0 * (1.0 - iou)))}
        out.append(AnimalResult(r.obj_id, m, top_cue(cues)[0], cues))
    return out


def masked_median_background(frames: list[np.ndarray], exclude: list[np.ndarray | None],
                             colour: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel temporal median of luma (or of each RGB channel), leaving out each frame's
    excluded pixels.

    Args:
        frames: T (H, W, 3) uint8 RGB frames sampled over the video.
        exclude: per frame, an (H, W) bool of pixels to leave out (near its animals), or None.
        colour: the median of R, G and B each (for :func:`colour_contrast`) instead of luma.

    Returns:
        background (H, W) float32 luma, or (H, W, 3) float32 RGB with ``colour``; coverage
        (H, W) float32, the fraction of frames that saw each pixel free (where it is 0 the
        plain median is used).
    """
    if not frames:
        raise RodentsegError("a background needs at least one frame")
    if colour:
        chans = [_masked_median(np.stack([f[..., i].astype(np.float32) for f in frames]),
                                exclude) for i in range(3)]
        return np.stack([b for b, _ in chans], -1), chans[0][1]
    return _masked_median(np.stack([luma(f) for f in frames]), exclude)


def _masked_median(stack: np.ndarray, exclude: list[np.ndarray | None]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`masked_median_background` of a (T, H, W) float32 stack (changed in place)."""
    plain = np.median(stack, 0)
    if all(e is None for e in exclude):
        return plain.astype(np.float32), np.ones(plain.shape, np.float32)
    for t, e in enumerate(exclude):
        if e is not None:
            stack[t][e] = np.nan
    free = np.isfinite(stack)
    coverage = free.mean(0)
    with warnings.catch_warnings():  # all-NaN columns: never seen free, plain median below
        warnings.simplefilter("ignore", RuntimeWarning)
        bg = np.nanmedian(stack, 0)
    bg = np.where(coverage > 0, bg, plain)
    return bg.astype(np.float32), coverage.astype(np.float32)
