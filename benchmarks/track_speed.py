"""Time the tracker adds per frame and animal at 640x480, for 2-4 animals, on CPU.

    python benchmarks/track_speed.py [--frames 300] [--animals 2 3 4] [--threads 1]

The scenes are those of ``benchmarks/track_identity.py`` (the real open-field mouse pasted
N times into the real open-field arena, walking, touching and crossing), given as label images
with ids shuffled per frame. For every frame, in one loop, three steps are timed:

- baseline: turning the frame's label image into per-animal masks
  (``FrameMasks.from_label_image``), the least any consumer of masks pays;
- ``Tracker.update`` without the frame's pixels (motion + overlap + area);
- ``Tracker.update`` with the frame's pixels (adds the colour histograms).

Printed: mean and 95th-percentile milliseconds per frame, the same per animal (the issue's
budget: 2 ms per frame per animal), and each tracker time as a ratio to the baseline measured
in the same loop. ``instances`` gives one mask per animal; ``blobs`` gives connected components,
so the tracker also cuts merged animals apart.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import track_identity as ti

from rodentseg.track.tracker import Tracker
from rodentseg.types import FrameMasks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--animals", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (not used by "
                    "the tracker itself, set for a quiet machine)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ti.SPRITES.extend(ti.load_sprites())
    arena = ti.arenas()[0]  # the open field: the largest animals, the most pixels per mask
    print(f"{'animals':>7s} {'masks':9s} {'baseline ms':>11s} {'track ms':>9s} {'per animal':>10s}"
          f" {'p95 ms':>7s} {'ratio':>6s} {'+pixels ms':>10s} {'per animal':>10s} {'p95 ms':>7s}"
          f" {'ratio':>6s}")
    for n in args.animals:
        rng = np.random.default_rng(args.seed * 100 + n)
        pos, head = ti.walk(n, args.frames, arena, rng)
        scene = [(gt, frame) for gt, frame in ti.render(pos, head, arena, rng)]
        for kind in ("instances", "blobs"):
            labels = [ti.detector_masks(gt, kind, rng) for gt, _ in scene]
            plain, with_px = Tracker(n_animals=n), Tracker(n_animals=n)
            t_base, t_plain, t_px = [], [], []
            for (gt, frame), lab in zip(scene, labels):
                t0 = time.perf_counter()
                fm = FrameMasks.from_label_image(gt.frame_idx, lab)
                t1 = time.perf_counter()
                plain.update(gt.frame_idx, fm.masks, fm.scores)
                t2 = time.perf_counter()
                with_px.update(gt.frame_idx, fm.masks, fm.scores, frame=frame)
                t3 = time.perf_counter()
                t_base.append(t1 - t0)
                t_plain.append(t2 - t1)
                t_px.append(t3 - t2)
            b, p, x = (1000 * np.array(v) for v in (t_base, t_plain, t_px))
            print(f"{n:7d} {kind:9s} {b.mean():11.3f} {p.mean():9.3f} {p.mean() / n:10.3f}"
                  f" {np.percentile(p, 95):7.3f} {p.mean() / b.mean():6.2f} {x.mean():10.3f}"
                  f" {x.mean() / n:10.3f} {np.percentile(x, 95):7.3f}"
                  f" {x.mean() / b.mean():6.2f}", flush=True)


if __name__ == "__main__":
    main()
