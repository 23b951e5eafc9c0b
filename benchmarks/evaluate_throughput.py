"""Throughput of the evaluation metrics (IoU, J, F, per-class IoU) on synthetic 640x480 masks.

Generates moving ellipses in memory (1-3 animals, the prediction a shifted and rescaled copy,
with an occasional miss and false positive), feeds them through
``SegmentationMetrics.update`` and prints frames per second. The target is 10,000 frames in
under 60 s on 2 cores. Only ``update()`` + ``compute()`` are timed; drawing the masks is
reported separately.

    python benchmarks/evaluate_throughput.py              # 10,000 frames
    python benchmarks/evaluate_throughput.py --frames 2000
    python benchmarks/evaluate_throughput.py --png 500   # also end to end from label PNGs
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from rodentseg.evaluate import SegmentationMetrics, evaluate_folders
from rodentseg.io.masks import write_label_png
from rodentseg.types import FrameMasks

H, W = 480, 640


def ellipse(cy: float, cx: float, ay: float, ax: float, angle: float) -> np.ndarray:
    """(H, W) bool ellipse (semi-axes ay, ax in pixels, rotated by angle), drawn in its box."""
    m = np.zeros((H, W), bool)
    r = max(ay, ax) + 1
    y0, y1 = max(int(cy - r), 0), min(int(cy + r) + 1, H)
    x0, x1 = max(int(cx - r), 0), min(int(cx + r) + 1, W)
    if y0 >= y1 or x0 >= x1:
        return m
    yy, xx = np.ogrid[y0:y1, x0:x1]
    c, s = math.cos(angle), math.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    m[y0:y1, x0:x1] = (u / ax) ** 2 + (v / ay) ** 2 <= 1
    return m


def synthetic_pair(i: int, rng: np.random.Generator) -> tuple[FrameMasks, FrameMasks]:
    """Frame i: 1-3 animals (the count changes every 500 frames) on Lissajous paths."""
    n = 1 + (i // 500) % 3
    gt, pred = [], []
    for k in range(n):
        t = i / 90 + 2.1 * k
        cy, cx = 240 + 170 * math.sin(1.3 * t + k), 320 + 250 * math.cos(t)
        ay, ax, ang = 18 + 4 * math.sin(t), 45 + 8 * math.cos(0.7 * t), t
        gt.append(ellipse(cy, cx, ay, ax, ang))
        if i % 53 == 7 and k == n - 1:
            continue  # a missed animal
        d = rng.normal(0, 2.5, 3)
        pred.append(ellipse(cy + d[0], cx + d[1], ay * (1 + d[2] / 40), ax, ang + d[2] / 20))
    if i % 41 == 5:
        pred.append(ellipse(30, 30, 8, 15, 0.3))  # a false positive
    g = FrameMasks(i, np.arange(1, n + 1), np.stack(gt))
    p = FrameMasks(i, np.arange(11, 11 + len(pred)),
                   np.stack(pred) if pred else np.zeros((0, H, W), bool))
    return p, g


def from_png(n: int, seed: int) -> None:
    """Time ``evaluate_folders`` (PNG decoding, metrics, CSV, plot; no contact sheets) on n
    frames written to a temporary folder."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "pred").mkdir()
        (root / "gt").mkdir()
        for i in range(n):
            pred, gt = synthetic_pair(i, rng)
            write_label_png(root / "pred" / f"{i:06d}.png", pred)
            write_label_png(root / "gt" / f"{i:06d}.png", gt)
        t0 = time.perf_counter()
        evaluate_folders(root / "pred", root / "gt", root / "out", worst=0)
        dt = time.perf_counter() - t0
    print(f"end to end from label PNGs ({n} frames): {dt:.2f} s = {n / dt:.0f} frames/s "
          f"({1000 * dt / n:.2f} ms/frame; 10,000 frames ~ {10_000 * dt / n:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=10_000, help="frames to evaluate (10,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--png", type=int, default=0, metavar="N",
                    help="also time evaluate_folders end to end on N frames of label PNGs")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    metrics = SegmentationMetrics()
    t_metric = t_draw = 0.0
    n_obj = 0
    for i in range(args.frames):
        t0 = time.perf_counter()
        pred, gt = synthetic_pair(i, rng)
        t1 = time.perf_counter()
        metrics.update(pred, gt)
        t_metric += time.perf_counter() - t1
        t_draw += t1 - t0
        n_obj += len(gt)
    t0 = time.perf_counter()
    result = metrics.compute()
    t_metric += time.perf_counter() - t0
    fps = args.frames / t_metric
    print(f"frames: {args.frames} of {W}x{H}, {n_obj} ground-truth objects "
          f"({n_obj / args.frames:.2f} per frame)")
    print(f"metrics (update + compute): {t_metric:.2f} s = {fps:.0f} frames/s "
          f"({1000 * t_metric / args.frames:.2f} ms/frame)")
    print(f"drawing the synthetic masks (not counted): {t_draw:.2f} s")
    est = 10_000 / fps
    print(f"10,000 frames: {est:.1f} s {'<' if est < 60 else '>='} 60 s target "
          f"({'measured' if args.frames == 10_000 else 'extrapolated'})")
    print(f"check: mean IoU {result['iou']['mean']:.3f}, J&F {result['davis']['J&F']['mean']:.3f}, "
          f"missed {result['objects']['missed']}, false positives "
          f"{result['objects']['false_positives']}")
    if args.png:
        from_png(args.png, args.seed)


if __name__ == "__main__":
    main()
