"""The training loop shared by every recipe, on Hugging Face Accelerate.

``rodentseg train --config configs/<recipe>.yaml`` runs :func:`train`. The same code runs on
the CPU, one GPU, or several GPUs and nodes (``accelerate launch -m rodentseg.cli train ...``):
Accelerate places the model, wraps it for data-parallel training, applies mixed precision and
gradient accumulation; each process draws its own batches (recipe seed + process index).

A run directory ``runs/<name>/`` holds ``config.yaml`` (the resolved config and the split),
``checkpoint/`` (Accelerate state: ``model.safetensors``, optimiser, RNG and batch-sampler
states, ``step.json``; a killed run started again with the same ``out`` resumes from it),
``metrics.csv``, ``curve.png`` (loss and validation IoU), ``sample.png`` (frame, prediction,
ground truth side by side), ``scores.yaml`` and ``model/`` (what ``rodentseg segment --model``
loads; ``--model runs/<name>`` works too).
"""

from __future__ import annotations

import csv
import json
import math
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from tqdm import tqdm

from rodentseg.errors import RodentsegError
from rodentseg.evaluate.metrics import boundary_f_measure, region_similarity
from rodentseg.train.config import RunConfig
from rodentseg.train.recipe import RECIPES

METRIC_COLUMNS = ["step", "loss", "lr", "val_miou", "val_min_iou", "val_jf", "elapsed_s"]


def recipe_factory(name: str):
    """The registered recipe class for ``name``.

    Raises:
        RodentsegError: unknown recipe (the message lists the known ones).
    """
    import rodentseg.train.scratch  # registers scratch-tiny

    try:
        import rodentseg.train.recipes  # noqa: F401  (registers the fine-tuning recipes)
    except ModuleNotFoundError:
        pass
    if name not in RECIPES:
        raise RodentsegError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}")
    return RECIPES[name]


def phase_at(step: int, cfg: RunConfig) -> tuple[int, int]:
    """Which phase optimiser step ``step`` belongs to, and its index within that phase.

    Returns:
        ``(k, i)``: ``k`` 0 is the main schedule (``cfg.steps``), ``k`` >= 1 is
        ``cfg.finish[k - 1]``; a step past the end counts in the last phase.
    """
    start = cfg.steps
    if step < start or not cfg.finish:
        return 0, step
    for k, phase in enumerate(cfg.finish[:-1], 1):
        if step < start + phase.steps:
            return k, step - start
        start += phase.steps
    return len(cfg.finish), step - start


def lr_at(step: int, cfg: RunConfig) -> float:
    """Learning rate of optimiser step ``step``: linear warm-up, then cosine decay to 0; each
    finish phase (``cfg.finish``, from step ``cfg.steps`` on) restarts both with its own lr
    (warm restarts, Loshchilov & Hutter 2017, "SGDR")."""
    k, step = phase_at(step, cfg)
    lr, warmup, steps = cfg.lr, cfg.warmup, cfg.steps
    if k:
        phase = cfg.finish[k - 1]
        lr, warmup, steps = phase.lr, phase.warmup, phase.steps
    if step < warmup:
        return lr * (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * t))


def _mixed_precision(cfg: RunConfig) -> str:
    if cfg.mixed_precision != "auto":
        return cfg.mixed_precision
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def evaluate_recipe(recipe, model, items, threshold: float = 0.5) -> dict[str, np.ndarray]:
    """Score the recipe's predictions on labelled items with :mod:`rodentseg.evaluate`.

    Returns:
        ``{"iou": (N,), "f": (N,)}`` float64 per item: DAVIS region similarity J (binary rodent
        mask, both empty = 1) and boundary F-measure (davis2017-evaluation), full resolution.
    """
    was_training = model.training
    model.eval()
    ious, fs = [], []
    with torch.inference_mode():
        for item in items:
            pred = recipe.predict(model, item) > threshold
            gt = item["mask"] > 0
            ious.append(region_similarity(pred, gt))
            fs.append(boundary_f_measure(pred, gt))
    model.train(was_training)
    return {"iou": np.asarray(ious), "f": np.asarray(fs)}


