"""SAM 2 prompt encoder + mask decoder to ONNX (the part that runs once per click).

The image encoder runs once per frame and stays in torch (or is cached); what a correction tool
calls for every click is the prompt encoder and mask decoder, which is what is exported, as in
segment-anything's ``scripts/export_onnx_model.py`` (SAM v1) and SAM 2's ONNX ports. The graph
wraps ``transformers``' ``Sam2Model.prompt_encoder`` and ``Sam2Model.mask_decoder`` exactly as
``Sam2Model.forward`` calls them with ``image_embeddings`` given and ``multimask_output=True``.

Inputs (model input frame: the ``S x S`` resized image, ``S = config.image_size``, 1024 for the
released checkpoints):

- ``image_embeddings`` (1, C, S/16, S/16) float32: ``Sam2Model.get_image_embeddings(...)[2]``;
- ``high_res_feats_0`` (1, C0, S/4, S/4) and ``high_res_feats_1`` (1, C1, S/8, S/8) float32:
  ``get_image_embeddings(...)[0]`` and ``[1]``;
- ``point_coords`` (1, P, N, 2) float32: P prompts of N points, (x, y) in pixels of the model
  input frame; dynamic P and N;
- ``point_labels`` (1, P, N) int64: 1 foreground, 0 background, 2 / 3 box top-left /
  bottom-right corner, -1 not a point, -10 padding.

Outputs: ``low_res_masks`` (1, P, 3, S/4, S/4) float32 logits, ``iou_scores`` (1, P, 3),
``object_score_logits`` (1, P, 1). Exporter: legacy tracing, opset 18 (NOTES-transformers.md:
onnxruntime 65 ms vs torch 127 ms per prompt on this CPU, difference 2e-8).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rodentseg.errors import RodentsegError
from rodentseg.export.onnx_export import OPSET, _atomic_path, _require_onnx

SAM2_FILE = "sam2_prompt_mask_decoder.onnx"
INPUTS = ["image_embeddings", "high_res_feats_0", "high_res_feats_1", "point_coords",
          "point_labels"]
OUTPUTS = ["low_res_masks", "iou_scores", "object_score_logits"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class PromptMaskDecoder(torch.nn.Module):
    """``Sam2Model``'s prompt encoder + mask decoder as one module (see the module docstring)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, image_embeddings, high_res_feats_0, high_res_feats_1, point_coords,
                point_labels):
        m = self.model
        pos = m.get_image_wide_positional_embeddings().repeat(image_embeddings.shape[0], 1, 1, 1)
        sparse, dense = m.prompt_encoder(point_coords, point_labels, None, None)
        masks, iou, _, obj = m.mask_decoder(
            image_embeddings=image_embeddings, image_positional_embeddings=pos,
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=True, high_resolution_features=[high_res_feats_0, high_res_feats_1])
        return masks, iou, obj


def load_sam2(name_or_dir: str):
    """Load a ``Sam2Model`` (image model) strictly, from a directory or hub id.

    Short names of :data:`rodentseg.annotate.adapter.HUB_MODELS` work when that module is
    installed. A ``sam2_video`` checkpoint works too (its video-only tensors are not needed).

    Raises:
        RodentsegError: not loadable, not a SAM 2 checkpoint, or missing/mis-shaped tensors.
    """
    import transformers

    try:
        from rodentseg.annotate.adapter import resolve_name

        src = resolve_name(name_or_dir)
    except ImportError:
        src = name_or_dir
    try:
        cfg = transformers.AutoConfig.from_pretrained(src)
    except (OSError, ValueError) as e:
        raise RodentsegError(f"cannot load a SAM 2 config from {name_or_dir!r}: "
                             f"{str(e).splitlines()[0]}; expected a directory written by "
                             "save_pretrained or a hub id") from None
    if cfg.model_type not in ("sam2", "sam2_video"):
        raise RodentsegError(f"{name_or_dir!r} is a {cfg.model_type!r} model; --sam2 expects a "
                             "SAM 2 checkpoint (model_type sam2 or sam2_video)")
    model, info = transformers.Sam2Model.from_pretrained(src, output_loading_info=True)
    bad = {k: info.get(k) for k in ("missing_keys", "mismatched_keys") if info.get(k)}
    if cfg.model_type == "sam2" and info.get("unexpected_keys"):
        bad["unexpected_keys"] = info["unexpected_keys"]
    if bad:
        raise RodentsegError(f"{name_or_dir!r} is not a complete Sam2Model checkpoint: {bad}")
    return model.eval()


