"""Human keypoints as a mask check that needs no mask labels: how many fall inside the masks.

:class:`KeypointContainment` is an update/compute accumulator; the files are read by
:mod:`rodentseg.io.keypoints` (DeepLabCut, SLEAP, simple CSV). A point is inside a mask when the
pixel it rounds to (half up) is set.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import linear_sum_assignment

from rodentseg.io.keypoints import Keypoints, read_keypoints
from rodentseg.types import FrameMasks

__all__ = ["KeypointContainment", "Keypoints", "read_keypoints"]


class KeypointContainment:
    """Fraction of human keypoints inside the masks, accumulated one frame at a time.

    ``update(masks)`` looks up the frame's points in its masks. ``compute()`` pairs each
    individual with one object id for the whole video (Hungarian assignment maximising the
    points inside, so names need not equal ids and identity swaps cost points) and reports:

    - ``inside_any``: fraction of points inside any mask;
    - ``inside_right``: fraction inside the mask of the object paired with their individual;
    - both per body part, the points, the pairing and the frames never given masks (their
      points count as outside).
    """

    def __init__(self, keypoints: Keypoints):
        self.kp = keypoints
        order = np.argsort(keypoints.frame_idx, kind="stable")
        frames, starts = np.unique(keypoints.frame_idx[order], return_index=True)
        bounds = list(starts) + [len(order)]
        self._by_frame = {int(f): order[bounds[i]:bounds[i + 1]] for i, f in enumerate(frames)}
        self.reset()

    def reset(self) -> None:
        self._hits: list[tuple[int, int]] = []  # (point index, obj_id) for each containing mask
        self._seen: set[int] = set()

    def update(self, masks: FrameMasks) -> None:
        """Record which objects of this frame contain each of the frame's keypoints."""
        idx = self._by_frame.get(int(masks.frame_idx))
        self._seen.add(int(masks.frame_idx))
        if idx is None or not len(masks):
            return
        h, w = masks.shape
        col = np.floor(self.kp.xy[idx, 0] + 0.5).astype(np.int64)
        row = np.floor(self.kp.xy[idx, 1] + 0.5).astype(np.int64)
        ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        inside = np.zeros((len(masks), len(idx)), bool)
        inside[:, ok] = masks.masks[:, row[ok], col[ok]]
        for k, p in zip(*np.nonzero(inside)):
            self._hits.append((int(idx[p]), int(masks.obj_ids[k])))

    def compute(self) -> dict:
        kp, n = self.kp, len(self.kp)
        inds = sorted(set(kp.individual))
        objs = sorted({o for _, o in self._hits})
        counts = np.zeros((len(inds), len(objs)), np.int64)
        ind_pos = {v: i for i, v in enumerate(inds)}
        obj_pos = {v: i for i, v in enumerate(objs)}
        for p, o in set(self._hits):
            counts[ind_pos[kp.individual[p]], obj_pos[o]] += 1
        pairing = {}
        if counts.size:
            for r, c in zip(*linear_sum_assignment(counts, maximize=True)):
                if counts[r, c] > 0:
                    pairing[inds[r]] = objs[c]
        any_in = np.zeros(n, bool)
        right_in = np.zeros(n, bool)
        for p, o in self._hits:
            any_in[p] = True
            right_in[p] |= pairing.get(kp.individual[p]) == o
        parts = {}
        for part in sorted(set(kp.bodypart)):
            sel = kp.bodypart == part
            parts[part] = {"points": int(sel.sum()), "inside_any": int(any_in[sel].sum()),
                           "inside_right": int(right_in[sel].sum())}
        missing = sorted(set(self._by_frame) - self._seen)
        return {"points": n, "inside_any": float(any_in.mean()) if n else math.nan,
                "inside_right": float(right_in.mean()) if n else math.nan,
                "inside_any_count": int(any_in.sum()), "inside_right_count": int(right_in.sum()),
                "per_bodypart": parts, "pairing": {k: int(v) for k, v in pairing.items()},
                "frames_without_masks": len(missing)}