def train(cfg: RunConfig, progress: bool = True, overwrite: bool = False) -> dict:
    """Run ``cfg``'s recipe to ``cfg.total_steps`` optimiser steps (resuming a killed run).

    A run found in ``cfg.out`` is resumed only if its ``config.yaml`` is the same run
    (:func:`check_same_run`); with ``overwrite`` it is deleted and the run starts afresh.

    Returns:
        The final scores (also in ``scores.yaml``): ``val_miou`` (mean IoU over validation
        frames), ``val_min_iou``, ``val_jf`` (DAVIS J&F mean), ``val_miou_by_setup``
        (``{setup: mean IoU}``), ``train_setups`` / ``val_setups`` (``{setup: frames}``),
        ``trainable_params``, ``total_params``, ``train_time_s`` (optimiser steps and
        evaluations), ``setup_time_s`` (the recipe's one-off preparation, e.g. caching
        embeddings), ``peak_rss_mb`` (and ``peak_gpu_mb`` on a GPU), ...

    Raises:
        RodentsegError: unknown recipe or option, unreadable data, an empty split, or another
            run's folder as ``out`` without ``overwrite``.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    from rodentseg.train.datasets import describe_split, load_datasets, split_dataset

    factory = recipe_factory(cfg.recipe)
    if overwrite:
        _remove_run(Path(cfg.out))
    check_same_run(Path(cfg.out), cfg)
    set_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    acc = Accelerator(mixed_precision=_mixed_precision(cfg),
                      gradient_accumulation_steps=cfg.grad_accum)
    recipe = factory(cfg.model, cfg.augment, seed=cfg.seed + acc.process_index)  # checks options
    switches = _finish_switches(recipe, cfg)
    out = Path(cfg.out)
    data = load_datasets(cfg.data, cfg.format, data_root=cfg.data_root)
    train_set, val_set = split_dataset(data, by=cfg.split.by, val_fraction=cfg.split.val_fraction,
                                       seed=cfg.split.seed, holdout=cfg.split.holdout)
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        resolved = cfg.to_dict() | {"resolved_split": describe_split(train_set, val_set)}
        (out / "config.yaml").write_text(yaml.safe_dump(resolved, sort_keys=False))
    t_setup = time.perf_counter()
    recipe.setup(train_set, val_set)  # e.g. sam2-decoder caches its image embeddings here
    setup_time = time.perf_counter() - t_setup
    model = recipe.build_model()
    if cfg.init:
        init_weights(model, Path(cfg.init))
        acc.print(f"starting from the weights of {cfg.init}")
    params = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in params)
    n_total = sum(p.numel() for p in model.parameters())
    acc.print(f"{cfg.recipe}: {n_train:,} trainable of {n_total:,} parameters "
              f"({100 * n_train / n_total:.2f}%)")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    model, opt = acc.prepare(model, opt)
    acc.register_for_checkpointing(recipe)

    ckpt = out / "checkpoint"
    start, elapsed0 = _resume(acc, ckpt)
    if start:
        acc.print(f"resuming {out} at step {start}")
    metrics = out / "metrics.csv"
    if start == 0 and acc.is_main_process:
        metrics.write_text(",".join(METRIC_COLUMNS) + "\n")
    per_epoch = max(1, math.ceil(len(train_set) / (cfg.batch_size * cfg.grad_accum)))
    eval_every = cfg.eval_every or per_epoch
    ckpt_every = cfg.checkpoint_every or per_epoch
    threshold = getattr(recipe, "threshold", 0.5)
    batches = recipe.batches(cfg.batch_size)
    t0 = time.perf_counter() - elapsed0
    losses: list[float] = []
    s = None  # the evaluation after the last step, reused for scores.yaml
    total = cfg.total_steps
    bar = tqdm(range(start, total), initial=start, total=total, unit="step",
               disable=not (progress and acc.is_main_process))
    for step in bar:
        k, i = phase_at(step, cfg)
        if k and (i == 0 or step == start):
            switches[k - 1]()  # from here on, this finish phase's batches
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        for _ in range(cfg.grad_accum):
            batch = {k: v.to(acc.device) for k, v in next(batches).items()}
            with acc.accumulate(model):
                with acc.autocast():
                    loss = recipe.loss(model, batch)
                acc.backward(loss)
                if acc.sync_gradients and cfg.clip_grad:
                    acc.clip_grad_norm_(params, cfg.clip_grad)
                opt.step()
                opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        done = step + 1
        if (done % eval_every == 0 or done == total) and acc.is_main_process:
            s = evaluate_recipe(recipe, acc.unwrap_model(model), val_set, threshold)
            jf = (s["iou"].mean() + s["f"].mean()) / 2
            with metrics.open("a") as f:
                f.write(f"{done},{np.mean(losses[-eval_every * cfg.grad_accum:]):.5f},"
                        f"{lr_at(step, cfg):.6g},{s['iou'].mean():.5f},{s['iou'].min():.5f},"
                        f"{jf:.5f},{time.perf_counter() - t0:.1f}\n")
            by_setup = per_setup(s["iou"], val_set)
            bar.write(f"step {done}: val mean IoU {s['iou'].mean():.4f} "
                      f"(min {s['iou'].min():.4f}), J&F {jf:.4f}" + (
                          "; " + ", ".join(f"{k} {v:.4f}" for k, v in by_setup.items())
                          if len(by_setup) > 1 else ""))
        if done % ckpt_every == 0 or done == total:
            _checkpoint(acc, ckpt, done, time.perf_counter() - t0)
    train_time = time.perf_counter() - t0
    acc.wait_for_everyone()
    if not acc.is_main_process:
        return {}
    net = acc.unwrap_model(model)
    recipe.save(net, out / "model")
    if (out / "model" / "model.safetensors").is_file():  # checked on every load from now on
        from rodentseg.models.integrity import write_sha256sums

        write_sha256sums(out / "model")
    if s is None:  # no step ran in this process (a finished run started again)
        s = evaluate_recipe(recipe, net, val_set, threshold)
    scores = {"recipe": cfg.recipe, "val_miou": float(s["iou"].mean()),
              "val_min_iou": float(s["iou"].min()),
              "val_jf": float((s["iou"].mean() + s["f"].mean()) / 2),
              "val_f": float(s["f"].mean()),
              "val_miou_by_setup": per_setup(s["iou"], val_set),
              "train_setups": _setup_counts(train_set), "val_setups": _setup_counts(val_set),
              "val_frames": val_set.names, "train_frames": len(train_set),
              "steps": total, "train_time_s": round(train_time, 1),
              "setup_time_s": round(setup_time, 1),
              "trainable_params": n_train, "total_params": n_total,
              "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
              "hardware": hardware_name()}
    if torch.cuda.is_available():
        scores["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    (out / "scores.yaml").write_text(yaml.safe_dump(scores, sort_keys=False))
    plot_curve(metrics, out / "curve.png")
    write_sample(recipe, net, val_set, s["iou"], out / "sample.png", threshold)
    if hasattr(recipe, "write_card"):
        recipe.write_card(out / "model", cfg, scores)
    return scores


def per_setup(values: np.ndarray, items) -> dict[str, float]:
    """Mean of ``values`` (one per item of ``items``, e.g. IoU per validation frame) per setup,
    in setup name order (``items.setups``; items without a setup count as ``""``)."""
    setups = list(getattr(items, "setups", None) or [""] * len(values))
    return {k: float(np.mean([v for v, s in zip(values, setups) if s == k]))
            for k in sorted(set(setups))}


def _setup_counts(ds) -> dict[str, int]:
    return {k: ds.setups.count(k) for k in sorted(set(ds.setups))}


def _finish_switches(recipe, cfg: RunConfig) -> list:
    """The functions that start each finish phase's batches (checked now; no-ops when no
    phase changes ``augment``).

    Raises:
        RodentsegError: a phase changes ``augment`` but the recipe has no finish phase, or a
            phase names an unknown augment key.
    """
    if not any(phase.steps and phase.augment for phase in cfg.finish):
        return [lambda: None] * len(cfg.finish)
    if not hasattr(recipe, "finish"):
        raise RodentsegError(f"recipe {cfg.recipe!r} cannot change its batches in a finish "
                             "phase; remove finish.augment (finish.steps and finish.lr work "
                             "with every recipe)")
    return [recipe.finish(phase.augment) for phase in cfg.finish]


#: Keys a resumed run may change: when to evaluate and checkpoint, and CPU threads.
RESUMABLE_CHANGES = {"eval_every", "checkpoint_every", "threads"}


def _remove_run(out: Path) -> None:
    """Delete a run folder (``--overwrite``); a folder that holds no run is refused, so a
    mistyped ``out`` cannot delete other files."""
    if not out.exists():
        return
    marks = ("config.yaml", "checkpoint", "metrics.csv", "model")
    if not out.is_dir() or not any((out / m).exists() for m in marks):
        raise RodentsegError(f"--overwrite: {out} is not a training run folder (no config.yaml, "
                             "checkpoint/ or metrics.csv); not deleting it")
    shutil.rmtree(out)


def check_same_run(out: Path, cfg: RunConfig) -> None:
    """Refuse to resume a run in ``out`` that was started with another config.

    Resuming is allowed when ``out/config.yaml`` equals ``cfg`` except for
    :data:`RESUMABLE_CHANGES` and more ``finish`` phases after the old ones (extending a run).
    A folder without ``config.yaml`` (nothing started), or one written by an older rodentseg
    whose config no longer parses, is not checked.

    Raises:
        RodentsegError: the configs differ elsewhere; names the keys.
    """
    path = out / "config.yaml"
    if not path.is_file():
        return
    old = yaml.safe_load(path.read_text()) or {}
    old.pop("resolved_split", None)
    try:
        old = RunConfig.from_dict(old).to_dict()
    except RodentsegError:
        return
    new = cfg.to_dict()
    differ = sorted(k for k in new if k not in RESUMABLE_CHANGES | {"finish"}
                    and old.get(k) != new[k])
    if new["finish"][:len(old["finish"])] != old["finish"]:
        differ.append("finish")
    if differ:
        raise RodentsegError(f"{out} holds a run with another config (it differs in "
                             f"{', '.join(differ)}); resuming it would mix two runs. Choose "
                             "another out (--set out=runs/NAME) or start afresh with --overwrite")


def init_weights(model: torch.nn.Module, path: Path) -> None:
    """Load ``path/model.safetensors`` (or ``path`` itself, a ``.safetensors`` file) into
    ``model`` in place: the start of a fine-tuning run (``init`` in the config).

    Raises:
        RodentsegError: no such file, or its tensors do not match the model's by name and shape
            (another architecture or size).
    """
    from safetensors.torch import load_file

    file = path / "model.safetensors" if path.is_dir() else path
    if not file.is_file():
        raise RodentsegError(f"init: expected a model folder with model.safetensors or a "
                             f".safetensors file; got {path}")
    state = load_file(str(file))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = [k for k in own.keys() & state.keys() if own[k].shape != state[k].shape]
    if missing or extra or shapes:
        what = (f"missing {missing[:3]}" if missing else f"unexpected {extra[:3]}" if extra
                else f"shape of {shapes[0]} is {tuple(state[shapes[0]].shape)}, the model's "
                     f"{tuple(own[shapes[0]].shape)}")
        raise RodentsegError(f"init: {file} does not fit this recipe's model ({what}); expected "
                             "weights of the same architecture and size")
    model.load_state_dict(state)


def _resume(acc, ckpt: Path) -> tuple[int, float]:
    """Load the newest complete checkpoint (``checkpoint/``, else an unrenamed
    ``checkpoint.tmp/``); returns (step, elapsed seconds) or (0, 0.0)."""
    for d in (ckpt, ckpt.with_name(ckpt.name + ".tmp")):
        if (d / "step.json").is_file():
            acc.load_state(str(d))
            state = json.loads((d / "step.json").read_text())
            return int(state["step"]), float(state.get("elapsed_s", 0.0))
    return 0, 0.0


def _checkpoint(acc, ckpt: Path, step: int, elapsed: float) -> None:
    """Save the Accelerate state to ``checkpoint.tmp``, mark it complete with ``step.json``,
    then swap it for ``checkpoint`` (a kill at any point leaves one complete checkpoint)."""
    tmp = ckpt.with_name(ckpt.name + ".tmp")
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp), safe_serialization=True)
    if acc.is_main_process:
        (tmp / "step.json").write_text(json.dumps({"step": step, "elapsed_s": round(elapsed, 1)}))
        shutil.rmtree(ckpt, ignore_errors=True)
        os.replace(tmp, ckpt)
    acc.wait_for_everyone()


def hardware_name() -> str:
    """Where this process trains (GPU name, else the CPU thread and core count)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{torch.get_num_threads()} CPU threads ({os.cpu_count()} cores)"


