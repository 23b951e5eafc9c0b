"""Recipe ``dinov3-lora``: a frozen DINOv3 ViT with LoRA adapters and an MLP head on its patches.

- Backbone: ``DINOv3ViTModel`` (Simeoni et al., "DINOv3", 2025), frozen. LoRA (Hu et al.,
  "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022) from ``peft`` on the
  attention projections ``q_proj``, ``k_proj``, ``v_proj``, ``o_proj`` of every layer
  (``DINOv3ViTAttention``); rank ``lora_r``, scale ``lora_alpha / lora_r``, dropout
  ``lora_dropout``. Only the adapters and the head train.
- Head: :class:`rodentseg.models.finetuned.DinoSegNet` (Linear, GELU, Linear on each patch
  token; CLS and register tokens dropped), logits on the 16-px patch grid upsampled bilinearly
  to the frame.
- Input: the frame at ``input_scale`` of its resolution (0.5; ``rodentseg train --low-res``
  sets 0.25), resized to whole patches; loss and score at the frame's full resolution.
- Loss: cross-entropy with class weights from the training masks' pixel frequencies by median
  frequency balancing (:func:`rodentseg.train.losses.median_frequency_weights`, computed in
  ``setup``), or ``class_weights: none`` / an explicit ``[background, rodent]`` list.
- Saved model: the adapters are merged into the backbone's weights (``merge_and_unload`` on a
  copy), so the run's ``model/`` is a plain DINOv3 ViT + head that inference loads without
  ``peft``; the training model itself is left unmerged.

On a released checkpoint (ViT-S/16, 21.6 M parameters) with r = 8 on the four projections,
the adapters are 0.29 M parameters and the 256-wide head 0.10 M: 1.8 % of the 22.0 M train
(measured from random weights: 294,912 + 99,074 of 21,990,530).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rodentseg.errors import RodentsegError
from rodentseg.models.finetuned import DinoSegNet, FinetunedSettings, save_finetuned
from rodentseg.train.losses import median_frequency_weights
from rodentseg.train.recipe import register
from rodentseg.train.recipes.segformer import SemanticRecipe, load_pretrained

ATTENTION_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj"]


@dataclass
class Dinov3LoraOptions:
    """``model:`` options of ``dinov3-lora``.

    Attributes:
        pretrained: hub id or directory of a DINOv3 ViT checkpoint, or None for random weights.
        config: ``DINOv3ViTConfig`` overrides (with ``pretrained: null``, on top of the default
            ViT-S/16 config; with a checkpoint, non-shape settings only).
        input_scale: model input side / frame side, in (0, 2]; 0.5 = half resolution.
        lora_r, lora_alpha, lora_dropout: LoRA rank, scale numerator and dropout.
        lora_targets: module names that get adapters (the attention projections).
        head_hidden: width of the head's hidden layer.
        class_weights: ``median`` (median frequency balancing), ``none``, or [w_bg, w_rodent].
        threshold: probability above which a pixel is rodent at inference.
    """

    pretrained: str | None = "facebook/dinov3-vits16-pretrain-lvd1689m"
    config: dict = field(default_factory=dict)
    input_scale: float = 0.5
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: list(ATTENTION_PROJECTIONS))
    head_hidden: int = 256
    class_weights: str | list[float] = "median"
    threshold: float = 0.5


def param_counts(model: nn.Module) -> dict[str, int]:
    """Parameters by role: ``lora`` (adapters), ``head``, ``other`` trainable ones (none in this
    recipe), ``trainable`` and ``total``."""
    n = dict.fromkeys(("lora", "head", "other", "trainable", "total"), 0)
    for name, p in model.named_parameters():
        n["total"] += p.numel()
        if p.requires_grad:
            n["trainable"] += p.numel()
            role = "lora" if "lora_" in name else "head" if name.startswith("head.") else "other"
            n[role] += p.numel()
    return n


@register("dinov3-lora")
class Dinov3LoraRecipe(SemanticRecipe):
    """DINOv3 ViT + LoRA + MLP head, class-frequency weighted CE (module docstring)."""

    Options = Dinov3LoraOptions

    def __init__(self, model_options: dict | None, augment_options: dict | None, seed: int = 0):
        super().__init__(model_options, augment_options, seed)
        o = self.options
        if not 0 < o.input_scale <= 2:
            raise RodentsegError(f"model.input_scale must be in (0, 2]; got {o.input_scale}")
        if o.lora_r < 1 or not o.lora_targets:
            raise RodentsegError(f"model.lora_r must be >= 1 and lora_targets non-empty; got "
                                 f"{o.lora_r}, {o.lora_targets}")
        cw = o.class_weights
        if not (cw in ("median", "none") or (isinstance(cw, list) and len(cw) == 2)):
            raise RodentsegError(f"model.class_weights must be median, none or [w_background, "
                                 f"w_rodent]; got {cw!r}")
        self.settings = FinetunedSettings(recipe="dinov3-lora", threshold=self.threshold,
                                          input_scale=float(o.input_scale),
                                          head_hidden=int(o.head_hidden))
        self.class_weights: torch.Tensor | None = None

    def setup(self, train, val) -> None:
        """Load the training frames and compute the class weights from their masks."""
        super().setup(train, val)
        cw = self.options.class_weights
        if cw == "median":
            cw = median_frequency_weights(self.labels, 2)
        self.class_weights = (None if isinstance(cw, str) and cw == "none"
                              else torch.as_tensor(np.asarray(cw, np.float32)))

    def build_model(self) -> nn.Module:
        """:class:`DinoSegNet` whose backbone is wrapped by ``peft``; prints the counts."""
        from peft import LoraConfig, get_peft_model
        from transformers import DINOv3ViTConfig, DINOv3ViTModel

        o = self.options
        if o.pretrained is None:
            backbone = DINOv3ViTModel(DINOv3ViTConfig(**o.config))
        else:
            backbone = load_pretrained(DINOv3ViTModel, o.pretrained, **o.config)
        lora = LoraConfig(r=o.lora_r, lora_alpha=o.lora_alpha, lora_dropout=o.lora_dropout,
                          target_modules=list(o.lora_targets), bias="none")
        try:
            backbone = get_peft_model(backbone, lora)
        except ValueError as e:  # no module of those names
            raise RodentsegError(f"model.lora_targets {o.lora_targets}: {e}") from None
        net = DinoSegNet(backbone, self.settings).train()
        self.param_counts = param_counts(net)
        c = self.param_counts
        print(f"dinov3-lora: {c['trainable']:,} trainable of {c['total']:,} parameters "
              f"(LoRA {c['lora']:,} + head {c['head']:,})")
        return net

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class-weighted cross-entropy at the frames' full resolution."""
        logits = model(batch["image"]).float()
        w = None if self.class_weights is None else self.class_weights.to(logits.device)
        return F.cross_entropy(logits, batch["mask"], weight=w)

    def save(self, model: nn.Module, path: Path) -> None:
        """Merge the adapters into a copy of the backbone and write the plain model."""
        merged = copy.deepcopy(model).cpu()
        merged.backbone = merged.backbone.merge_and_unload()
        save_finetuned(merged, path)

