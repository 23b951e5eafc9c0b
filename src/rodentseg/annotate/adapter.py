"""Load SAM-family promptable models (video and image) from a hub id or a local directory.

One loader per task over the transformers model classes (no copies of their code):

- ``sam2_video``, ``sam2``: video ``Sam2VideoModel``, image ``Sam2Model``;
- ``edgetam_video``, ``edgetam``: video ``EdgeTamVideoModel``, image ``EdgeTamModel``;
- ``sam3_tracker_video``, ``sam3_tracker``, ``sam3``, ``sam3_video``: video
  ``Sam3TrackerVideoModel``, image ``Sam3TrackerModel`` (SAM 3's concept prompts, through
  ``Sam3VideoModel``, are not wired in; use Grounding DINO for text);
- ``sam``: image ``SamModel`` only.

Weights load strictly: a missing, unexpected or mis-shaped tensor is an error (video-only
tensors that the image classes declare ignorable are the one exception, so an image predictor
can be built from a video checkpoint). On CUDA the model calls run under bf16 autocast; on CPU
in float32 (bf16 is slower on CPUs without bf16 units, see NOTES-transformers.md).
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers

from rodentseg.annotate.hub import DEFAULT_DETECTOR, DEFAULT_VIDEO_MODEL, HUB_MODELS
from rodentseg.annotate.preprocess import Preprocessor
from rodentseg.errors import RodentsegError
from rodentseg.io.video import sha256_file
from rodentseg.models import resolve_device

_VIDEO = {  # model_type -> (model class, inference-session class)
    "sam2_video": ("Sam2VideoModel", "Sam2VideoInferenceSession"),
    "sam2": ("Sam2VideoModel", "Sam2VideoInferenceSession"),
    "edgetam_video": ("EdgeTamVideoModel", "EdgeTamVideoInferenceSession"),
    "edgetam": ("EdgeTamVideoModel", "EdgeTamVideoInferenceSession"),
    "sam3_tracker_video": ("Sam3TrackerVideoModel", "Sam3TrackerVideoInferenceSession"),
    "sam3_tracker": ("Sam3TrackerVideoModel", "Sam3TrackerVideoInferenceSession"),
    "sam3_video": ("Sam3TrackerVideoModel", "Sam3TrackerVideoInferenceSession"),
    "sam3": ("Sam3TrackerVideoModel", "Sam3TrackerVideoInferenceSession"),
}
_IMAGE = {
    "sam": "SamModel",
    "sam2": "Sam2Model", "sam2_video": "Sam2Model",
    "edgetam": "EdgeTamModel", "edgetam_video": "EdgeTamModel",
    "sam3_tracker": "Sam3TrackerModel", "sam3_tracker_video": "Sam3TrackerModel",
    "sam3": "Sam3TrackerModel", "sam3_video": "Sam3TrackerModel",
}


__all__ = ["DEFAULT_DETECTOR", "DEFAULT_VIDEO_MODEL", "HUB_MODELS", "VideoModel",
           "load_image_model", "load_video_model", "resolve_name", "weights_fingerprint"]


def resolve_name(name_or_path: str) -> str:
    """A short name of :data:`HUB_MODELS` -> its hub id; a directory or other id unchanged."""
    return HUB_MODELS.get(name_or_path, name_or_path)


def _config(name_or_path: str):
    src = resolve_name(name_or_path)
    if not Path(src).is_dir() and "/" not in src:
        raise RodentsegError(
            f"unknown model {name_or_path!r}: expected one of {sorted(HUB_MODELS)}, a hub id "
            "such as facebook/sam2.1-hiera-tiny, or a directory with config.json")
    try:
        return src, transformers.AutoConfig.from_pretrained(src)
    except (OSError, ValueError) as e:
        where = "directory" if Path(src).is_dir() else "hub id (is the Hugging Face hub reachable?)"
        raise RodentsegError(f"cannot load the config of {name_or_path!r} as a {where}: "
                             f"{str(e).splitlines()[0]}") from None


def _load_strict(cls_name: str, src: str, device: torch.device):
    cls = getattr(transformers, cls_name)
    try:
        model, info = cls.from_pretrained(src, output_loading_info=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise RodentsegError(f"cannot load {cls_name} weights from {src!r}: "
                             f"{str(e).splitlines()[0]}") from None
    bad = {k: sorted(info.get(k) or []) for k in ("missing_keys", "unexpected_keys",
                                                  "mismatched_keys")}
    if any(bad.values()):
        detail = "; ".join(f"{k}: {v[:5]}{' ...' if len(v) > 5 else ''}"
                           for k, v in bad.items() if v)
        raise RodentsegError(f"{src!r} does not hold a complete {cls_name} checkpoint ({detail}); "
                             "expected weights saved from that model class")
    return model.to(device).eval()


def weights_fingerprint(name_or_path: str, model: torch.nn.Module) -> str:
    """What identifies the weights in ``run.json``: sha256 of a directory's ``*.safetensors``,
    else ``hub-id@commit`` (the commit transformers resolved), else the name."""
    src = resolve_name(name_or_path)
    files = sorted(Path(src).glob("*.safetensors")) if Path(src).is_dir() else []
    if files:
        h = hashlib.sha256()
        for f in files:
            h.update(sha256_file(f).encode())
        return h.hexdigest()
    commit = getattr(model.config, "_commit_hash", None)
    return f"{src}@{commit}" if commit else src


def _preprocessor(src: str, config, resize: str) -> Preprocessor:
    """The transformers image processor where it loads here, else the torch fallback."""
    size = config.image_size
    size = int(size[0] if isinstance(size, (list, tuple)) else size)
    hf = None
    try:
        hf = transformers.AutoImageProcessor.from_pretrained(src)
    except (OSError, ImportError, ValueError, TypeError, KeyError):
        hf = None  # no preprocessor_config.json, or a processor that needs torchvision
    if hf is not None:
        target = getattr(hf, "size", None) or {}
        side = target.get("longest_edge") or target.get("height")
        if side is not None and int(side) != size:
            hf = None  # a processor for another input size: ours follows the model config
    return Preprocessor(image_size=size, resize=resize, hf_processor=hf)


@dataclass
class VideoModel:
    """A SAM-family video model, its preprocessing and device, ready for sessions.

    Attributes:
        model: the transformers video model (``Sam2VideoModel``, ``EdgeTamVideoModel`` or
            ``Sam3TrackerVideoModel``), in eval mode.
        session_cls: the matching transformers ``...InferenceSession`` class.
        pre: pixel, prompt and mask mapping (:class:`Preprocessor`).
        device: where the model runs.
        name: what it was loaded from.
    """

    model: torch.nn.Module
    session_cls: type
    pre: Preprocessor
    device: torch.device
    name: str

    @property
    def weights_sha256(self) -> str:
        """Fingerprint of the weights (:func:`weights_fingerprint`)."""
        return weights_fingerprint(self.name, self.model)

    def autocast(self):
        """bf16 autocast on CUDA, nothing on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def new_state(self, height: int, width: int):
        """An empty transformers inference session for streamed frames of this size."""
        return self.session_cls(video_height=height, video_width=width,
                                inference_device=self.device,
                                inference_state_device=self.device,
                                video_storage_device=self.device, dtype=torch.float32)

    @property
    def memory_window(self) -> int:
        """Frames of non-prompted history the model reads: max(mask memories, pointers)."""
        cfg = self.model.config
        return max(cfg.num_maskmem, cfg.max_object_pointers_in_encoder)

    def start(self, video, **kwargs):
        """Open an annotation session on a video (:class:`rodentseg.annotate.VideoSession`)."""
        from rodentseg.annotate.session import VideoSession

        return VideoSession(self, video, **kwargs)


