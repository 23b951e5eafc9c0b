"""Train every recipe on the same split and print one comparison table (markdown).

    python benchmarks/compare_recipes.py [--steps 300] [--out runs/compare] [--random-init]
        [--recipes scratch-tiny,segformer,dinov3-lora,sam2-decoder] [--set KEY=VALUE ...]

Each recipe runs ``rodentseg train --config configs/<recipe>.yaml`` in its own process (so
peak RSS is that run's alone) with the same data, split, seed and step count; each recipe
keeps its own batch size, learning rate and augmentation from its preset. ``--random-init``
sets ``model.pretrained=null`` for the recipes that start from hub weights (no hub here), so
their figures then say nothing about the pretrained recipe's quality, only about its cost.
Scores are the loop's: mean IoU and DAVIS J&F of the binary rodent mask on the validation
frames at full resolution (``sam2-decoder`` is prompted with each animal's ground-truth box,
the standard SAM evaluation). Finished runs are reused: delete ``--out`` to measure again.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = {"segformer", "dinov3-lora", "sam2-decoder"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "compare")
    ap.add_argument("--recipes", default="scratch-tiny,segformer,dinov3-lora,sam2-decoder")
    ap.add_argument("--random-init", action="store_true",
                    help="model.pretrained=null for the hub-weight recipes")
    ap.add_argument("--set", action="append", default=[], help="extra override for every run")
    args = ap.parse_args()
    rows = []
    for recipe in args.recipes.split(","):
        run = args.out / recipe
        if not (run / "scores.yaml").is_file():
            cmd = [sys.executable, "-m", "rodentseg.cli", "train", "--config",
                   str(REPO / "configs" / f"{recipe}.yaml"), "--set", f"out={run}",
                   "--set", f"steps={args.steps}", "--set", f"eval_every={max(1, args.steps // 3)}",
                   "--set", f"checkpoint_every={args.steps}", "--quiet"]
            if args.random_init and recipe in PRETRAINED:
                cmd += ["--set", "model.pretrained=null"]
            for item in args.set:
                cmd += ["--set", item]
            print("$", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, cwd=REPO)
        s = yaml.safe_load((run / "scores.yaml").read_text())
        init = "random" if args.random_init and recipe in PRETRAINED else (
            "scratch" if recipe not in PRETRAINED else "pretrained")
        rows.append((recipe, init, s))
    print("\n| recipe | init | steps | val mean IoU | val J&F | train time | trainable / total "
          "params | peak RSS | hardware |\n|---|---|---|---|---|---|---|---|---|")
    for recipe, init, s in rows:
        print(f"| {recipe} | {init} | {s['steps']} | {s['val_miou']:.3f} | {s['val_jf']:.3f} | "
              f"{s['train_time_s'] / 60:.1f} min{_setup(s)} | {s['trainable_params']:,} / "
              f"{s['total_params']:,} | {s['peak_rss_mb']:,} MB | {s['hardware']} |")


def _setup(scores: dict) -> str:
    t = scores.get("setup_time_s", 0)
    return f" + {t / 60:.1f} min setup" if t >= 30 else ""


if __name__ == "__main__":
    main()
