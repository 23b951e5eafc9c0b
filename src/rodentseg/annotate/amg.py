"""Automatic mask generation: masks of everything in an image, prompted by a grid of points.

The single-crop method of Kirillov et al., "Segment Anything" (2023), as in segment-anything's
``SamAutomaticMaskGenerator``: a regular ``n x n`` grid of points (cell centres) is prompted in
batches through :class:`ImagePredictor` (one image encoding), each point giving three candidate
masks; candidates whose predicted IoU or stability score (mask IoU at logit threshold +offset
vs -offset) is low are dropped, and duplicates are removed by greedy non-maximum suppression of
their boxes, best predicted IoU first (torchvision's ``batched_nms``, which the reference
uses, is replaced by :func:`box_nms` here because torchvision does not load on every machine).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rodentseg.annotate.image import ImagePredictor
from rodentseg.annotate.preprocess import stability_score
from rodentseg.errors import RodentsegError


@dataclass
class AutoMasks:
    """Masks found in one image, best predicted IoU first.

    Attributes:
        masks: (N, H, W) bool.
        iou: (N,) float32 predicted IoU.
        stability: (N,) float32 stability score.
        boxes: (N, 4) float32 ``x0, y0, x1, y1`` pixels (x1, y1 exclusive).
        points: (N, 2) float32 (x, y) pixels of the grid point that produced each mask.
    """

    masks: np.ndarray
    iou: np.ndarray
    stability: np.ndarray
    boxes: np.ndarray
    points: np.ndarray

    def __len__(self) -> int:
        return len(self.masks)


def point_grid(n: int, height: int, width: int) -> np.ndarray:
    """(n*n, 2) float32 (x, y) pixel centres of an n x n grid of cells over the image."""
    c = (np.arange(n, dtype=np.float32) + 0.5) / n
    xs, ys = np.meshgrid(c * width, c * height)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def mask_boxes(masks: np.ndarray) -> np.ndarray:
    """(N, 4) float32 ``x0, y0, x1, y1`` of (N, H, W) bool masks (zeros for empty masks)."""
    out = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if len(rows):
            out[i] = cols[0], rows[0], cols[-1] + 1, rows[-1] + 1
    return out


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Greedy non-maximum suppression: indices kept, best score first.

    A box is dropped when its IoU with a kept, better-scoring box exceeds ``iou_thresh``.

    Args:
        boxes: (N, 4) float ``x0, y0, x1, y1``.
        scores: (N,) float.
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    b = np.asarray(boxes, np.float64)
    area = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(i)
        w = (np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0])).clip(0)
        h = (np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1])).clip(0)
        inter = w * h
        iou = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[iou <= iou_thresh]
    return np.array(keep, np.int64)


class AutomaticMaskGenerator:
    """Every mask an image predictor finds from a grid of point prompts.

    Args:
        predictor: an :class:`ImagePredictor`.
        points_per_side: grid size n (n*n prompts). More finds smaller things, linearly slower
            in the decoder (the encoder runs once).
        points_per_batch: prompts per decoder call (memory vs. calls).
        pred_iou_thresh: least predicted IoU kept (SAM default 0.88).
        stability_score_thresh: least stability score kept (SAM default 0.95).
        stability_score_offset: logit offset of the stability score.
        box_nms_thresh: box IoU above which the lower-scoring mask is a duplicate.
        min_area: smallest mask kept, in pixels.
    """

    def __init__(self, predictor: ImagePredictor, points_per_side: int = 16,
                 points_per_batch: int = 64, pred_iou_thresh: float = 0.88,
                 stability_score_thresh: float = 0.95, stability_score_offset: float = 1.0,
                 box_nms_thresh: float = 0.7, min_area: int = 0):
        if points_per_side < 1 or points_per_batch < 1:
            raise RodentsegError("points_per_side and points_per_batch must be >= 1")
        self.predictor = predictor
        self.points_per_side, self.points_per_batch = points_per_side, points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.box_nms_thresh = box_nms_thresh
        self.min_area = min_area

    def generate(self, image: np.ndarray) -> AutoMasks:
        """All masks of one (H, W, 3) uint8 RGB image (see the module docstring)."""
        self.predictor.set_image(image)
        h, w = image.shape[:2]
        grid = point_grid(self.points_per_side, h, w)
        masks, ious, stabs, pts = [], [], [], []
        for i in range(0, len(grid), self.points_per_batch):
            batch = grid[i:i + self.points_per_batch]
            pred = self.predictor.predict(points=batch[:, None], labels=np.ones((len(batch), 1)))
            flat = torch.from_numpy(pred.logits.reshape(-1, *pred.logits.shape[2:]))
            stab = stability_score(flat, self.stability_score_offset).numpy().reshape(
                pred.iou.shape)
            area = pred.masks.reshape(*pred.iou.shape, -1).sum(-1)
            ok = ((pred.iou >= self.pred_iou_thresh) & (stab >= self.stability_score_thresh)
                  & (area > max(self.min_area, 0)))
            for b, k in zip(*np.nonzero(ok)):
                masks.append(pred.masks[b, k])
                ious.append(pred.iou[b, k])
                stabs.append(stab[b, k])
                pts.append(batch[b])
        if not masks:
            return AutoMasks(np.zeros((0, h, w), bool), np.zeros(0, np.float32),
                             np.zeros(0, np.float32), np.zeros((0, 4), np.float32),
                             np.zeros((0, 2), np.float32))
        masks_a = np.stack(masks)
        boxes = mask_boxes(masks_a)
        keep = box_nms(boxes, np.array(ious), self.box_nms_thresh)
        return AutoMasks(masks_a[keep], np.array(ious, np.float32)[keep],
                         np.array(stabs, np.float32)[keep], boxes[keep],
                         np.array(pts, np.float32)[keep])
