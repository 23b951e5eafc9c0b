"""How a segmentation model holds up on setups: one row per setup, scored on reviewed masks.

    python benchmarks/cross_setup.py [--model M] [--loso runs/loso-{set}] [--labels data/labels]
        [--data-root ../shared/data] [--sets a,b] [--max-frames 40] [--csv table.csv]

Setups: ``openfield-m4s1`` (its silver masks and human keypoints in the data root) and every
``<set>/`` under ``--labels`` (folders of ``masks/`` + ``sources.csv`` written by
``rodentseg autolabel`` and reviewed; see ``data/labels/README.md``). Each frame is segmented
alone (``model.predict`` then :func:`rodentseg.track.instances.split_instances`, no tracking,
no known animal count), and the row reports:

- ``miou``: mean IoU of each labelled animal with the predicted instance it is matched to
  (Hungarian on IoU; 0 when unmatched), over the animals of the setup;
- ``kp_recall``: fraction of body keypoints (tail past its base, paws, ear tips excluded:
  :func:`rodentseg.annotate.autolabel.is_body_part`) inside any predicted mask, where the
  setup has keypoints (human labels or a pose model's, as its label README says);
- ``found``: fraction of labelled animals matched with IoU >= 0.5;
- ``spurious``: predicted instances per frame matched to no labelled animal with IoU >= 0.5
  (on an empty arena, every instance).

``--loso runs/loso-{set}`` scores each setup with the model trained without it (leave one
setup out; ``{set}`` is replaced by the setup's name); ``--model`` scores every setup with one
model (then a setup it was trained on is not a test of generality: the row says ``seen``).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from rodentseg.annotate.autolabel import is_body_part
from rodentseg.evaluate.metrics import match_objects, pairwise_iou
from rodentseg.io.keypoints import read_keypoints
from rodentseg.io.masks import frame_index_of
from rodentseg.models import load_model
from rodentseg.track.instances import split_instances
from rodentseg.train.datasets import dataset_parts, load_dataset

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["setup", "model", "frames", "animals", "miou", "kp_recall", "found",
           "spurious_per_frame"]


def _parts(labels: Path, data_root: Path) -> dict[str, list[tuple[Path, dict]]]:
    """setup -> [(dataset folder, keypoint options)]."""
    sets: dict[str, list[tuple[Path, dict]]] = {}
    of = data_root / "openfield-m4s1"
    if of.is_dir():
        sets["openfield-m4s1"] = [(of, {"keypoints": of / "keypoints.csv"})]
    for d in sorted(p for p in labels.iterdir() if p.is_dir()) if labels.is_dir() else []:
        for part in dataset_parts(d):
            run = json.loads((part / "run.json").read_text()) if (part / "run.json").is_file() \
                else {}
            kp = run.get("keypoints")
            opts = {}
            if kp:  # found by name in the setup's data folder (the run may come from elsewhere)
                opts = {"keypoints": data_root / d.name / Path(kp).name,
                        "slp_video": run.get("slp_video"),
                        "scale": run.get("keypoint_scale", 1.0),
                        "min_likelihood": run.get("min_likelihood")}
            sets.setdefault(d.name, []).append((part, opts))
    return sets


def score_setup(model, parts: list[tuple[Path, dict]], data_root: Path,
                max_frames: int) -> dict:
    """The row of one setup (module docstring); frames spread evenly, at most ``max_frames``
    per part."""
    ious, found, spurious, n_frames, kp_in, kp_all = [], 0, 0, 0, 0, 0
    for part, opts in parts:
        ds = load_dataset(part, data_root=data_root)
        kp = None
        if opts.get("keypoints") is not None and Path(opts["keypoints"]).is_file():
            kp = read_keypoints(opts["keypoints"], opts.get("min_likelihood"),
                                video=opts.get("slp_video"), scale=opts.get("scale") or 1.0)
            body = np.array([is_body_part(b) for b in kp.bodypart])
        picks = np.unique(np.linspace(0, len(ds) - 1, min(len(ds), max_frames)).round()
                          .astype(int))
        for i in picks:
            item = ds[int(i)]
            prob = model.predict(item["image"][None])[0]
            pred = split_instances(prob).masks
            ids = [v for v in np.unique(item["mask"]) if v != 0]
            gt = np.stack([item["mask"] == v for v in ids]) if ids else np.zeros(
                (0, *prob.shape), bool)
            m = pairwise_iou(pred, gt) if len(pred) and len(gt) else np.zeros((len(pred),
                                                                              len(gt)))
            pairs = {g: p for p, g in match_objects(m)}
            for g in range(len(gt)):
                iou = float(m[pairs[g], g]) if g in pairs else 0.0
                ious.append(iou)
                found += iou >= 0.5
            good = {p for g, p in pairs.items() if m[p, g] >= 0.5}
            spurious += len(pred) - len(good)
            n_frames += 1
            if kp is not None:
                # a frame decoded from its source knows its index there (sources.csv); an
                # image file is named by it (img0042.png)
                f = getattr(ds.samples[int(i)].image, "idx", None)
                if f is None:
                    f = frame_index_of(Path(item["name"]))
                sel = (kp.frame_idx == f) & body
                pts = np.floor(kp.xy[sel] + 0.5).astype(int)
                h, w = prob.shape
                ok = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
                union = pred.any(0) if len(pred) else np.zeros((h, w), bool)
                kp_in += int(union[pts[ok, 1], pts[ok, 0]].sum())
                kp_all += int(ok.sum())
    return {"frames": n_frames, "animals": len(ious),
            "miou": float(np.mean(ious)) if ious else float("nan"),
            "kp_recall": kp_in / kp_all if kp_all else float("nan"),
            "found": found / len(ious) if ious else float("nan"),
            "spurious_per_frame": spurious / n_frames if n_frames else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="rodentseg-tiny", help="one model for every setup")
    ap.add_argument("--loso", default=None,
                    help="per-setup model folder with {set}, e.g. runs/loso-{set}")
    ap.add_argument("--trained-on", default="openfield-m4s1,tracktor-mice",
                    help="setups --model was trained on (their rows are marked seen)")
    ap.add_argument("--labels", type=Path, default=REPO / "data" / "labels")
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--sets", default=None, help="comma-separated setups (default all)")
    ap.add_argument("--max-frames", type=int, default=40, help="frames per part (default 40)")
    ap.add_argument("--csv", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    sets = _parts(args.labels, args.data_root)
    if args.sets:
        sets = {k: v for k, v in sets.items() if k in args.sets.split(",")}
    seen = set(args.trained_on.split(",")) if not args.loso else set()
    rows = []
    print(f"{'setup':<20} {'model':<28} {'frames':>6} {'animals':>7} {'mIoU':>6} "
          f"{'kp rec':>6} {'found':>6} {'spur/fr':>7}")
    for name, parts in sets.items():
        model_name = args.loso.format(set=name) if args.loso else args.model
        model = load_model(model_name, device="cpu")
        row = {"setup": name, "model": model_name + (" (seen)" if name in seen else ""),
               **score_setup(model, parts, args.data_root, args.max_frames)}
        rows.append(row)
        print(f"{row['setup']:<20} {row['model']:<28} {row['frames']:>6} {row['animals']:>7} "
              f"{row['miou']:>6.3f} {row['kp_recall']:>6.3f} {row['found']:>6.3f} "
              f"{row['spurious_per_frame']:>7.3f}", flush=True)
    if args.csv:
        with args.csv.open("w", newline="") as fh:
            wr = csv.DictWriter(fh, COLUMNS)
            wr.writeheader()
            wr.writerows(rows)
    sys.exit(0)


if __name__ == "__main__":
    main()
