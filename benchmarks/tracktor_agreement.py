"""Centroid agreement of `rodentseg segment` with three published trackers on the tracktor video.

    python benchmarks/tracktor_agreement.py [--result DIR]

Without ``--result`` it first runs ``rodentseg segment`` (default model, ``--animals 1``) on
``../shared/data/tracktor-mice/mouse_video.mp4``. The reference centroids are software outputs
(Tracktor, idTracker, ToxTrac; see that folder's README), aligned as follows:

- Tracktor ``frame`` is 1-based: frame_idx = frame - 1.
- idTracker has one row per frame from the first: frame_idx = row (its last frame is missing).
- ToxTrac numbers frames itself and measures from the corner of its region of interest: its
  frame shift (-3..3) and pixel origin are estimated against Tracktor alone (the shift with the
  smallest median distance, then the median offset), never against rodentseg's output.

A frame counts when all three give a position and agree within 5 px of each other; there,
rodentseg's centroid (``cx, cy`` of ``tracks.csv``: the body without the tail, of the largest
animal of the frame) must lie within 5 px of their per-axis median.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared/data/tracktor-mice"


def load_references(n: int) -> np.ndarray:
    """(3, n, 2) float (x, y) per tracker and frame_idx, NaN where a tracker has none."""
    ref = np.full((3, n, 2), np.nan)
    with (DATA / "mouse_video_tracked.csv").open() as f:
        for r in csv.DictReader(f):
            i = int(float(r["frame"])) - 1
            if 0 <= i < n:
                ref[0, i] = float(r["pos_x"]), float(r["pos_y"])
    idt = np.genfromtxt(DATA / "mouse_video_idtracked.txt", skip_header=1, usecols=(0, 1))
    ref[1, : min(n, len(idt))] = idt[:n]
    tox = np.loadtxt(DATA / "mouse_video_toxtracked.txt")
    frames, xy = tox[:, 0].astype(int), tox[:, 3:5]
    best = None
    for shift in range(-3, 4):
        idx = frames + shift
        ok = (idx >= 0) & (idx < n) & ~np.isnan(ref[0, np.clip(idx, 0, n - 1), 0])
        offset = np.median(ref[0, idx[ok]] - xy[ok], axis=0)
        err = np.median(np.linalg.norm(ref[0, idx[ok]] - (xy[ok] + offset), axis=1))
        if best is None or err < best[0]:
            best = (err, shift, offset)
    _, shift, offset = best
    idx = frames + shift
    ok = (idx >= 0) & (idx < n)
    ref[2, idx[ok]] = xy[ok] + offset
    print(f"ToxTrac aligned to Tracktor: frame shift {shift:+d}, origin offset "
          f"({offset[0]:.1f}, {offset[1]:.1f}) px, median residual {best[0]:.2f} px")
    return ref


def load_ours(tracks_csv: Path, n: int) -> np.ndarray:
    """(n, 2) centroid of the largest animal per frame, NaN where none was found."""
    ours = np.full((n, 2), np.nan)
    area = np.zeros(n)
    with tracks_csv.open() as f:
        for r in csv.DictReader(f):
            i, a = int(r["frame_idx"]), int(r["area_px"])
            if i < n and a > area[i]:
                area[i], ours[i] = a, (float(r["cx"]), float(r["cy"]))
    return ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--result", type=Path, help="an existing segment output folder")
    ap.add_argument("--tol", type=float, default=5.0, help="pixels (default 5)")
    args = ap.parse_args()
    tmp = None
    if args.result is None:
        from rodentseg.models import load_model
        from rodentseg.segment import SegmentOptions, segment_video

        tmp = tempfile.TemporaryDirectory()
        args.result = segment_video(DATA / "mouse_video.mp4", tmp.name,
                                    load_model("rodentseg-tiny", "cpu"),
                                    SegmentOptions(animals=1, overlay=False))
    n = 10000
    ref = load_references(n)
    ours = load_ours(args.result / "tracks.csv", n)
    have = ~np.isnan(ref[..., 0]).any(0)
    pair = [np.linalg.norm(ref[a] - ref[b], axis=1) for a, b in ((0, 1), (0, 2), (1, 2))]
    agree = have & np.all([p <= args.tol for p in pair], axis=0)
    median = np.median(ref, axis=0)
    dist = np.linalg.norm(ours - median, axis=1)
    hit = agree & (dist <= args.tol)
    print(f"frames with a mouse found by rodentseg: {(~np.isnan(ours[:, 0])).sum()} / {n}")
    print(f"frames where the three trackers agree within {args.tol:g} px: {agree.sum()}")
    print(f"rodentseg within {args.tol:g} px of their median there: {hit.sum()} / {agree.sum()}"
          f" = {100 * hit.sum() / max(1, agree.sum()):.2f}%  (target >= 99%)")
    d = dist[agree]
    print(f"distance to the median there: median {np.nanmedian(d):.2f} px, 95th percentile "
          f"{np.nanpercentile(d, 95):.2f} px, max {np.nanmax(d):.2f} px")
    for k, name in enumerate(["Tracktor", "idTracker", "ToxTrac"]):
        dk = np.linalg.norm(ours - ref[k], axis=1)
        print(f"  vs {name:9s}: median distance {np.nanmedian(dk):.2f} px on "
              f"{(~np.isnan(dk)).sum()} frames")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
