"""The run configuration of ``rodentseg train``: YAML presets under ``configs/`` plus
``--set key=value`` overrides, checked against dataclass fields (an unknown key is an error
that lists the known ones). The resolved config is saved with each run (``config.yaml``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from rodentseg.errors import RodentsegError


@dataclass
class SplitConfig:
    """Train/validation split (see :func:`rodentseg.train.datasets.split_dataset`).

    Attributes:
        by: ``frame`` (the last ``val_fraction`` of each video's frames in time order),
            ``video`` (whole videos held out) or ``setup`` (every frame of the ``holdout``
            setups held out: leave one setup out).
        val_fraction: share of frames (or videos) held out.
        seed: which videos are held out with ``by: video``.
        holdout: ``by: setup``: the setups to validate on (names as
            :func:`rodentseg.train.datasets.setup_name` gives them, e.g. ``[vame-bottomup]``).
    """

    by: str = "frame"
    val_fraction: float = 0.2
    seed: int = 0
    holdout: list[str] = field(default_factory=list)


@dataclass
class FinishConfig:
    """A phase after ``steps``: a fresh warm-up and cosine decay (a warm restart), and batches
    drawn with some of the recipe's ``augment`` keys changed (e.g. mostly real frames at their
    own scale after a long copy-paste phase; what that did is in ``docs/training.md``).

    Attributes:
        steps: optimiser steps of this phase (0 = skipped).
        lr, warmup: its peak learning rate and linear warm-up steps.
        augment: ``augment`` keys that differ from the run's ``augment`` in this phase (the
            recipe checks them); an empty mapping is the run's own ``augment``.
    """

    steps: int = 0
    lr: float = 5e-4
    warmup: int = 50
    augment: dict = field(default_factory=dict)


@dataclass
class RunConfig:
    """One training run; recipe-specific options live in ``model`` and ``augment``.

    Attributes:
        recipe: a name in :data:`rodentseg.train.recipe.RECIPES`.
        name: the run's name (model name in ``run.json`` of later segmentations).
        data: dataset folder or file, or a list of them
            (:func:`rodentseg.train.datasets.load_datasets`: a folder of ``labels`` parts such
            as ``data/labels/sleap-homecage`` is all of its parts; each frame knows its setup).
        data_root: the folder the ``labels`` layout's relative sources are found in
            (``sources.csv`` written by ``rodentseg autolabel --sources-root``).
        format: dataset format (of every listed dataset), or ``auto``.
        out: run directory (``runs/<name>``); a run found there is resumed.
        init: a model folder (``model.safetensors``, e.g. the shipped
            ``src/rodentseg/models/weights/rodentseg-tiny``) whose weights the recipe's model
            starts from instead of its random initialisation (fine-tuning); every tensor must
            match by name and shape. Empty: from scratch. A resumed run ignores it.
        steps: optimiser steps; each consumes ``grad_accum`` batches of ``batch_size``.
        lr, weight_decay, warmup: AdamW with linear warm-up then cosine decay to 0.
        clip_grad: gradient norm clipping (0 = off).
        eval_every, checkpoint_every: in optimiser steps (0 = once per epoch of the training
            split, i.e. ``ceil(len(train) / (batch_size * grad_accum))`` steps).
        mixed_precision: ``auto`` (bf16 on a GPU that supports it, else fp16 on GPU, none on
            CPU), ``no``, ``fp16`` or ``bf16``.
        threads: torch CPU threads (0 = torch's default).
        finish: phases after ``steps``, in order (:class:`FinishConfig`; in YAML a list of
            mappings, or one mapping for one phase); the run has ``steps`` plus their steps
            in all.
    """

    recipe: str = "scratch-tiny"
    name: str = "rodentseg-tiny"
    data: str | list[str] = "../shared/data/openfield-m4s1"
    data_root: str = "../shared/data"
    format: str = "auto"
    split: SplitConfig = field(default_factory=SplitConfig)
    out: str = "runs/rodentseg-tiny"
    init: str = ""
    steps: int = 3000
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup: int = 100
    clip_grad: float = 1.0
    eval_every: int = 250
    checkpoint_every: int = 250
    mixed_precision: str = "auto"
    seed: int = 0
    threads: int = 0
    model: dict = field(default_factory=dict)
    augment: dict = field(default_factory=dict)
    finish: list[FinishConfig] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """Build from a nested mapping; unknown keys raise :class:`RodentsegError`."""
        _check_keys(d, cls, "config")
        d = dict(d)
        split = d.pop("split", None) or {}
        _check_keys(split, SplitConfig, "split")
        finish = d.pop("finish", None) or []
        one = isinstance(finish, dict)
        if not (one or isinstance(finish, list)):
            raise RodentsegError(f"finish must be a mapping (one phase) or a list of them; got "
                                 f"{finish!r}")
        names = ["finish"] if one else [f"finish[{i}]" for i in range(len(finish))]
        finish = [finish] if one else finish
        for name, phase in zip(names, finish):
            _check_keys(phase, FinishConfig, name)
        cfg = cls(**d, split=SplitConfig(**split),
                  finish=[FinishConfig(**phase) for phase in finish])
        _check_types(cfg, "")
        _check_types(cfg.split, "split.")
        for name, phase in zip(names, cfg.finish):
            _check_types(phase, f"{name}.")
        checks = [("model", cfg.model), ("augment", cfg.augment)]
        checks += [(f"{name}.augment", phase.augment) for name, phase in zip(names, cfg.finish)]
        for key, value in checks:
            if not isinstance(value, dict):
                raise RodentsegError(f"config key {key!r} must be a mapping, got {value!r}")
        data = cfg.data if isinstance(cfg.data, list) else [cfg.data]
        if not data or not all(isinstance(x, str) and x for x in data):
            raise RodentsegError(f"data must be a dataset path or a non-empty list of them; got "
                                 f"{cfg.data!r}")
        holdout = cfg.split.holdout
        if holdout is None:
            cfg.split.holdout = holdout = []
        if isinstance(holdout, str):  # --set split.holdout=vame-bottomup
            cfg.split.holdout = holdout = [holdout]
        if not isinstance(holdout, list) or not all(isinstance(x, str) for x in holdout):
            raise RodentsegError(f"split.holdout must be a list of setup names, e.g. "
                                 f"[vame-bottomup]; got {holdout!r}")
        if cfg.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise RodentsegError(f"mixed_precision must be auto, no, fp16 or bf16; got "
                                 f"{cfg.mixed_precision!r}")
        if min(cfg.steps, cfg.batch_size, cfg.grad_accum) < 1:
            raise RodentsegError("steps, batch_size and grad_accum must be >= 1; got "
                                 f"{cfg.steps}, {cfg.batch_size}, {cfg.grad_accum}")
        for name, phase in zip(names, cfg.finish):
            if phase.steps < 0:
                raise RodentsegError(f"{name}.steps must be >= 0; got {phase.steps}")
        return cfg

    @property
    def total_steps(self) -> int:
        """Optimiser steps of the whole run (``steps`` plus the finish phases')."""
        return self.steps + sum(phase.steps for phase in self.finish)

    def to_dict(self) -> dict:
        return _plain(asdict(self))


def _check_types(obj, prefix: str) -> None:
    """Check (in place) that the scalar fields of a config dataclass hold their type: ``int``
    fields whole numbers, ``float`` fields finite numbers (a YAML string such as ``1e-3``, which
    YAML 1.1 reads as text, is converted), ``str`` fields text.

    Raises:
        RodentsegError: names the key, the type expected and the value received.
    """
    for f in fields(obj):
        v = getattr(obj, f.name)
        if f.type in ("int", "float") and isinstance(v, str):
            try:
                v = float(v) if f.type == "float" else int(v)
            except ValueError:
                pass
        if f.type == "int" and (isinstance(v, bool) or not isinstance(v, int)):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise RodentsegError(f"{prefix}{f.name} must be a whole number; got {v!r}")
        elif f.type == "float":
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise RodentsegError(f"{prefix}{f.name} must be a finite number; got {v!r}")
            v = float(v)
        elif f.type == "str" and not isinstance(v, str):
            raise RodentsegError(f"{prefix}{f.name} must be text; got {v!r}")
        setattr(obj, f.name, v)


def _check_keys(d: dict, cls, what: str) -> None:
    if not isinstance(d, dict):
        raise RodentsegError(f"{what} must be a mapping, got {d!r}")
    known = {f.name for f in fields(cls)}
    bad = set(d) - known
    if bad:
        raise RodentsegError(f"unknown {what} key(s) {sorted(bad)}; expected {sorted(known)}")


def load_config(path: str | None, overrides: list[str]) -> RunConfig:
    """A YAML file (optional) plus ``key=value`` overrides; dotted keys nest
    (``model.input_scale=0.25``, ``augment.scale=[0.3,1.2]``), values are parsed as YAML.

    Raises:
        RodentsegError: the file is missing or not YAML, an override is not ``key=value``, or
            a key is unknown.
    """
    d: dict = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise RodentsegError(f"config file {p} does not exist")
        try:
            d = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise RodentsegError(f"config file {p} is not valid YAML: {e}") from None
    for item in overrides:
        if "=" not in item:
            raise RodentsegError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        node = d
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RodentsegError(f"--set {key}: {part!r} is not a mapping")
        node[leaf] = yaml.safe_load(value)
    return RunConfig.from_dict(d)


def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, tuple):
        return [_plain(v) for v in x]
    return x
