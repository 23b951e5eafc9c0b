"""Synthetic multi-animal scenes with known identities, and identity scoring, for tracker tests.

Animals are ellipses oriented along their motion; later animals are drawn over earlier ones, so
the visible masks never overlap (as in a label PNG) and a covered animal may vanish. The
"detector" shuffles the masks of each frame (ids carry nothing) and, in ``merge`` mode, returns
connected components of all animal pixels, so touching animals arrive as one blob.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from rodentseg.types import FrameMasks


def ellipse(h: int, w: int, c, heading, a: float = 14, b: float = 7) -> np.ndarray:
    """(h, w) bool ellipse centred at c=(x, y), long axis ``a`` along ``heading`` (dx, dy)."""
    ys, xs = np.mgrid[:h, :w]
    n = np.hypot(*heading) or 1.0
    ux, uy = heading[0] / n, heading[1] / n
    dx, dy = xs - c[0], ys - c[1]
    along, across = dx * ux + dy * uy, -dx * uy + dy * ux
    return (along / a) ** 2 + (across / b) ** 2 <= 1


def render(paths: np.ndarray, h: int, w: int, colours=None):
    """Ground truth and pixels of a scene.

    Args:
        paths: (N, T, 2) float (x, y) per animal and frame; NaN = not in view.
        colours: (N, 3) uint8 fur colour per animal (default all dark grey).

    Yields:
        ``(gt FrameMasks with obj_ids 1..N, frame (h, w, 3) uint8 RGB)``.
    """
    n, t_len = paths.shape[:2]
    colours = np.full((n, 3), 40, np.uint8) if colours is None else np.asarray(colours, np.uint8)
    for t in range(t_len):
        label = np.zeros((h, w), np.uint8)
        frame = np.full((h, w, 3), 200, np.uint8)
        for k in range(n):
            if np.isnan(paths[k, t, 0]):
                continue
            nxt = paths[k, min(t + 1, t_len - 1)] - paths[k, max(t - 1, 0)]
            m = ellipse(h, w, paths[k, t], nxt if np.all(np.isfinite(nxt)) and nxt.any() else (1, 0))
            label[m] = k + 1
            frame[m] = colours[k]
        yield FrameMasks.from_label_image(t, label), frame


def detect(gt: FrameMasks, rng: np.random.Generator, merge: bool = False):
    """Masks as a detector gives them: shuffled order, blobs when ``merge``; (masks, scores)."""
    if merge and len(gt):
        lab, n = ndimage.label(gt.masks.any(0), structure=np.ones((3, 3), bool))
        masks = lab[None] == np.arange(1, n + 1)[:, None, None]
    else:
        masks = gt.masks
    masks = masks[rng.permutation(len(masks))]
    return masks, np.full(len(masks), 0.9, np.float32)


class IdentityScore:
    """Identity accuracy and switches of tracked frames against the ground truth.

    A ground-truth animal is "held" in a frame by the track whose mask covers more than half
    of its visible pixels. Accuracy = share of visible (frame, animal) pairs held by the track
    that a global one-to-one mapping (maximum agreement) gives to that animal; a switch = the
    holding track changes between two frames where the animal is held.
    """

    def __init__(self):
        self.counts: dict[tuple[int, int], int] = {}
        self.visible = 0
        self.switches = 0
        self._last: dict[int, int] = {}

    def update(self, gt: FrameMasks, pred: FrameMasks) -> None:
        for g, gm in zip(gt.obj_ids, gt.masks):
            self.visible += 1
            area = gm.sum()
            for p, pm in zip(pred.obj_ids, pred.masks):
                if (gm & pm).sum() * 2 > area:
                    self.counts[int(g), int(p)] = self.counts.get((int(g), int(p)), 0) + 1
                    if self._last.get(int(g), int(p)) != int(p):
                        self.switches += 1
                    self._last[int(g)] = int(p)
                    break

    @property
    def accuracy(self) -> float:
        if not self.counts:
            return 0.0
        gs = sorted({g for g, _ in self.counts})
        ps = sorted({p for _, p in self.counts})
        m = np.array([[self.counts.get((g, p), 0) for p in ps] for g in gs])
        r, c = linear_sum_assignment(m, maximize=True)
        return float(m[r, c].sum() / self.visible)
