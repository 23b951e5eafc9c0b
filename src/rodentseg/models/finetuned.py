"""Models trained by the fine-tuning recipes, and the segmenters that run their saved runs.

A run's model directory (``runs/<name>/model/``, written by a recipe's ``save``) holds
``config.json`` (the transformers config of the wrapped model plus a ``rodentseg`` block, see
:class:`FinetunedSettings`) and ``model.safetensors`` (the state dict of one of the modules
below, loaded strictly). The ``rodentseg.recipe`` entry says which module and segmenter:

- ``segformer``: :class:`SegformerSegNet` (``SegformerForSemanticSegmentation``, Xie et al.
  2021) run by :class:`SemanticSegmenter`.
- ``dinov3-lora``: :class:`DinoSegNet` (``DINOv3ViTModel``, Simeoni et al. 2025, with the LoRA
  adapters merged into its weights, plus an MLP head on the patch tokens), run by
  :class:`SemanticSegmenter`; inference needs no ``peft``.
- ``sam2-decoder``: :class:`Sam2PromptNet` (``Sam2Model``, Ravi et al. 2024) run by
  :class:`Sam2BoxSegmenter`: boxes from a detector segmenter, masks from SAM 2.

Every module takes frames as (B, 3, H, W) float RGB in [0, 1] and does its own resizing and
ImageNet normalisation with torch ops (the transformers image processors for SAM 2 and DINOv3
need torchvision, see NOTES-transformers.md); semantic logits come back at the frames' size.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    DINOv3ViTConfig,
    DINOv3ViTModel,
    Sam2Config,
    Sam2Model,
    SegformerConfig,
    SegformerForSemanticSegmentation,
)

from rodentseg.annotate.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessor
from rodentseg.errors import RodentsegError
from rodentseg.io.video import sha256_file
from rodentseg.models.integrity import check_finite_output, check_finite_state, verify_sha256sums
from rodentseg.models.segmenter import strict_load_error

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


@dataclass(frozen=True)
class FinetunedSettings:
    """Preprocessing and head settings stored in ``config.json["rodentseg"]``.

    Attributes:
        recipe: ``segformer``, ``dinov3-lora`` or ``sam2-decoder``.
        threshold: probability above which a pixel is rodent (read by ``rodentseg segment``).
        mean, std: per-channel normalisation of RGB in [0, 1] (ImageNet's).
        size: segformer: model input (height, width) in pixels, any frame is resized to it.
        input_scale: dinov3-lora: model input side / frame side (0.5 = half resolution), then
            rounded to a multiple of the patch size.
        num_classes, head_hidden: dinov3-lora: classes of the head (0 = background) and the
            width of its hidden layer.
        detector: sam2-decoder: the segmenter (registry name or directory) whose animals' boxes
            prompt SAM 2 at inference.
    """

    recipe: str
    threshold: float = 0.5
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    size: tuple[int, int] = (512, 512)
    input_scale: float = 0.5
    num_classes: int = 2
    head_hidden: int = 256
    detector: str = "rodentseg-tiny"

    @classmethod
    def from_dict(cls, d: dict) -> FinetunedSettings:
        """Validate a ``rodentseg`` block (unknown keys raise :class:`RodentsegError`)."""
        known = {f.name for f in fields(cls)}
        if set(d) - known or "recipe" not in d:
            raise RodentsegError(f"the 'rodentseg' block needs 'recipe' and only keys of "
                                 f"{sorted(known)}; got {sorted(d)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def _normalise(x: torch.Tensor, s: FinetunedSettings) -> torch.Tensor:
    mean = torch.tensor(s.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(s.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


class SegformerSegNet(nn.Module):
    """SegFormer at a fixed input size, logits back at the frames' size.

    As ``SegformerImageProcessor`` does: resize to ``settings.size`` (bilinear, antialiased),
    ImageNet normalisation; the 1/4-resolution logits are resized bilinearly to (H, W).

    Args:
        segformer: a ``SegformerForSemanticSegmentation`` with ``num_labels`` classes.
        settings: ``recipe="segformer"`` settings (``size``).
    """

    def __init__(self, segformer: SegformerForSemanticSegmentation, settings: FinetunedSettings):
        super().__init__()
        self.segformer, self.settings, self.config = segformer, settings, segformer.config

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float RGB in [0, 1] -> (B, num_labels, H, W) float logits."""
        x = _normalise(_resize(images, self.settings.size), self.settings)
        logits = self.segformer(pixel_values=x).logits
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


class DinoSegNet(nn.Module):
    """DINOv3 ViT backbone + MLP head on its patch tokens, logits back at the frames' size.

    The frame is resized to ``input_scale`` of its size, rounded to whole patches (at least
    one), normalised; the CLS and register tokens are dropped and the head (Linear, GELU,
    Linear) maps each patch token to ``num_classes`` logits on the patch grid, which are
    upsampled bilinearly to (H, W).

    Args:
        backbone: a ``DINOv3ViTModel`` (or the same wrapped by ``peft`` for training).
        settings: ``recipe="dinov3-lora"`` settings (``input_scale``, ``num_classes``,
            ``head_hidden``).
    """

    def __init__(self, backbone: nn.Module, settings: FinetunedSettings):
        super().__init__()
        cfg = backbone.config
        self.backbone, self.settings, self.config = backbone, settings, cfg
        p = cfg.patch_size
        self.patch = int(p[0] if isinstance(p, (list, tuple)) else p)
        self.skip = 1 + cfg.num_register_tokens
        self.head = nn.Sequential(nn.Linear(cfg.hidden_size, settings.head_hidden), nn.GELU(),
                                  nn.Linear(settings.head_hidden, settings.num_classes))

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (rows, cols) the backbone sees for an (height, width) frame."""
        s, p = self.settings.input_scale, self.patch
        return max(1, round(height * s / p)), max(1, round(width * s / p))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float RGB in [0, 1] -> (B, num_classes, H, W) float logits."""
        b, _, h, w = images.shape
        gh, gw = self.grid(h, w)
        x = _normalise(_resize(images, (gh * self.patch, gw * self.patch)), self.settings)
        tokens = self.backbone(pixel_values=x).last_hidden_state[:, self.skip:]
        logits = self.head(tokens).transpose(1, 2).reshape(b, -1, gh, gw)
        return F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)


