"""Segmentation losses of the fine-tuning recipes (:mod:`rodentseg.train.recipes`).

- :func:`focal_loss`: sigmoid focal loss, Lin et al., "Focal Loss for Dense Object Detection",
  ICCV 2017 (computed by ``kornia.losses.binary_focal_loss_with_logits``).
- :func:`dice_loss`: soft Dice, Milletari et al., "V-Net: Fully Convolutional Neural Networks
  for Volumetric Medical Image Segmentation", 3DV 2016, with the +1 smoothing of SAM's code.
- :func:`sam_loss`: focal + Dice + IoU-prediction MSE weighted 20 : 1 : 1, with the
  minimum-loss candidate back-propagated when the decoder outputs several masks; Kirillov et al.,
  "Segment Anything", ICCV 2023, section 3 and appendix A ("a linear combination of focal loss
  and dice loss ... in a 20:1 ratio", IoU head trained with "mean-square-error loss between the
  IoU prediction and the predicted mask's IoU with the ground truth mask"); the same weights are
  SAM 2's training defaults (``loss_mask: 20, loss_dice: 1, loss_iou: 1``).
- :func:`median_frequency_weights`: class weights for cross-entropy by median frequency
  balancing, Eigen & Fergus, "Predicting Depth, Surface Normals and Semantic Labels with a
  Common Multi-Scale Convolutional Architecture", ICCV 2015; the weighted cross-entropy itself
  is ``torch.nn.functional.cross_entropy(weight=...)``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from kornia.losses import binary_focal_loss_with_logits

from rodentseg.errors import RodentsegError

#: SAM's loss weights (focal, dice, IoU prediction).
SAM_WEIGHTS = (20.0, 1.0, 1.0)


def _check_pair(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.shape != target.shape or logits.ndim < 2:
        raise RodentsegError(f"expected logits and target of one shape (N, ..., H, W); got "
                             f"{tuple(logits.shape)} and {tuple(target.shape)}")


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25,
               gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss per mask, averaged over its pixels (Lin et al. 2017).

    Shape:
        logits, target: (N, H, W) (or (N, ..., H, W)); target in {0, 1} (float or bool).
        returns: (N,) float32.

    Raises:
        RodentsegError: shapes differ.
    """
    _check_pair(logits, target)
    x = logits.float().flatten(1)
    per_px = binary_focal_loss_with_logits(x, target.to(x.dtype).flatten(1), alpha=alpha,
                                           gamma=gamma, reduction="none")
    return per_px.mean(1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per mask on sigmoid probabilities (Milletari et al. 2016).

    ``1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth)``; ``smooth = 1`` as in SAM's
    ``dice_loss``, so an empty target with an empty prediction costs 0.

    Shape:
        logits, target: (N, ..., H, W); target in {0, 1}. returns: (N,) float32.

    Raises:
        RodentsegError: shapes differ.
    """
    _check_pair(logits, target)
    p = torch.sigmoid(logits.float()).flatten(1)
    t = target.float().flatten(1)
    return 1 - (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of the masks ``logits > 0`` with ``target``, per mask, without gradient.

    Shape:
        logits, target: (N, ..., H, W). returns: (N,) float32 in [0, 1]; two empty masks give 1.
    """
    pred = (logits.detach() > 0).flatten(1)
    t = target.detach().bool().flatten(1)
    inter = (pred & t).sum(1).float()
    union = (pred | t).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def sam_loss(logits: torch.Tensor, iou_pred: torch.Tensor, target: torch.Tensor,
             weights: tuple[float, float, float] = SAM_WEIGHTS) -> dict[str, torch.Tensor]:
    """SAM's mask loss for M candidate masks per prompt (Kirillov et al. 2023).

    Per prompt, ``weights[0] * focal + weights[1] * dice`` is computed for each candidate and
    only the lowest is kept (with M = 1, the single mask); the IoU head of every candidate is
    trained by MSE against that candidate's actual IoU (SAM 2's ``supervise_all_iou``).

    Args:
        logits: (N, M, H, W) mask logits at the target's resolution.
        iou_pred: (N, M) predicted IoU in [0, 1].
        target: (N, H, W) {0, 1} ground-truth mask of each prompt's object.
        weights: (focal, dice, iou) weights; SAM's 20 : 1 : 1 by default.

    Returns:
        ``{"loss": scalar, "focal": scalar, "dice": scalar, "iou": scalar}``, float32; the
        parts are the unweighted means over prompts.

    Raises:
        RodentsegError: shapes that do not match the above.
    """
    if logits.ndim != 4 or iou_pred.shape != logits.shape[:2] or target.shape != (
            logits.shape[0], *logits.shape[2:]):
        raise RodentsegError(f"expected logits (N, M, H, W), iou_pred (N, M), target (N, H, W); "
                             f"got {tuple(logits.shape)}, {tuple(iou_pred.shape)}, "
                             f"{tuple(target.shape)}")
    n, m = logits.shape[:2]
    flat = logits.reshape(n * m, *logits.shape[2:])
    tgt = target[:, None].expand_as(logits).reshape_as(flat)
    focal = focal_loss(flat, tgt).view(n, m)
    dice = dice_loss(flat, tgt).view(n, m)
    combined = weights[0] * focal + weights[1] * dice
    best = combined.argmin(1)
    rows = torch.arange(n, device=logits.device)
    iou_mse = F.mse_loss(iou_pred.float(), mask_iou(flat, tgt).view(n, m))
    loss = combined[rows, best].mean() + weights[2] * iou_mse
    return {"loss": loss, "focal": focal[rows, best].mean(), "dice": dice[rows, best].mean(),
            "iou": iou_mse}


def median_frequency_weights(label_maps: Iterable[np.ndarray], num_classes: int) -> np.ndarray:
    """Cross-entropy class weights by median frequency balancing (Eigen & Fergus 2015).

    ``freq[c]`` = pixels of class ``c`` / pixels of the images in which ``c`` appears;
    ``weight[c] = median(freq) / freq[c]``. A class that never appears gets weight 1 (it adds
    nothing to the loss on this data). For a rodent covering 3 % of every frame this gives
    about 0.52 for background and 16.7 for rodent.

    Args:
        label_maps: (H, W) integer class maps, values in ``[0, num_classes)``.
        num_classes: number of classes C.

    Returns:
        (C,) float32 weights.

    Raises:
        RodentsegError: no label map, or a value outside ``[0, num_classes)``.
    """
    class_px = np.zeros(num_classes, np.float64)
    image_px = np.zeros(num_classes, np.float64)
    seen = 0
    for lab in label_maps:
        lab = np.asarray(lab)
        counts = np.bincount(lab.ravel().astype(np.int64), minlength=num_classes)
        if len(counts) > num_classes or lab.min() < 0:
            raise RodentsegError(f"label values must lie in [0, {num_classes}); got "
                                 f"{lab.min()}..{lab.max()}")
        class_px += counts
        image_px += np.where(counts > 0, lab.size, 0)
        seen += 1
    if not seen:
        raise RodentsegError("median frequency weights need at least one training mask; got none")
    present = class_px > 0
    freq = np.where(present, class_px / np.maximum(image_px, 1), 0)
    med = np.median(freq[present])
    return np.where(present, med / np.where(present, freq, 1), 1.0).astype(np.float32)
