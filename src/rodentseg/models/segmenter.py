"""The rodent segmenter: a SegFormer that reads full-resolution frames at half-resolution cost.

Architecture (``rodentseg-tiny``, :class:`RodentSegNet`): the frame's luma (B, 1, H, W) is
space-to-depth folded by 2 (``pixel_unshuffle``) into (B, 4, H/2, W/2), so no pixel is dropped,
and fed to a ``transformers`` ``SegformerForSemanticSegmentation`` (MiT encoder + all-MLP
decoder; Xie et al. 2021, "SegFormer: Simple and Efficient Design for Semantic Segmentation with
Transformers"). The decoder's output at 1/8 of the frame has ``(8 / f)^2 * refine_channels + 1``
channels: the last is a coarse logit, upsampled bilinearly; the others are unfolded
depth-to-space (``pixel_shuffle``, Shi et al. 2016) to 1/f of the frame (``refine_fold`` f = 2
or 4), concatenated with the input pixels folded by f, refined by two 3x3 convolutions and
unfolded again to full resolution, where they are added to the coarse logit. The refinement
sees every input pixel, which is what recovers thin tails and exact body outlines. Settings live
in the model's ``config.json`` under the key ``rodentseg``, so weights, preprocessing and head
shape always travel together.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import SegformerConfig, SegformerForSemanticSegmentation

from rodentseg.errors import RodentsegError
from rodentseg.io.video import sha256_file
from rodentseg.models.integrity import check_finite_output, check_finite_state, verify_sha256sums

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
# Frames per full-resolution step in Segmenter.predict (colour to luma, fine head, upsampling).
# Batch 8 at 640x480: peak RSS 213 -> 185 MB above the loaded model, same speed.
HEAD_CHUNK = 2


@dataclass(frozen=True)
class Preprocessing:
    """How frames become model input and logits become masks, and the head's shape (stored
    with the weights in ``config.json["rodentseg"]``).

    Attributes:
        space_to_depth: fold factor applied to the full-resolution luma before the encoder.
        upscale: the decoder output stride relative to the frame (4 * space_to_depth).
        mean, std: normalisation of luma in [0, 1]: ``(luma - mean) / std``.
        threshold: probability above which a pixel is rodent.
        refine_fold: the refinement works at 1/``refine_fold`` of the frame, on the input
            pixels folded space-to-depth by ``refine_fold`` (2: half resolution, 4 channels;
            4: quarter resolution, 16 channels, which CPUs run faster and which sees 4x the
            area per 3x3 kernel).
        refine_channels: decoder channels unfolded to the refinement's resolution.
        refine_hidden: width of the refinement's hidden 3x3 convolution.
    """

    space_to_depth: int = 2
    upscale: int = 8
    mean: float = 0.5
    std: float = 0.25
    threshold: float = 0.5
    refine_channels: int = 4
    refine_hidden: int = 16
    refine_fold: int = 2

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
    """The ``rodentseg-tiny`` SegFormer config (about 0.75 M parameters with its head);
    ``refine_fold``, ``refine_channels`` and ``refine_hidden`` set the head
    (:class:`Preprocessing`), other keys are ``SegformerConfig`` keys."""
    pre = Preprocessing(**{k: overrides.pop(k) for k in ("refine_fold", "refine_channels",
                                                        "refine_hidden") if k in overrides})
    kw = dict(
        num_channels=pre.space_to_depth**2,
        num_labels=(pre.upscale // pre.refine_fold) ** 2 * pre.refine_channels + 1,
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


class RodentSegNet(nn.Module):
    """SegFormer plus the half-resolution refinement head (see the module docstring).

    Args:
        config: a ``SegformerConfig`` with a ``rodentseg`` block (:func:`tiny_config`).
    """

    def __init__(self, config: SegformerConfig):
        super().__init__()
        self.config = config
        self.pre = Preprocessing.from_dict(config.rodentseg)
        p = self.pre
        expected = (p.upscale // p.refine_fold) ** 2 * p.refine_channels + 1
        if config.num_labels != expected or config.num_channels != p.space_to_depth**2:
            raise RodentsegError(
                f"config has num_channels={config.num_channels}, num_labels={config.num_labels};"
                f" the rodentseg block needs {p.space_to_depth ** 2} and {expected}")
        self.segformer = SegformerForSemanticSegmentation(config)
        if p.upscale % p.refine_fold or p.refine_fold % p.space_to_depth:
            raise RodentsegError(
                f"refine_fold={p.refine_fold} must divide upscale={p.upscale} and be a multiple "
                f"of space_to_depth={p.space_to_depth}")
        fold = p.refine_fold**2
        self.refine = nn.Sequential(
            nn.Conv2d(p.refine_channels + fold, p.refine_hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(p.refine_hidden, fold, 3, padding=1),
        )

    def forward(self, luma: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) luma in [0, 1] -> (B, 1, H, W) rodent logits (:func:`forward_full`)."""
        return forward_full(self, luma, self.pre)


