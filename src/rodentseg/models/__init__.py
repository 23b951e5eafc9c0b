"""Model registry: one name per shipped model, and one loader for names and directories."""

from __future__ import annotations

from pathlib import Path

import torch

from rodentseg import DEFAULT_MODEL
from rodentseg.errors import RodentsegError
from rodentseg.models.segmenter import Segmenter, load_segmenter

WEIGHTS_DIR = Path(__file__).parent / "weights"

#: Registry name -> directory with ``config.json`` + ``model.safetensors`` + ``MODEL_CARD.md``.
MODEL_REGISTRY: dict[str, Path] = {DEFAULT_MODEL: WEIGHTS_DIR / DEFAULT_MODEL}


def resolve_device(device: str) -> torch.device:
    """Map ``auto|cpu|cuda[:N]`` to a torch device.

    Raises:
        RodentsegError: an unknown device string, or ``cuda`` asked for where none is present.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RodentsegError(
                f"--device {device} asked for a CUDA GPU, but torch {torch.__version__} sees "
                "none; use --device cpu or auto"
            )
        return torch.device(device)
    raise RodentsegError(f"--device must be auto, cpu or cuda[:N]; got {device!r}")


def load_model(name_or_path: str = DEFAULT_MODEL, device: str = "auto") -> Segmenter:
    """Load a segmenter by registry name or from a local directory.

    Args:
        name_or_path: a name in :data:`MODEL_REGISTRY` (e.g. ``"rodentseg-tiny"``), a
            directory with ``config.json`` and ``model.safetensors``, or a training run
            directory ``runs/<name>`` (its ``model/`` folder is loaded). A directory whose
            ``config.json`` has a ``rodentseg.recipe`` entry (``segformer``, ``dinov3-lora``,
            ``sam2-decoder``) loads as :mod:`rodentseg.models.finetuned` describes.
        device: ``auto`` (CUDA if present), ``cpu`` or ``cuda[:N]``.

    Returns:
        A segmenter: ``name``, ``path``, ``weights_sha256``, ``pre.threshold``, ``device`` and
        ``predict(frames (B, H, W[, 3]) uint8) -> (B, H, W) float32`` probabilities.

    Raises:
        RodentsegError: the name is neither registered nor an existing directory (the message
            lists the known names), or the directory's weights fail strict loading.
    """
    dev = resolve_device(device)
    if name_or_path in MODEL_REGISTRY:
        return load_segmenter(MODEL_REGISTRY[name_or_path], name_or_path, dev)
    path = Path(name_or_path)
    if not (path / "config.json").is_file() and (path / "model" / "config.json").is_file():
        path = path / "model"  # a training run directory, runs/<name>/
    if path.is_dir():
        from rodentseg.models import finetuned  # its transformers classes load on demand

        if finetuned.model_dir(path) is not None:
            return finetuned.load_finetuned(path, str(path), dev)
        return load_segmenter(path, str(path), dev)
    raise RodentsegError(
        f"unknown model {name_or_path!r}: expected one of {sorted(MODEL_REGISTRY)} "
        "or a directory containing config.json and model.safetensors"
    )


__all__ = ["DEFAULT_MODEL", "MODEL_REGISTRY", "Segmenter", "load_model", "resolve_device"]