class Sam2PromptNet(nn.Module):
    """SAM 2's image model split into a frozen :meth:`embed` and a trainable prompt decoder.

    ``Sam2Model.forward`` runs under ``torch.no_grad`` (inference only), so :meth:`forward`
    calls its prompt encoder and mask decoder directly, as that method does.

    Args:
        sam: a transformers ``Sam2Model``.
        settings: ``recipe="sam2-decoder"`` settings.
    """

    def __init__(self, sam: Sam2Model, settings: FinetunedSettings):
        super().__init__()
        self.sam, self.settings, self.config = sam, settings, sam.config
        self.pre = Preprocessor(image_size=int(sam.config.prompt_encoder_config.image_size))

    @torch.no_grad()
    def embed(self, frames: np.ndarray) -> list[torch.Tensor]:
        """Image embeddings of (B, H, W, 3) uint8 RGB frames (``Sam2Model.get_image_embeddings``).

        Returns:
            [(B, C0, S/4, S/4), (B, C1, S/8, S/8), (B, C2, S/16, S/16)] float on the model's
            device (``S`` = input side; C = 32, 64, 256 for SAM 2.1).
        """
        dev = next(self.sam.parameters()).device
        return self.sam.get_image_embeddings(self.pre.pixel_values(frames).to(dev))

    def forward(self, embeddings: list[torch.Tensor], points: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
                multimask_output: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits for P prompts per image.

        Args:
            embeddings: :meth:`embed`'s output for B images.
            points: (B, P, N, 2) float (x, y) in model-input pixels; labels (B, P, N) int,
                1 = object, 0 = background, -1 = padding.
            boxes: (B, P, 4) float xyxy in model-input pixels.
            multimask_output: 3 candidates per prompt instead of 1.

        Returns:
            logits (B, P, M, S/4, S/4) float and predicted IoU (B, P, M) float in [0, 1].
        """
        sam = self.sam
        b = embeddings[-1].shape[0]
        pos = sam.get_image_wide_positional_embeddings().repeat(b, 1, 1, 1)
        sparse, dense = sam.prompt_encoder(input_points=points, input_labels=labels,
                                           input_boxes=boxes, input_masks=None)
        logits, iou, _, _ = sam.mask_decoder(
            image_embeddings=embeddings[-1], image_positional_embeddings=pos,
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=multimask_output, high_resolution_features=embeddings[:-1])
        return logits, iou


def as_rgb_frames(frames: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) RGB or (B, H, W) grey uint8 -> (B, H, W, 3) uint8 RGB.

    Raises:
        RodentsegError: another dtype or shape.
    """
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or (
            frames.ndim == 4 and frames.shape[-1] != 3):
        raise RodentsegError(f"expected uint8 frames (B, H, W, 3) or (B, H, W); got "
                             f"{frames.dtype} {frames.shape}")
    return np.repeat(frames[..., None], 3, -1) if frames.ndim == 3 else frames


@torch.inference_mode()
def semantic_probs(net: nn.Module, frames: np.ndarray) -> np.ndarray:
    """Rodent probability of :class:`SegformerSegNet` / :class:`DinoSegNet` (use eval mode).

    Args:
        net: the module, on any device. frames: (B, H, W, 3) RGB or (B, H, W) grey uint8.

    Returns:
        (B, H, W) float32 in [0, 1]: 1 - softmax probability of class 0 (background).
    """
    x = torch.from_numpy(as_rgb_frames(frames)).to(next(net.parameters()).device)
    probs = torch.softmax(net(x.permute(0, 3, 1, 2).float() / 255).float(), 1)
    return (1 - probs[:, 0]).cpu().numpy()


def sam2_box_probs(net: Sam2PromptNet, embeddings: list[torch.Tensor], boxes: np.ndarray,
                   height: int, width: int) -> np.ndarray:
    """Union rodent probability of one frame from one box prompt per animal.

    Args:
        net: the model; embeddings: :meth:`Sam2PromptNet.embed` of this one frame (B = 1).
        boxes: (K, 4) float xyxy frame pixels (x1, y1 exclusive), one per animal; K = 0 gives
            an all-zero map.
        height, width: frame size in pixels.

    Returns:
        (H, W) float32 in [0, 1]: per pixel, the highest of the K single-mask probabilities.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return np.zeros((height, width), np.float32)
    dev = embeddings[-1].device
    bx = net.pre.boxes(boxes, height, width)[None].to(dev)
    logits, _ = net(embeddings, boxes=bx, multimask_output=False)  # (1, K, 1, h, w)
    full = net.pre.logits_to_frame(logits[0, :, 0], height, width)
    return torch.sigmoid(full).amax(0).float().cpu().numpy()


def save_finetuned(net: nn.Module, path: str | Path) -> Path:
    """Write ``config.json`` (+ ``rodentseg`` block) and ``model.safetensors`` of a module above."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = net.config.to_dict()
    cfg["rodentseg"] = asdict(net.settings)
    (path / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True))
    save_file({k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()},
              path / WEIGHTS_FILE, metadata={"format": "pt"})
    return path