def plot_curve(metrics_csv: Path, png: Path) -> None:
    """Training loss and validation mean IoU / J&F against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(metrics_csv.open()))
    if not rows:
        return
    step = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(step, [float(r["loss"]) for r in rows])
    ax[0].set(xlabel="step", ylabel="training loss", yscale="log")
    ax[1].plot(step, [float(r["val_miou"]) for r in rows], marker="o", label="mean IoU")
    if "val_jf" in rows[0]:
        ax[1].plot(step, [float(r["val_jf"]) for r in rows], marker=".", label="J&F")
    ax[1].set(xlabel="step", ylabel="validation")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def write_sample(recipe, model, items, ious: np.ndarray, png: Path,
                 threshold: float = 0.5) -> None:
    """Frame | prediction | ground truth, side by side, for the first and the worst
    validation frame (titles give the IoU)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = sorted({0, int(np.argmin(ious))})
    fig, axes = plt.subplots(len(picks), 3, figsize=(10, 2.8 * len(picks)), squeeze=False)
    model.eval()
    with torch.inference_mode():
        for row, i in zip(axes, picks):
            item = items[i]
            pred = recipe.predict(model, item) > threshold
            for a, img, title in zip(row, (item["image"], pred, item["mask"] > 0),
                                     (item["name"], f"prediction (IoU {ious[i]:.3f})",
                                      "ground truth")):
                a.imshow(img, cmap="gray")
                a.set_title(title, fontsize=9)
                a.axis("off")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)
