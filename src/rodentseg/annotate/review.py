"""Rank frames by how likely their masks need a person's look (``review.csv``).

Each frame gets one uncertainty in [0, 1], the largest of these cues (each scaled to [0, 1]):

=============  =====================================================================
cue            value
=============  =====================================================================
``score``      1 - the lowest object-presence probability on the frame
``stability``  1 - the lowest stability score (IoU of the mask at logit +1 vs -1,
               SAM's ``calculate_stability_score``), a proxy for the predicted IoU
``area``       largest relative area change of an object since the previous frame
``jump``       largest centroid move since the previous frame, in body lengths
               (``sqrt(area)``), capped at 1
``overlap``    largest overlap between two animals (intersection / smaller mask)
``fb``         1 - the lowest forward/backward agreement (IoU), where it was checked
``lost``       1 when an object that had a mask on the previous frame has none
=============  =====================================================================

Frames the user prompted are certain by definition and rank last. The ranking needs one row
per frame (a few dozen bytes), not the masks, so it runs alongside writing the results.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from rodentseg.annotate.store import ObjectMask

REVIEW_COLUMNS = ["rank", "frame_idx", "time_s", "uncertainty", "reason", "obj_id", "score",
                  "stability", "area_change", "jump", "overlap", "fb_iou"]
CUES = ("score", "stability", "area", "jump", "overlap", "fb", "lost")


class ReviewRanker:
    """Accumulates per-frame cues, then writes frames ranked by uncertainty.

    Args:
        fps: frame rate, for ``time_s``.
    """

    def __init__(self, fps: float):
        self.fps = fps
        self._prev: dict[int, tuple[int, np.ndarray]] = {}  # obj_id -> (area, centroid xy)
        self._rows: list[list] = []

    def update(self, frame_idx: int, objects: dict[int, ObjectMask]) -> float:
        """Add one frame (objects of the frame, as stored); returns its uncertainty.

        Call in increasing frame order (area and centroid changes are against the previous
        call).
        """
        cues = {c: (0.0, 0) for c in CUES}  # cue -> (value, obj_id)

        def raise_cue(name: str, value: float, oid: int) -> None:
            if value > cues[name][0]:
                cues[name] = (float(min(1.0, max(0.0, value))), oid)

        prompted = any(o.prompted for o in objects.values())
        now: dict[int, tuple[int, np.ndarray]] = {}
        masks = {}
        for oid, om in objects.items():
            ys, xs = np.nonzero(om.mask)
            if not len(xs):
                if oid in self._prev:
                    raise_cue("lost", 1.0, oid)
                continue
            area, cen = len(xs), np.array([xs.mean(), ys.mean()])
            now[oid] = (area, cen)
            masks[oid] = om.mask
            raise_cue("score", 1.0 - om.score, oid)
            raise_cue("stability", 1.0 - om.stability, oid)
            if not math.isnan(om.fb_iou):
                raise_cue("fb", 1.0 - om.fb_iou, oid)
            if oid in self._prev:
                pa, pc = self._prev[oid]
                raise_cue("area", abs(area - pa) / pa, oid)
                raise_cue("jump", float(np.linalg.norm(cen - pc)) / math.sqrt(pa), oid)
        ids = sorted(masks)
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                inter = np.count_nonzero(masks[a] & masks[b])
                if inter:
                    raise_cue("overlap", inter / min(now[a][0], now[b][0]), a)
        self._prev = now
        reason = max(CUES, key=lambda c: cues[c][0])
        unc = 0.0 if prompted else cues[reason][0]
        fb = [o.fb_iou for o in objects.values() if not math.isnan(o.fb_iou)]
        self._rows.append([
            frame_idx, round(frame_idx / self.fps, 4), round(unc, 4),
            "prompted" if prompted else (reason if unc > 0 else ""), cues[reason][1] or "",
            round(min((o.score for o in objects.values()), default=1.0), 4),
            round(min((o.stability for o in objects.values()), default=1.0), 4),
            round(cues["area"][0], 4), round(cues["jump"][0], 4), round(cues["overlap"][0], 4),
            round(min(fb), 4) if fb else ""])
        return unc

    def ranked(self) -> list[list]:
        """Rows of :data:`REVIEW_COLUMNS`, most uncertain first (ties: earlier frame first)."""
        order = sorted(self._rows, key=lambda r: (-r[2], r[0]))
        return [[k + 1, *r] for k, r in enumerate(order)]

    def write(self, path: str | Path) -> Path:
        """Write ``review.csv`` (:data:`REVIEW_COLUMNS`)."""
        path = Path(path)
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(REVIEW_COLUMNS)
            w.writerows(self.ranked())
        return path
