"""Pixels, prompt coordinates and masks to and from a SAM-family model's input frame.

Two geometries cover the families:

- ``square`` (SAM 2, SAM 2.1, EdgeTAM, SAM 3 tracker): the frame is resized, aspect ratio not
  kept, to ``S x S`` (``S`` = ``config.image_size``: 1024, 1008 for SAM 3), as
  ``Sam2ImageProcessor`` / ``Sam2VideoVideoProcessor`` do (``size={"height": S, "width": S}``,
  bilinear, rescale 1/255, ImageNet mean/std). Low-resolution mask logits go back to the frame
  by one bilinear resize (``Sam2ImageProcessor.post_process_masks``).
- ``longest`` (SAM v1): the longest side is resized to ``S`` and the rest padded with zeros at
  the bottom and right to ``S x S`` (``SamImageProcessor``: ``size={"longest_edge": S}``,
  ``pad_size={"height": S, "width": S}``). Masks are resized to ``S x S``, cropped to the
  unpadded part, then resized to the frame (``SamImageProcessor.post_process_masks``).

Those processors need torchvision for SAM 2 (its "fast" processors import it), which is not
usable on every machine (see NOTES-transformers.md), so :class:`Preprocessor` does the same
steps with torch ops (``F.interpolate(mode="bilinear", antialias=True)``, the resampling
torchvision's resize applies to tensors), and hands the pixels to the transformers image
processor instead whenever one could be loaded for the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Preprocessor:
    """Maps frames, points, boxes and masks between frame pixels and model input.

    Attributes:
        image_size: side ``S`` of the square model input, in pixels.
        resize: ``"square"`` (SAM 2 family) or ``"longest"`` (SAM v1); see the module docstring.
        mean, std: per-channel normalisation of RGB values scaled to [0, 1].
        hf_processor: a transformers image processor for this checkpoint when one loads here;
            it then makes the pixel values (the geometry above must match its settings).
    """

    image_size: int
    resize: Literal["square", "longest"] = "square"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    hf_processor: object | None = None

    def input_shape(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the frame's content inside the ``S x S`` input (before padding)."""
        s = self.image_size
        if self.resize == "square":
            return s, s
        scale = s / max(height, width)
        return int(height * scale + 0.5), int(width * scale + 0.5)

    def pixel_values(self, frames: np.ndarray) -> torch.Tensor:
        """Model input for a batch of frames.

        Args:
            frames: (B, H, W, 3) uint8 RGB, or one (H, W, 3) frame.

        Returns:
            (B, 3, S, S) float32, normalised.
        """
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (B, H, W, 3) uint8 RGB frames, got {frames.dtype} "
                             f"{frames.shape}")
        if self.hf_processor is not None:
            out = self.hf_processor(images=list(frames), return_tensors="pt")
            return out["pixel_values"].float()
        h, w = frames.shape[1:3]
        if not frames.flags.writeable:
            frames = frames.copy()
        x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=self.input_shape(h, w), mode="bilinear", align_corners=False,
                          antialias=True)
        x = x / 255.0
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        x = (x - mean) / std
        pad_h, pad_w = self.image_size - x.shape[2], self.image_size - x.shape[3]
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return x.contiguous()

    def scale_xy(self, height: int, width: int) -> tuple[float, float]:
        """Factors (sx, sy) that take frame pixel coordinates to model input coordinates."""
        h, w = self.input_shape(height, width)
        return w / width, h / height

    def points(self, points: np.ndarray, height: int, width: int) -> torch.Tensor:
        """(..., 2) float (x, y) frame pixels -> the same shape in model input pixels."""
        sx, sy = self.scale_xy(height, width)
        p = torch.as_tensor(np.asarray(points, np.float32)).clone()
        p[..., 0] *= sx
        p[..., 1] *= sy
        return p

    def boxes(self, boxes: np.ndarray, height: int, width: int) -> torch.Tensor:
        """(..., 4) float xyxy frame pixels -> the same shape in model input pixels."""
        b = np.asarray(boxes, np.float32)
        return self.points(b.reshape(*b.shape[:-1], 2, 2), height, width).reshape(b.shape)

    def mask(self, mask: np.ndarray) -> torch.Tensor:
        """(H, W) bool frame mask -> (1, 1, S, S) float32 in {0, 1}, as a mask prompt.

        Same steps as ``Sam2VideoProcessor.process_new_mask_for_video_frame``: bilinear
        (antialiased) resize, then ``>= 0.5``.
        """
        m = torch.from_numpy(np.asarray(mask, bool)).float()[None, None]
        h, w = self.input_shape(*mask.shape)
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        m = (m >= 0.5).float()
        if (h, w) != (self.image_size, self.image_size):
            m = F.pad(m, (0, self.image_size - w, 0, self.image_size - h))
        return m

    def logits_to_frame(self, logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Mask logits at model resolution -> logits at frame resolution.

        Args:
            logits: (N, h, w) float, any model-side resolution (``S/4`` for the decoders).
            height, width: the frame size.

        Returns:
            (N, H, W) float32 logits; ``> 0`` is the mask.
        """
        x = logits.float()[:, None]
        if self.resize == "longest":
            s = self.image_size
            x = F.interpolate(x, size=(s, s), mode="bilinear", align_corners=False)
            h, w = self.input_shape(height, width)
            x = x[..., :h, :w]
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
        return x[:, 0]


def stability_score(logits: torch.Tensor, offset: float = 1.0) -> torch.Tensor:
    """How little a mask changes when its logit threshold moves by ``offset``.

    The IoU between the masks ``logits > offset`` and ``logits > -offset`` (Kirillov et al.,
    "Segment Anything", 2023, ``calculate_stability_score`` in segment-anything's
    ``utils/amg.py``). 1 for a crisp mask; an empty mask scores 0.

    Args:
        logits: (N, h, w) float mask logits.
        offset: threshold shift in logit units.

    Returns:
        (N,) float32 in [0, 1].
    """
    flat = logits.flatten(1).float()
    inter = (flat > offset).sum(1).float()
    union = (flat > -offset).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))
