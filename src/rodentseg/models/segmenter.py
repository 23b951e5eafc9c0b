"""The rodent segmenter: a SegFormer that reads full-resolution frames at half-resolution cost.

Architecture (``rodentseg-tiny``): the frame's luma (B, 1, H, W) is space-to-depth folded by 2
(``pixel_unshuffle``) into (B, 4, H/2, W/2), so no pixel is dropped, and fed to a
``transformers`` ``SegformerForSemanticSegmentation`` (MiT encoder + all-MLP decoder, Xie et al.
2021, "SegFormer: Simple and Efficient Design for Semantic Segmentation with Transformers").
The decoder's logits come out at 1/8 of the frame; of its ``upscale**2 + 1`` channels, the first
``upscale**2`` are depth-to-space unfolded (``pixel_shuffle``, Shi et al. 2016) into full
resolution detail and the last is a coarse logit upsampled bilinearly; their sum is the
full-resolution rodent logit. Preprocessing settings live in the model's ``config.json`` under
the key ``rodentseg`` so that weights and preprocessing always travel together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import SegformerConfig, SegformerForSemanticSegmentation
from transformers.utils import logging as hf_logging

from rodentseg.errors import RodentsegError

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Preprocessing:
    """How frames become model input and logits become masks (stored with the weights).

    Attributes:
        space_to_depth: fold factor applied to the full-resolution luma before the encoder.
        upscale: the decoder output stride relative to the frame (4 * space_to_depth).
        mean, std: normalisation of luma in [0, 1]: ``(luma - mean) / std``.
        threshold: probability above which a pixel is rodent.
    """

    space_to_depth: int = 2
    upscale: int = 8
    mean: float = 0.5
    std: float = 0.25
    threshold: float = 0.5

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise RodentsegError(
                f"unknown key(s) {sorted(unknown)} in the model's 'rodentseg' config block; "
                f"expected only {sorted(known)}"
            )
        return cls(**d)


def tiny_config(**overrides) -> SegformerConfig:
    """The ``rodentseg-tiny`` SegFormer config (about 0.5 M parameters)."""
    pre = Preprocessing()
    kw = dict(
        num_channels=pre.space_to_depth**2,
        num_labels=pre.upscale**2 + 1,
        hidden_sizes=[16, 32, 64, 128],
        depths=[1, 1, 2, 2],
        num_attention_heads=[1, 1, 2, 4],
        sr_ratios=[8, 4, 2, 1],
        decoder_hidden_size=64,
        drop_path_rate=0.05,
        semantic_loss_ignore_index=255,
    )
    kw.update(overrides)
    cfg = SegformerConfig(**kw)
    cfg.rodentseg = asdict(pre)
    return cfg


def to_luma(frames: torch.Tensor) -> torch.Tensor:
    """Convert uint8 frames to float luma.

    Args:
        frames: (B, H, W, 3) or (B, H, W) uint8, RGB in [0, 255].

    Returns:
        (B, 1, H, W) float32 in [0, 1]; ITU-R BT.601 weights for colour input.
    """
    x = frames.float() / 255.0
    if x.ndim == 4:
        x = x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114
    return x[:, None]


def forward_full(net: SegformerForSemanticSegmentation, luma: torch.Tensor,
                 pre: Preprocessing) -> torch.Tensor:
    """Full-resolution rodent logits for a batch of luma frames (training and inference path).

    Args:
        net: the SegFormer with ``num_channels = space_to_depth**2`` and
            ``num_labels = upscale**2 + 1``.
        luma: (B, 1, H, W) float in [0, 1]; any H, W (padded internally to a multiple of
            ``upscale``, and to at least ``upscale * sr_ratios[0]`` = 64 pixels).
        pre: the model's preprocessing settings.

    Returns:
        (B, 1, H, W) float logits, same frame coordinates as ``luma``.
    """
    b, _, h, w = luma.shape
    s = pre.upscale
    min_side = s * net.config.sr_ratios[0]  # the first attention's reduction conv needs this
    ph, pw = max((-h) % s, min_side - h), max((-w) % s, min_side - w)
    x = (luma - pre.mean) / pre.std
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    x = F.pixel_unshuffle(x, pre.space_to_depth)
    out = net(pixel_values=x).logits  # (B, s*s + 1, (h+ph)/s, (w+pw)/s)
    fine = F.pixel_shuffle(out[:, : s * s], s)
    coarse = F.interpolate(out[:, s * s :], scale_factor=s, mode="bilinear", align_corners=False)
    return (fine + coarse)[:, :, :h, :w]


class Segmenter:
    """A loaded rodent segmentation model, ready for inference.

    Use :func:`rodentseg.models.load_model` to get one. ``predict`` takes uint8 frames and
    returns per-pixel rodent probabilities at the frame's own resolution.

    Attributes:
        name: registry name, or the directory it was loaded from.
        path: directory holding ``config.json`` and ``model.safetensors``.
        weights_sha256: sha256 of ``model.safetensors`` (recorded in each run's ``run.json``).
        pre: preprocessing settings read from the model's config.
        device: torch device the model runs on.
    """

    def __init__(self, net: SegformerForSemanticSegmentation, pre: Preprocessing, name: str,
                 path: Path, device: torch.device):
        self.net = net.eval().to(device)
        self.pre = pre
        self.name = name
        self.path = path
        self.device = device
        self.weights_sha256 = sha256_file(path / WEIGHTS_FILE)

    @torch.inference_mode()
    def predict(self, frames: np.ndarray) -> np.ndarray:
        """Rodent probability per pixel.

        Args:
            frames: (B, H, W, 3) RGB or (B, H, W) grey, uint8 in [0, 255].

        Returns:
            (B, H, W) float32 probabilities in [0, 1], in the frames' pixel grid.
        """
        if frames.dtype != np.uint8 or frames.ndim not in (3, 4):
            raise ValueError(f"expected uint8 frames (B,H,W[,3]), got {frames.dtype} {frames.shape}")
        x = to_luma(torch.from_numpy(frames).to(self.device))
        logits = forward_full(self.net, x, self.pre)
        return torch.sigmoid(logits)[:, 0].float().cpu().numpy()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (constant memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def load_segmenter(path: Path, name: str, device: torch.device) -> Segmenter:
    """Load a segmenter directory strictly: every weight must be present and used.

    Raises:
        RodentsegError: ``config.json`` or ``model.safetensors`` is missing or unreadable, the
            config is not a rodentseg segmenter, or the weights do not match the config
            (missing, unexpected or mis-shaped tensors).
    """
    for fname in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / fname).is_file():
            raise RodentsegError(
                f"model directory {path} has no {fname}; expected {CONFIG_FILE} and "
                f"{WEIGHTS_FILE} (as written by save_pretrained), found "
                f"{sorted(p.name for p in path.iterdir()) or 'nothing'}"
            )
    try:
        cfg_dict = json.loads((path / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RodentsegError(f"{path / CONFIG_FILE} is not valid JSON: {e}") from None
    if "rodentseg" not in cfg_dict:
        raise RodentsegError(
            f"{path / CONFIG_FILE} has no 'rodentseg' block: this is not a rodentseg segmenter "
            "(expected a directory written by `rodentseg` training)"
        )
    pre = Preprocessing.from_dict(cfg_dict["rodentseg"])
    hf_logging.disable_progress_bar()
    try:
        net, info = SegformerForSemanticSegmentation.from_pretrained(
            path, output_loading_info=True
        )
    except Exception as e:  # safetensors header errors, shape errors, ...
        raise RodentsegError(f"could not load weights from {path / WEIGHTS_FILE}: {e}") from None
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise RodentsegError(
            f"weights in {path / WEIGHTS_FILE} do not match {path / CONFIG_FILE} "
            f"(strict loading): {problems}"
        )
    return Segmenter(net, pre, name, path, device)
