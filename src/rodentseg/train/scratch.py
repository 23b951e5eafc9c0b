"""Train the embedded default model (``rodentseg-tiny``) from scratch on labelled frames.

``rodentseg train --config configs/scratch-tiny.yaml`` runs :func:`train`; the result directory
holds ``model/`` (``config.json`` + ``model.safetensors``, loadable by ``--model``),
``config.yaml`` (the resolved config), ``metrics.csv`` and ``curve.png``. A killed run resumes
from ``checkpoint/`` when started again with the same ``out``.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from rodentseg.errors import RodentsegError
from rodentseg.models.segmenter import (Preprocessing, RodentSegNet, forward_full, save_segmenter,
                                        tiny_config)
from rodentseg.train.augment import AugmentConfig, CopyPasteAugment
from rodentseg.train.card import write_model_card
from rodentseg.train.data import load_labelled_frames, temporal_split


@dataclass
class TrainConfig:
    """The scratch recipe; YAML keys and ``--set key=value`` override these defaults."""

    name: str = "rodentseg-tiny"
    data: str = "../shared/data/openfield-m4s1"
    out: str = "runs/rodentseg-tiny"
    val_fraction: float = 0.2
    steps: int = 3000
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 100
    eval_every: int = 250
    checkpoint_every: int = 250
    seed: int = 0
    threads: int = 0  # 0 = torch default
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from a nested dict, refusing unknown keys (the message lists the known ones)."""
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise RodentsegError(f"unknown config key(s) {sorted(bad)}; expected {sorted(known)}")
        d = dict(d)
        aug = d.pop("augment", {}) or {}
        aug_known = {f.name for f in fields(AugmentConfig)}
        if set(aug) - aug_known:
            raise RodentsegError(
                f"unknown augment key(s) {sorted(set(aug) - aug_known)}; expected {sorted(aug_known)}"
            )
        aug = {k: tuple(v) if isinstance(v, list) else v for k, v in aug.items()}
        return cls(**d, augment=AugmentConfig(**aug))


def load_config(path: str | None, overrides: list[str]) -> TrainConfig:
    """YAML file (optional) plus ``key=value`` overrides (``augment.scale=[0.3,1.2]`` nests)."""
    d: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise RodentsegError(f"config file {p} does not exist")
        d = yaml.safe_load(p.read_text()) or {}
        d.pop("recipe", None)
    for item in overrides:
        if "=" not in item:
            raise RodentsegError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = d
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return TrainConfig.from_dict(d)


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice (Milletari et al. 2016), both over full resolution.

    Shape:
        logits, target: (B, 1, H, W); target in {0, 1}.
    """
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


@torch.inference_mode()
def validate(net, pre: Preprocessing, frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """IoU of the thresholded prediction vs. the mask, per frame: (N,) float64."""
    net.eval()
    ious = []
    for i in range(0, len(frames), 8):
        x = torch.from_numpy(frames[i:i + 8]).float()[:, None] / 255
        pred = (torch.sigmoid(forward_full(net, x, pre)) > pre.threshold)[:, 0].numpy()
        gt = masks[i:i + 8]
        inter = (pred & gt).sum((1, 2))
        union = (pred | gt).sum((1, 2))
        ious.extend(np.where(union > 0, inter / np.maximum(union, 1), 1.0))
    net.train()
    return np.asarray(ious)


def _lr(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def train(cfg: TrainConfig) -> dict:
    """Run the recipe; returns the final validation scores (``val_miou`` ...)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(_plain(asdict(cfg)), sort_keys=False))
    data = load_labelled_frames(cfg.data)
    tr, va = temporal_split(len(data.names), cfg.val_fraction)
    train_set, val_set = data.subset(tr), data.subset(va)
    torch.manual_seed(cfg.seed)
    net_cfg = tiny_config()
    pre = Preprocessing.from_dict(net_cfg.rodentseg)
    net = RodentSegNet(net_cfg).train()
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    aug = CopyPasteAugment(train_set, cfg.augment, seed=cfg.seed)
    ckpt = out / "checkpoint"
    start = 0
    if (ckpt / "state.pt").is_file():
        net.load_state_dict(load_file(ckpt / "model.safetensors"), strict=True)
        state = torch.load(ckpt / "state.pt", weights_only=False)
        opt.load_state_dict(state["optimizer"])
        aug.g.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start = state["step"]
        print(f"resuming {out} at step {start}")
    metrics_path = out / "metrics.csv"
    if start == 0:
        metrics_path.write_text("step,loss,lr,val_miou,val_min_iou,elapsed_s\n")
    t0 = time.perf_counter()
    losses: list[float] = []
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, unit="step")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr(step, cfg)
        img, lab = aug(cfg.batch_size)
        loss = seg_loss(forward_full(net, img, pre), lab)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        done = step + 1
        if done % cfg.eval_every == 0 or done == cfg.steps:
            ious = validate(net, pre, val_set.frames, val_set.masks)
            with metrics_path.open("a") as f:
                f.write(f"{done},{np.mean(losses[-cfg.eval_every:]):.5f},{_lr(step, cfg):.6g},"
                        f"{ious.mean():.5f},{ious.min():.5f},{time.perf_counter() - t0:.1f}\n")
            bar.write(f"step {done}: val mIoU {ious.mean():.4f} (min {ious.min():.4f})")
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            tmp = out / "checkpoint.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            save_file({k: v.contiguous() for k, v in net.state_dict().items()},
                      tmp / "model.safetensors")
            torch.save({"optimizer": opt.state_dict(), "generator": aug.g.get_state(),
                        "torch_rng": torch.get_rng_state(), "step": done}, tmp / "state.pt")
            shutil.rmtree(ckpt, ignore_errors=True)
            os.replace(tmp, ckpt)
    net.eval()
    save_segmenter(net, out / "model")
    ious = validate(net, pre, val_set.frames, val_set.masks)
    scores = {"val_miou": float(ious.mean()), "val_min_iou": float(ious.min()),
              "val_frames": val_set.names, "train_frames": len(train_set.names),
              "steps": cfg.steps, "train_time_s": round(time.perf_counter() - t0, 1)}
    (out / "scores.yaml").write_text(yaml.safe_dump(scores, sort_keys=False))
    plot_curve(metrics_path, out / "curve.png")
    write_model_card(out / "model", cfg, scores, net_cfg, hardware_name())
    return scores


def hardware_name() -> str:
    """Where this process trains, for the model card (GPU name, else the CPU core count)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{torch.get_num_threads()} CPU threads ({os.cpu_count()} cores)"


def plot_curve(metrics_csv: Path, png: Path) -> None:
    """Loss and validation mIoU against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(metrics_csv.open()))
    if not rows:
        return
    step = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(step, [float(r["loss"]) for r in rows])
    ax[0].set(xlabel="step", ylabel="train loss (BCE + Dice)", yscale="log")
    ax[1].plot(step, [float(r["val_miou"]) for r in rows], marker="o")
    ax[1].set(xlabel="step", ylabel="validation mIoU")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return list(x)
    return x