def save_segmenter(net: RodentSegNet, path: str | Path) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (loadable by ``--model path``)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    net.config.to_json_file(path / CONFIG_FILE)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path / WEIGHTS_FILE,
              metadata={"format": "pt"})
    return path


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


def check_frames(frames: np.ndarray) -> None:
    """Check a batch of frames for ``predict`` (torch and onnxruntime segmenters).

    Raises:
        ValueError: not uint8 (B, H, W, 3) or (B, H, W); the message gives what was received.
    """
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4):
        raise ValueError(f"expected uint8 frames (B,H,W[,3]), got {frames.dtype} {frames.shape}")


def forward_full(net: RodentSegNet, luma: torch.Tensor, pre: Preprocessing,
                 head_chunk: int | None = None) -> torch.Tensor:
    """Full-resolution rodent logits for a batch of luma frames (training and inference path).

    Args:
        net: the network.
        luma: (B, 1, H, W) float in [0, 1]; any H, W (padded internally to a multiple of
            ``upscale``, and to at least ``upscale * sr_ratios[0]`` = 64 pixels).
        pre: the model's preprocessing settings.
        head_chunk: run the full-resolution part (the fine head and the upsampling) on this
            many frames at a time; None = all at once. Same result, smaller activations at
            inference (:data:`HEAD_CHUNK`).

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
    x = F.pixel_unshuffle(x, pre.space_to_depth)  # (B, 4, H/2, W/2)
    out = net.segformer(pixel_values=x).logits  # (B, (s / f)^2 * C + 1, H/s, W/s)
    step = head_chunk or b
    return torch.cat([_head(net, out[i:i + step], x[i:i + step], pre)[:, :, :h, :w]
                      for i in range(0, b, step)])


def _head(net: RodentSegNet, out: torch.Tensor, x: torch.Tensor, pre: Preprocessing):
    """Fine head plus upsampled coarse logit: (B, 1, H', W') logits of the padded frames."""
    s, f = pre.upscale, pre.refine_fold
    ctx = F.pixel_shuffle(out[:, :-1], s // f)  # (B, C, H/f, W/f)
    pix = x if f == pre.space_to_depth else F.pixel_unshuffle(x, f // pre.space_to_depth)
    fine = F.pixel_shuffle(net.refine(torch.cat([ctx, pix], 1)), f)
    coarse = F.interpolate(out[:, -1:], scale_factor=s, mode="bilinear", align_corners=False)
    return fine + coarse


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

    def __init__(self, net: RodentSegNet, pre: Preprocessing, name: str,
                 path: Path, device: torch.device, weights_sha256: str | None = None):
        self.net = net.eval().to(device)
        self.pre = pre
        self.name = name
        self.path = path
        self.device = device
        self.weights_sha256 = weights_sha256 or sha256_file(path / WEIGHTS_FILE)

    @torch.inference_mode()
    def predict(self, frames: np.ndarray) -> np.ndarray:
        """Rodent probability per pixel.

        Args:
            frames: (B, H, W, 3) RGB or (B, H, W) grey, uint8 in [0, 255].

        Returns:
            (B, H, W) float32 probabilities in [0, 1], in the frames' pixel grid.

        Raises:
            RodentsegError: the model returned a non-finite value (``check_finite_output``).
        """
        check_frames(frames)
        x = torch.cat([to_luma(torch.from_numpy(frames[i:i + HEAD_CHUNK]).to(self.device))
                       for i in range(0, len(frames), HEAD_CHUNK)])
        logits = forward_full(self.net, x, self.pre, head_chunk=HEAD_CHUNK)
        return check_finite_output(logits.sigmoid_()[:, 0].float().cpu().numpy(), self.name)


def load_segmenter(path: Path, name: str, device: torch.device) -> Segmenter:
    """Load a segmenter directory strictly: every weight must be present and used.

    Raises:
        RodentsegError: ``config.json`` or ``model.safetensors`` is missing or unreadable, the
            weights differ from the sha256 recorded in ``SHA256SUMS`` beside them (every shipped
            model has one), hold NaN or inf, the config is not a rodentseg segmenter, or the
            weights do not match the config (missing, unexpected or mis-shaped tensors).
    """
    for fname in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / fname).is_file():
            raise RodentsegError(
                f"model directory {path} has no {fname}; expected {CONFIG_FILE} and "
                f"{WEIGHTS_FILE} (as written by `rodentseg train`), found "
                f"{sorted(p.name for p in path.iterdir()) or 'nothing'}"
            )
    digest = verify_sha256sums(path, [WEIGHTS_FILE]).get(WEIGHTS_FILE)  # None: no SHA256SUMS
    try:
        cfg_dict = json.loads((path / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RodentsegError(f"{path / CONFIG_FILE} is not valid JSON: {e}") from None
    if "rodentseg" not in cfg_dict:
        raise RodentsegError(
            f"{path / CONFIG_FILE} has no 'rodentseg' block: this is not a rodentseg segmenter "
            "(expected a directory written by `rodentseg` training)"
        )
    try:
        net = RodentSegNet(SegformerConfig.from_dict(cfg_dict))
    except (TypeError, ValueError) as e:
        raise RodentsegError(f"{path / CONFIG_FILE} is not a valid segmenter config: {e}") from None
    try:
        state = load_file(path / WEIGHTS_FILE)
    except Exception as e:  # safetensors raises its own error types for damaged files
        raise RodentsegError(f"could not read {path / WEIGHTS_FILE}: {e}") from None
    check_finite_state(state, path / WEIGHTS_FILE)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise strict_load_error(e, path, cfg_dict, SegformerConfig) from None
    return Segmenter(net, net.pre, name, path, device, digest)


def strict_load_error(error: RuntimeError, path: Path, cfg_dict: dict,
                      config_cls) -> RodentsegError:
    """One line for a failed ``load_state_dict(strict=True)``: how many tensors are missing,
    unexpected or mis-shaped, the first of them, and the config keys that ``config_cls`` does
    not know (a misspelt key, such as ``hiden_sizes``, silently builds a different network:
    the usual cause), with the known key each one is closest to.

    Args:
        error: what ``load_state_dict`` raised.
        path: the model folder.
        cfg_dict: its ``config.json`` as read.
        config_cls: the ``transformers`` config class the network was built from.
    """
    lines = [ln.strip() for ln in str(error).splitlines()[1:] if ln.strip()]
    known = set(config_cls().to_dict()) | {"rodentseg"}
    unknown = sorted(k for k in cfg_dict if k not in known)
    hint = ""
    if unknown:
        near = {k: difflib.get_close_matches(k, known, n=1) for k in unknown}
        hint = ("; " + path.joinpath(CONFIG_FILE).as_posix() + " has key(s) "
                + ", ".join(f"{k!r}" + (f" (did you mean {m[0]!r}?)" if m else "")
                            for k, m in near.items())
                + f" that {config_cls.__name__} does not know, so their defaults were used")
    first = lines[0][:300] if lines else str(error)[:300]
    return RodentsegError(
        f"weights in {path / WEIGHTS_FILE} do not match {path / CONFIG_FILE} (strict loading: "
        f"{len(lines)} problem(s), first: {first}){hint}")