def load_video_model(name_or_path: str = DEFAULT_VIDEO_MODEL, device: str = "auto") -> VideoModel:
    """Load a SAM-family video model.

    Args:
        name_or_path: a short name of :data:`HUB_MODELS` (``sam2.1-tiny``, ``edgetam``), a hub
            id (``facebook/sam2.1-hiera-tiny``, ``facebook/EdgeTAM``) or a directory written by
            ``save_pretrained``.
        device: ``auto`` (CUDA if present), ``cpu`` or ``cuda[:N]``.

    Raises:
        RodentsegError: an unknown name, an unreachable hub, a checkpoint of a family without
            a video model (SAM v1, detectors), or weights that fail strict loading.
    """
    dev = resolve_device(device)
    src, config = _config(name_or_path)
    if config.model_type not in _VIDEO:
        raise RodentsegError(
            f"{name_or_path!r} is a {config.model_type!r} model, which cannot track video; "
            f"expected one of the families {sorted(set(_VIDEO))} (e.g. sam2.1-tiny, edgetam)")
    model_cls, session_cls = _VIDEO[config.model_type]
    model = _load_strict(model_cls, src, dev)
    return VideoModel(model, getattr(transformers, session_cls),
                      _preprocessor(src, model.config, "square"), dev, name_or_path)


def load_image_model(name_or_path: str = DEFAULT_VIDEO_MODEL, device: str = "auto"):
    """Load a SAM-family model as an image predictor (:class:`ImagePredictor`).

    Args and raises as :func:`load_video_model`; SAM v1 (``sam``) checkpoints work here too.
    """
    from rodentseg.annotate.image import ImagePredictor

    dev = resolve_device(device)
    src, config = _config(name_or_path)
    if config.model_type not in _IMAGE:
        raise RodentsegError(
            f"{name_or_path!r} is a {config.model_type!r} model, not a promptable segmenter; "
            f"expected one of the families {sorted(_IMAGE)} (e.g. sam2.1-tiny, sam-vit-base)")
    model = _load_strict(_IMAGE[config.model_type], src, dev)
    resize = "longest" if config.model_type == "sam" else "square"
    size_cfg = model.config.prompt_encoder_config  # image configs keep the input size here
    return ImagePredictor(model, _preprocessor(src, size_cfg, resize), dev, name_or_path)
