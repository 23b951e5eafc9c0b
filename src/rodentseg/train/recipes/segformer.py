"""Recipe ``segformer``: full fine-tune of ``SegformerForSemanticSegmentation`` (2 classes).

Xie et al., "SegFormer: Simple and Efficient Design for Semantic Segmentation with
Transformers", NeurIPS 2021. Frames are resized to ``model.size`` (512 x 512 by default, as
``SegformerImageProcessor``) and ImageNet-normalised inside :class:`SegformerSegNet`; the
1/4-resolution logits are upsampled bilinearly to the frame, where cross-entropy (+ ``dice_weight``
x soft Dice on the rodent probability) is computed. Every parameter trains.

This module also holds what the semantic recipes share (:class:`SemanticRecipe`: option
parsing, the batch sampler, augmentation, prediction and state), which ``dinov3-lora`` extends.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rodentseg.errors import RodentsegError
from rodentseg.models.finetuned import (
    FinetunedSettings,
    SegformerSegNet,
    save_finetuned,
    semantic_probs,
)
from rodentseg.train.losses import dice_loss
from rodentseg.train.recipe import register

RANDOM_HINT = "or start from random weights with --set model.pretrained=null"


def parse_options(cls, options: dict | None, recipe: str):
    """A ``cls`` dataclass from the YAML ``model:`` mapping; unknown keys raise.

    Raises:
        RodentsegError: a key that is not a field of ``cls`` (the known ones are listed).
    """
    known = [f.name for f in fields(cls)]
    bad = sorted(set(options or {}) - set(known))
    if bad:
        raise RodentsegError(f"unknown model option(s) {bad} for recipe {recipe!r}; known: "
                             f"{known}")
    return cls(**(options or {}))


def load_pretrained(cls, src: str, allowed_new: tuple[str, ...] = (),
                    allowed_extra: tuple[str, ...] = (), **kwargs) -> nn.Module:
    """``cls.from_pretrained(src, **kwargs)``, strictly: only weights under ``allowed_new``
    prefixes may be missing or re-shaped (a new head), only ``allowed_extra`` ones unused.

    Raises:
        RodentsegError: the checkpoint cannot be loaded (hub unreachable, no such directory)
            or its weights do not fit ``cls``.
    """
    try:
        model, info = cls.from_pretrained(src, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        raise RodentsegError(f"cannot load {cls.__name__} from {src!r} ({str(e).splitlines()[0]});"
                             f" expected a hub id (needs the Hugging Face hub) or a directory "
                             f"written by save_pretrained, {RANDOM_HINT}") from None
    mismatched = [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys", [])]
    bad = ([k for k in [*info.get("missing_keys", []), *mismatched] if not k.startswith(allowed_new)]
           + [k for k in info.get("unexpected_keys", []) if not k.startswith(allowed_extra)])
    if bad:
        raise RodentsegError(f"{src!r} is not a {cls.__name__} checkpoint: weights "
                             f"{sorted(bad)[:5]} are missing, unexpected or of another shape")
    return model


class FrameSampler:
    """Random batches of frames of one size (one video's resolution), so that losses stay at
    each frame's full resolution: a size is drawn in proportion to its number of frames, then
    ``batch_size`` of its frames without replacement (with replacement if it has fewer).

    Args:
        sizes: (H, W) of each frame. seed: seed of the numpy ``PCG64`` generator.
    """

    def __init__(self, sizes: list[tuple[int, int]], seed: int):
        self.groups = {s: np.flatnonzero([x == s for x in sizes]) for s in dict.fromkeys(sizes)}
        self.weights = np.array([len(v) for v in self.groups.values()], np.float64)
        self.rng = np.random.default_rng(seed)

    def draw(self, batch_size: int) -> np.ndarray:
        """(batch_size,) int indices of frames of one size."""
        g = list(self.groups.values())[self.rng.choice(len(self.groups),
                                                       p=self.weights / self.weights.sum())]
        return self.rng.choice(g, batch_size, replace=len(g) < batch_size)


class SemanticRecipe:
    """Shared part of the per-pixel (semantic) recipes: frames in, rodent probability out.

    ``setup`` keeps every training frame in memory (N x H x W x 4 bytes: 114 MB for 93 frames
    of 640 x 480). Batches are ``{"image": (B, 3, H, W) float32 RGB in [0, 1], "mask":
    (B, H, W) int64 in {0, 1}}`` after :class:`rodentseg.train.transforms.PromptAugment` with
    the YAML's ``augment:`` options (empty = its defaults; set the probabilities to 0 for none).
    Subclasses set ``Options`` and implement ``build_model``, ``loss`` and ``settings``.
    """

    name: str
    Options: type

    def __init__(self, model_options: dict | None, augment_options: dict | None, seed: int = 0):
        from rodentseg.train.transforms import PromptAugment

        self.options = parse_options(self.Options, model_options, self.name)
        self.threshold = float(self.options.threshold)
        self.augment = PromptAugment(augment_options or {}, seed=seed)
        self.seed = seed
        self.sampler: FrameSampler | None = None

    def setup(self, train, val) -> None:
        """Load the training frames (items as in :mod:`rodentseg.train.recipe`).

        Raises:
            RodentsegError: an empty training split.
        """
        items = [train[i] for i in range(len(train))]
        if not items:
            raise RodentsegError("the training split is empty; expected at least one frame")
        self.images = [np.ascontiguousarray(it["image"]) for it in items]
        self.labels = [(np.asarray(it["mask"]) > 0).astype(np.uint8) for it in items]
        self.sampler = FrameSampler([lab.shape for lab in self.labels], self.seed)

    def batches(self, batch_size: int):
        """Endless augmented batches (see the class docstring)."""
        if self.sampler is None:
            raise RodentsegError("call setup(train, val) before batches()")
        while True:
            idx = self.sampler.draw(batch_size)
            img = torch.from_numpy(np.stack([self.images[i] for i in idx]))
            img = img.permute(0, 3, 1, 2).float() / 255
            lab = torch.from_numpy(np.stack([self.labels[i] for i in idx]))[:, None].float()
            out = self.augment(img, lab, None, None)
            yield {"image": out["image"].contiguous(), "mask": (out["masks"][:, 0] > 0.5).long()}

    def predict(self, model: nn.Module, item: dict[str, Any]) -> np.ndarray:
        """(H, W) float32 rodent probability of ``item["image"]`` (:func:`semantic_probs`,
        in eval mode; the model's mode is restored)."""
        was = model.training
        model.eval()
        try:
            return semantic_probs(model, item["image"][None])[0]
        finally:
            model.train(was)

    def save(self, model: nn.Module, path: Path) -> None:
        """Write ``config.json`` + ``model.safetensors`` (:func:`save_finetuned`)."""
        save_finetuned(model, path)

    def state_dict(self) -> dict:
        """The sampler's generator state and the augmentation's (restored on resume)."""
        return {"rng": self.sampler.rng.bit_generator.state if self.sampler else None,
                "augment": self.augment.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (after ``setup``)."""
        if self.sampler is not None and state.get("rng") is not None:
            self.sampler.rng.bit_generator.state = state["rng"]
        self.augment.load_state_dict(state["augment"])


@dataclass
class SegformerOptions:
    """``model:`` options of ``segformer``.

    Attributes:
        pretrained: hub id or directory of a SegFormer checkpoint (``nvidia/mit-b0``: the
            ImageNet encoder; the decode head starts random), or None for random weights.
        config: ``SegformerConfig`` overrides (with ``pretrained: null``, on top of the default
            MiT-b0 config; with a checkpoint, settings such as ``drop_path_rate`` only).
        size: model input side, or [height, width], in pixels.
        dice_weight: weight of the soft Dice term added to cross-entropy (0 = none).
        threshold: probability above which a pixel is rodent at inference.
    """

    pretrained: str | None = "nvidia/mit-b0"
    config: dict = field(default_factory=dict)
    size: int | list[int] = 512
    dice_weight: float = 1.0
    threshold: float = 0.5


@register("segformer")
class SegformerRecipe(SemanticRecipe):
    """Full fine-tune of SegFormer for rodent / background (module docstring)."""

    Options = SegformerOptions

    def __init__(self, model_options: dict | None, augment_options: dict | None, seed: int = 0):
        super().__init__(model_options, augment_options, seed)
        size = self.options.size
        size = [size, size] if isinstance(size, int) else list(size)
        if len(size) != 2 or min(size) < 32:
            raise RodentsegError(f"model.size must be a side or [height, width] of at least 32 px;"
                                 f" got {self.options.size!r}")
        self.settings = FinetunedSettings(recipe="segformer", threshold=self.threshold,
                                          size=tuple(int(s) for s in size))

    def build_model(self) -> nn.Module:
        """:class:`SegformerSegNet` with 2 labels; every parameter trains."""
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        labels = {"num_labels": 2, "id2label": {0: "background", 1: "rodent"},
                  "label2id": {"background": 0, "rodent": 1}}
        o = self.options
        if o.pretrained is None:
            model = SegformerForSemanticSegmentation(SegformerConfig(**{**o.config, **labels}))
        else:
            model = load_pretrained(SegformerForSemanticSegmentation, o.pretrained,
                                    allowed_new=("decode_head.",), allowed_extra=("classifier.",),
                                    ignore_mismatched_sizes=True, **o.config, **labels)
        return SegformerSegNet(model, self.settings).train()

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy + ``dice_weight`` x soft Dice at the frames' full resolution."""
        logits = model(batch["image"]).float()
        loss = F.cross_entropy(logits, batch["mask"])
        if self.options.dice_weight:
            rodent = logits[:, 1] - logits[:, 0]  # sigmoid of this = softmax of class 1
            loss = loss + self.options.dice_weight * dice_loss(rodent, batch["mask"]).mean()
        return loss