def _embeddings(model, frames: np.ndarray | None) -> list[torch.Tensor]:
    """Image embeddings of the first frame (resized to S x S, ImageNet-normalised) or noise."""
    s = model.config.vision_config.backbone_config.image_size[0]
    if frames is None:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 3, s, s, generator=g)
    else:
        f = torch.from_numpy(np.ascontiguousarray(frames[:1])).float() / 255.0
        f = (f[..., None].expand(-1, -1, -1, 3) if f.ndim == 3 else f).permute(0, 3, 1, 2)
        f = F.interpolate(f, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
        x = (f - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None,
                                                                                            None]
    with torch.no_grad():
        return model.get_image_embeddings(x)


@dataclass(frozen=True)
class Sam2Parity:
    """Torch vs onnxruntime on the exported decoder.

    Attributes:
        prompts: prompts compared (each with 1 foreground and 1 background point).
        max_abs_diff_logits: largest |difference| of ``low_res_masks`` logits.
        max_abs_diff_iou: largest |difference| of ``iou_scores``.
        mask_iou: IoU of the masks (logit > 0) pooled over prompts and the 3 outputs (NaN if
            both are empty).
    """

    prompts: int
    max_abs_diff_logits: float
    max_abs_diff_iou: float
    mask_iou: float

    def __str__(self) -> str:
        return (f"max |d logit| {self.max_abs_diff_logits:.2e}, max |d iou score| "
                f"{self.max_abs_diff_iou:.2e}, mask IoU {self.mask_iou:.4f} over "
                f"{self.prompts} prompts x 3 masks")


def export_sam2_decoder(name_or_dir: str, dst: str | Path, frames: np.ndarray | None = None,
                        opset: int = OPSET) -> Sam2Parity:
    """Export a SAM 2 prompt encoder + mask decoder to ONNX and check it against torch.

    Args:
        name_or_dir: a SAM 2 checkpoint (directory or hub id; :func:`load_sam2`).
        dst: the ``.onnx`` file to write (temporary name, then renamed).
        frames: (N, H, W[, 3]) uint8 frames; the first one gives the image embeddings of the
            parity check (None: embeddings of a noise image).
        opset: ONNX opset.

    Returns:
        The parity of onnxruntime against torch on 4 point prompts spread over the image.

    Raises:
        RodentsegError: onnx/onnxruntime missing, or what :func:`load_sam2` raises.
    """
    _require_onnx()
    import onnxruntime as ort

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    model = load_sam2(name_or_dir)
    module = PromptMaskDecoder(model).eval()
    embs = _embeddings(model, frames)
    s = float(model.config.prompt_encoder_config.image_size)
    grid = torch.tensor([[0.3, 0.3], [0.7, 0.3], [0.3, 0.7], [0.7, 0.7]]) * s
    coords = torch.stack([grid, s - grid], dim=1)[None]  # (1, 4 prompts, 2 points, 2)
    labels = torch.tensor([[[1, 0]] * 4], dtype=torch.int64)
    args = (embs[2], embs[0], embs[1], coords, labels)
    dyn = {"point_coords": {1: "prompts", 2: "points"}, "point_labels": {1: "prompts", 2: "points"},
           **{o: {1: "prompts"} for o in OUTPUTS}}
    tmp = _atomic_path(dst)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(tmp), input_names=INPUTS, output_names=OUTPUTS,
                              opset_version=opset, dynamo=False, dynamic_axes=dyn)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(None, {n: t.numpy() for n, t in zip(INPUTS, args)})
        with torch.no_grad():
            ref = [t.numpy() for t in module(*args)]
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    a, b = ref[0] > 0, got[0] > 0
    union = int((a | b).sum())
    return Sam2Parity(int(coords.shape[1]), float(np.abs(ref[0] - got[0]).max()),
                      float(np.abs(ref[1] - got[1]).max()),
                      int((a & b).sum()) / union if union else float("nan"))