_BUILDERS = {  # recipe -> (config class, module from (config, settings))
    "segformer": (SegformerConfig,
                  lambda c, s: SegformerSegNet(SegformerForSemanticSegmentation(c), s)),
    "dinov3-lora": (DINOv3ViTConfig, lambda c, s: DinoSegNet(DINOv3ViTModel(c), s)),
    "sam2-decoder": (Sam2Config, lambda c, s: Sam2PromptNet(Sam2Model(c), s)),
}


def model_dir(path: str | Path) -> Path | None:
    """``path`` or ``path/model`` when its ``config.json`` has a ``rodentseg.recipe`` entry (a
    fine-tuned model directory), else None (also for unreadable JSON: the caller reports it)."""
    path = Path(path)
    for d in (path, path / "model"):
        try:
            block = json.loads((d / CONFIG_FILE).read_text()).get("rodentseg")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(block, dict) and "recipe" in block:
            return d
    return None


def load_finetuned_net(path: Path) -> nn.Module:
    """Build the module a model directory describes and load its weights strictly.

    Raises:
        RodentsegError: missing or unreadable files, weights that differ from the sha256 in a
            ``SHA256SUMS`` beside them or hold NaN or inf, an unknown recipe, or weights that
            do not match the config (missing, unexpected or mis-shaped tensors).
    """
    for fname in (CONFIG_FILE, WEIGHTS_FILE):
        if not (path / fname).is_file():
            raise RodentsegError(f"model directory {path} has no {fname}; expected {CONFIG_FILE} "
                                 f"and {WEIGHTS_FILE} as written by `rodentseg train`")
    verify_sha256sums(path, [WEIGHTS_FILE])  # only where a SHA256SUMS file records it
    try:
        cfg = json.loads((path / CONFIG_FILE).read_text())
        settings = FinetunedSettings.from_dict(cfg.pop("rodentseg"))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise RodentsegError(f"{path / CONFIG_FILE} is not a fine-tuned rodentseg config: {e}"
                             ) from None
    if settings.recipe not in _BUILDERS:
        raise RodentsegError(f"{path / CONFIG_FILE} names recipe {settings.recipe!r}; expected "
                             f"one of {sorted(_BUILDERS)}")
    config_cls, build = _BUILDERS[settings.recipe]
    try:
        net = build(config_cls.from_dict(cfg), settings)
    except (TypeError, ValueError, AttributeError) as e:
        raise RodentsegError(f"{path / CONFIG_FILE} is not a valid {config_cls.__name__}: {e}"
                             ) from None
    try:
        state = load_file(path / WEIGHTS_FILE)
    except (SafetensorError, OSError) as e:
        raise RodentsegError(f"could not read {path / WEIGHTS_FILE}: {e}") from None
    check_finite_state(state, path / WEIGHTS_FILE)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise strict_load_error(e, path, cfg, config_cls) from None
    return net.eval()


