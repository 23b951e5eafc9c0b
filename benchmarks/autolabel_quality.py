"""`rodentseg autolabel` against checked masks: openfield-m4s1's human keypoints in, its silver
masks as the reference.

    python benchmarks/autolabel_quality.py [--data ../shared/data/openfield-m4s1] [--set K=V]

Runs ``autolabel`` on the session's frames with its keypoints and prints the mean and worst IoU
of the masks it made against ``masks/``, over every frame it labelled (kept and left out for
doubt) and over the kept ones, the frames left out, and the time taken.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from rodentseg.annotate.autolabel_run import autolabel, parse_params

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "openfield-m4s1"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a LabelParams setting, as `rodentseg autolabel --set`")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        t0 = time.perf_counter()
        s = autolabel(args.data / "frames", out, args.data / "keypoints.csv",
                      params=parse_params(args.set), progress=False)
        seconds = time.perf_counter() - t0
        ious = {}
        for sub, kept in (("masks", True), ("left_out/masks", False)):
            for m in sorted((out / sub).glob("*.png")):
                pred = np.asarray(Image.open(m)) > 0
                gt = np.asarray(Image.open(args.data / "masks" / m.name)) > 0
                ious[m.name] = ((pred & gt).sum() / max(1, (pred | gt).sum()), kept)
    every = np.array([v for v, _ in ious.values()])
    kept = np.array([v for v, k in ious.values() if k])
    print(f"autolabel on {args.data.name}: {len(every)} frames labelled, {s.left_out} left out "
          f"for doubt, {seconds:.1f} s ({seconds / max(1, len(every)):.2f} s/frame)")
    print(f"mean IoU vs silver masks: all {every.mean():.4f} (worst {every.min():.4f}), "
          f"kept {kept.mean():.4f} over {len(kept)} frames")


if __name__ == "__main__":
    main()
