"""The ``scratch-tiny`` recipe: the embedded default model (``rodentseg-tiny``) from scratch.

``rodentseg train --config configs/scratch-tiny.yaml``. The network is
:class:`~rodentseg.models.segmenter.RodentSegNet` (a small SegFormer on space-to-depth luma with a
half-resolution refinement head), the batches come from copy-paste augmentation of the
labelled frames (:class:`~rodentseg.train.augment.CopyPasteAugment`; frames of many setups and
sizes are brought to one training canvas by :mod:`rodentseg.train.canvas`), the loss is BCE +
soft Dice at full resolution. The run's ``model/`` gets a model card with the measured scores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import SegformerConfig

from rodentseg.errors import RodentsegError
from rodentseg.models.segmenter import (
    Preprocessing,
    RodentSegNet,
    forward_full,
    save_segmenter,
    tiny_config,
)
from rodentseg.train.augment import AugmentConfig, CopyPasteAugment
from rodentseg.train.canvas import training_groups
from rodentseg.train.card import write_model_card
from rodentseg.train.data import LabelledFrames
from rodentseg.train.recipe import register
from rodentseg.types import BODY_WIDTH_PX


def thin_parts(target: torch.Tensor, width_px: int = BODY_WIDTH_PX) -> torch.Tensor:
    """Mask pixels that a morphological opening with a ``width_px`` (odd) square removes.

    With 7 px these are the tail (its silver label is at most 3 px either side of the ridge) and
    ear and nose tips; the same opening separates body from tail in ``openfield-m4s1``'s masks
    (see that folder's README), and :func:`rodentseg.types.body_centroid` leaves out the same
    parts, so the pixels the loss weighs extra are those the body centroid ignores.

    Shape:
        target: (B, 1, H, W) float in {0, 1}; returns the same shape and dtype, in {0, 1}.
    """
    r = width_px // 2
    eroded = -F.max_pool2d(-target, 2 * r + 1, 1, r)
    return target - F.max_pool2d(eroded, 2 * r + 1, 1, r)


def seg_loss(logits: torch.Tensor, target: torch.Tensor, thin_weight: float = 0.0) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice (Milletari et al. 2016), both over full resolution.

    Args:
        thin_weight: extra BCE weight of the :func:`thin_parts` of the target (a pixel there
            weighs ``1 + thin_weight``). The tail is about a tenth of a mouse's pixels, faint
            and thin; unweighted, the default model missed 72% of the tail pixels of the
            validation frames, which was most of its error.

    Shape:
        logits, target: (B, 1, H, W); target in {0, 1}.
    """
    weight = 1 + thin_weight * thin_parts(target) if thin_weight else None
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
    p = torch.sigmoid(logits)
    inter = (p * target).sum((1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + target.sum((1, 2, 3)) + 1)
    return bce + dice.mean()


def augment_config(options: dict) -> AugmentConfig:
    """:class:`AugmentConfig` from the YAML ``augment:`` mapping (lists become tuples).

    Raises:
        RodentsegError: an unknown key (the message lists the known ones), or a bad value.
    """
    known = {f.name for f in fields(AugmentConfig)}
    if set(options) - known:
        raise RodentsegError(f"unknown augment key(s) {sorted(set(options) - known)}; "
                             f"expected {sorted(known)}")
    return AugmentConfig(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in options.items()})


def luma_frames(items) -> LabelledFrames:
    """Dataset items as luma frames (PIL mode ``L``, ITU-R BT.601) and binary rodent masks."""
    frames = np.stack([np.asarray(Image.fromarray(it["image"]).convert("L")) for it in items])
    masks = np.stack([it["mask"] > 0 for it in items])
    return LabelledFrames([it["name"] for it in items], frames, masks)


@register("scratch-tiny")
class ScratchRecipe:
    """The default model's recipe (see the module docstring).

    Args:
        model_options: overrides of :func:`~rodentseg.models.segmenter.tiny_config` (SegFormer
            config keys such as ``hidden_sizes``, ``depths``, ``decoder_hidden_size``, and the
            refinement head's ``refine_fold``, ``refine_channels``, ``refine_hidden``; see
            :class:`~rodentseg.models.segmenter.Preprocessing`), and ``thin_weight`` (see
            :func:`seg_loss`; default 0).
        augment_options: :class:`AugmentConfig` keys.
        seed: seed of the augmentation's generator.

    Raises:
        RodentsegError: an unknown model or augment key.
    """

    name = "scratch-tiny"

    def __init__(self, model_options: dict, augment_options: dict, seed: int = 0):
        model_options = dict(model_options)
        self.thin_weight = float(model_options.pop("thin_weight", 0.0))
        head = {"refine_fold", "refine_channels", "refine_hidden"}
        bad = [k for k in model_options if k not in head and not hasattr(SegformerConfig(), k)]
        if bad:
            raise RodentsegError(f"unknown model key(s) {bad} for scratch-tiny; expected "
                                 f"thin_weight, {', '.join(sorted(head))} or SegformerConfig keys "
                                 "(hidden_sizes, depths, ...)")
        self.model_options = model_options
        self.augment_options = dict(augment_options)
        self.augment = augment_config(augment_options)
        self.seed = seed
        self.net_config = tiny_config(**self.model_options)
        self.pre = Preprocessing.from_dict(self.net_config.rodentseg)
        self.threshold = self.pre.threshold

    def setup(self, train, val) -> None:
        """Read the training frames once as luma, one group per setup and frame size at the
        scale it trains at (:func:`rodentseg.train.canvas.training_groups`)."""
        self.train_data = training_groups(train, self.augment.animal_length, self.augment.canvas)
        self.aug = CopyPasteAugment(self.train_data, self.augment, seed=self.seed)

    def build_model(self) -> RodentSegNet:
        return RodentSegNet(self.net_config)

    def batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """(B, 1, H, W) luma ``image`` in [0, 1] and binary ``label``, endlessly (H x W: the
        training canvas, :mod:`rodentseg.train.canvas`)."""
        while True:
            img, lab = self.aug(batch_size)
            yield {"image": img, "label": lab}

    def finish(self, augment_options: dict) -> Callable[[], None]:
        """Check the finish phase's changed ``augment`` keys (:class:`RodentsegError` names an
        unknown one) and return the function that switches later batches to them."""
        cfg = augment_config(self.augment_options | augment_options)
        fixed = [k for k in ("canvas", "animal_length")
                 if getattr(cfg, k) != getattr(self.augment, k)]
        if fixed:
            raise RodentsegError(f"augment {fixed} cannot change in a finish phase (the frames "
                                 "are prepared once per run); set them in the run's augment")

        def switch() -> None:
            self.aug.cfg = cfg

        return switch

    def loss(self, model, batch) -> torch.Tensor:
        return seg_loss(model(batch["image"]), batch["label"], self.thin_weight)

    def predict(self, model, item) -> np.ndarray:
        luma = np.array(Image.fromarray(item["image"]).convert("L"))
        x = torch.from_numpy(luma).float()[None, None].to(next(model.parameters()).device) / 255
        return torch.sigmoid(forward_full(model, x, self.pre))[0, 0].float().cpu().numpy()

    def save(self, model, path: Path) -> None:
        save_segmenter(model, path)

    def state_dict(self) -> dict:
        return {"generator": self.aug.g.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.aug.g.set_state(state["generator"])

    def write_card(self, model_dir: Path, cfg, scores: dict) -> None:
        write_model_card(model_dir, cfg, scores, self.net_config, scores["hardware"],
                         augment=self.augment, thin_weight=self.thin_weight)
