"""What a training recipe provides to the shared loop (:mod:`rodentseg.train.loop`).

A recipe (``configs/<recipe>.yaml`` -> ``recipe: <name>``) owns its model, its batches, its loss,
its inference and its saved format; the loop owns everything else: Accelerate (devices, mixed
precision, gradient accumulation), optimiser and schedule, checkpoints and resume, the progress
bar, evaluation with :mod:`rodentseg.evaluate`, ``metrics.csv``, the curve and the inference
sample. Recipes register themselves in :data:`RECIPES` by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn


class Recipe(Protocol):
    """One way to train a rodent segmenter.

    Lifecycle, as the loop calls it: ``__init__(model_options, augment_options, seed)`` ->
    ``setup(train, val)`` -> ``build_model()`` -> (``batches()`` -> ``loss(model, batch)``)* with
    ``predict`` for evaluation -> ``save(model, dir)``. The options are the YAML's ``model:`` and
    ``augment:`` mappings; an unknown key raises :class:`rodentseg.errors.RodentsegError` naming
    the known ones.

    Data contract: ``train`` and ``val`` are sequences of items ``{"image": (H, W, 3) uint8 RGB,
    "mask": (H, W) int32 instance ids (0 = background), "name": str, "video": str}`` (see
    :mod:`rodentseg.train.datasets`). Binary segmentation: rodent = ``mask > 0``.
    """

    name: str

    def setup(self, train, val) -> None:
        """Keep the datasets; precompute what the recipe caches (e.g. SAM 2 image embeddings)."""

    def build_model(self) -> nn.Module:
        """The model; parameters that must not train have ``requires_grad=False``."""

    def batches(self, batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
        """Endless training batches of CPU tensors (the loop moves them to the device)."""

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Scalar training loss for one batch, computed at the frames' full resolution."""

    def predict(self, model: nn.Module, item: dict[str, Any]) -> np.ndarray:
        """Rodent probability for one dataset item: (H, W) float32 in [0, 1], full resolution.

        Prompted models (SAM 2) take their prompt from the item's mask (documented per recipe).
        """

    def save(self, model: nn.Module, path: Path) -> None:
        """Write a directory that ``rodentseg segment --model`` loads (config.json + safetensors)."""

    def state_dict(self) -> dict:
        """Random state of the batch sampler, restored on resume."""

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""

    # Optional: recipes that support a finish phase (``finish:`` in the run config) define
    # ``finish(augment_options: dict) -> Callable[[], None]``, which checks the changed
    # ``augment`` keys when the run starts and returns the switch the loop calls when the
    # phase begins (:class:`rodentseg.train.scratch.ScratchRecipe`).


#: recipe name -> factory ``(model_options: dict, augment_options: dict, seed: int) -> Recipe``; filled by :func:`register`.
RECIPES: dict[str, Any] = {}


def register(name: str):
    """Class decorator: ``@register("segformer")`` adds the recipe to :data:`RECIPES`."""

    def deco(cls):
        RECIPES[name] = cls
        cls.name = name
        return cls

    return deco