@dataclass
class _Base:
    """What the segmenters share: the module in eval mode on ``device``, and its identity."""

    net: nn.Module
    name: str
    path: Path
    device: torch.device
    weights_sha256: str = field(init=False)

    def __post_init__(self):
        self.net = self.net.to(self.device).eval()
        self.weights_sha256 = sha256_file(self.path / WEIGHTS_FILE)

    @property
    def pre(self) -> FinetunedSettings:
        """The model's settings (``pre.threshold`` is what ``rodentseg segment`` reads)."""
        return self.net.settings


class SemanticSegmenter(_Base):
    """A trained ``segformer`` or ``dinov3-lora`` run, with the :class:`Segmenter` interface.

    Attributes: name, path (the model directory), weights_sha256 (of ``model.safetensors``),
    pre (:class:`FinetunedSettings`), device, net (:class:`SegformerSegNet` /
    :class:`DinoSegNet`).
    """

    def predict(self, frames: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) RGB or (B, H, W) grey uint8 -> (B, H, W) float32 rodent probability
        in [0, 1] (:func:`semantic_probs`); RodentsegError on a non-finite value."""
        return check_finite_output(semantic_probs(self.net, frames), self.name)


class Sam2BoxSegmenter(_Base):
    """A trained ``sam2-decoder`` run: a detector's boxes prompt SAM 2 on every frame.

    The detector (``settings.detector``, ``rodentseg-tiny`` by default) segments the frame;
    each connected animal gives one box (:class:`rodentseg.annotate.detect.SegmenterDetector`),
    SAM 2 turns each box into a mask, and :meth:`predict` returns the union probability.
    Frames where the detector finds nothing are all zero.

    Attributes: as :class:`SemanticSegmenter`, plus ``detector``.
    """

    def __post_init__(self):
        super().__post_init__()
        from rodentseg.annotate.detect import SegmenterDetector
        from rodentseg.models import load_model

        self.detector = SegmenterDetector(load_model(self.net.settings.detector,
                                                     str(self.device)))

    @torch.inference_mode()
    def predict_boxes(self, frame: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 frame and (K, 4) xyxy pixel boxes -> (H, W) float32 union prob."""
        frame = as_rgb_frames(frame[None])[0]
        return sam2_box_probs(self.net, self.net.embed(frame[None]), boxes, *frame.shape[:2])

    @torch.inference_mode()
    def predict(self, frames: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) RGB or (B, H, W) grey uint8 -> (B, H, W) float32 in [0, 1]; one
        encoder call for the batch, one decoder call per frame (all its boxes at once)."""
        frames = as_rgb_frames(frames)
        emb = self.net.embed(frames)
        h, w = frames.shape[1:3]
        return check_finite_output(np.stack([sam2_box_probs(self.net, [e[i:i + 1] for e in emb],
                                                            self.detector.detect(f)[0], h, w)
                                             for i, f in enumerate(frames)]), self.name)


def load_finetuned(path: str | Path, name: str, device: torch.device):
    """A segmenter for a fine-tuned run (``runs/<name>`` or ``runs/<name>/model``).

    Raises:
        RodentsegError: as :func:`load_finetuned_net`, or no fine-tuned model there.
    """
    d = model_dir(path)
    if d is None:
        raise RodentsegError(f"{path} holds no fine-tuned model (expected {CONFIG_FILE} with a "
                             "'rodentseg.recipe' entry, in the directory or its model/)")
    net = load_finetuned_net(d)
    cls = Sam2BoxSegmenter if net.settings.recipe == "sam2-decoder" else SemanticSegmenter
    return cls(net, name, d, device)
