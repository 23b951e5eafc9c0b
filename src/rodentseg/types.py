"""The result type every stage passes on: the instance masks of one frame."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

BODY_WIDTH_PX = 7
"""Mask parts narrower than this (pixels) are left out of :func:`body_centroid`: the tail."""


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box ``(y0, y1, x0, x1)`` of a (H, W) bool mask, pixels, ends exclusive; None when
    the mask is empty."""
    rows = np.flatnonzero(mask.any(1))
    if not len(rows):
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(mask[y0:y1].any(0))
    return y0, y1, int(cols[0]), int(cols[-1]) + 1


def mask_coords(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero(mask)`` of a (H, W) bool mask, searched only inside its bounding box.

    Returns:
        (ys, xs) int64 pixel rows and columns of the frame, row-major order; empty for an empty
        mask. A few times faster than ``np.nonzero`` for an animal in a large frame.
    """
    box = mask_box(mask)
    if box is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    y0, y1, x0, x1 = box
    ys, xs = np.nonzero(mask[y0:y1, x0:x1])
    return ys + y0, xs + x0


def body_centroid(mask: np.ndarray, width_px: int = BODY_WIDTH_PX) -> tuple[float, float] | None:
    """Centroid ``(x, y)`` of an animal's body: its (H, W) bool mask without the parts narrower
    than ``width_px`` pixels (the tail; ear and paw tips), found by a morphological opening with
    a ``width_px`` square.

    The tail moves on its own and would pull a whole-mask centroid by several pixels (a mouse's
    tail is about as long as its body); EthoVision erodes the contour before its centre point
    for the same reason, and the blobs of threshold trackers (Tracktor, idTracker, ToxTrac) lose
    most of the thin, pale tail. On the tracktor video the body centroid halved the median
    distance to those three trackers' median (previous weights 1.43 -> 0.79 px, shipped weights
    1.43 -> 0.71 px; ``benchmarks/tracktor_agreement.py``).

    Returns:
        (x, y) float pixels (column, row) of the frame; the whole mask's centroid when nothing
        is wider than ``width_px`` (a small or distant animal); None for an empty mask.
    """
    box = mask_box(mask)
    if box is None:
        return None
    y0, y1, x0, x1 = box
    crop = mask[y0:y1, x0:x1]
    if width_px > 1:  # opening = erosion then dilation, square structuring element (separable)
        body = ndi.maximum_filter(ndi.minimum_filter(crop, width_px, mode="constant"), width_px,
                                  mode="constant")
        if body.any():
            crop = body
    ys, xs = np.nonzero(crop)
    return float(xs.mean()) + x0, float(ys.mean()) + y0


@dataclass
class FrameMasks:
    """Instance masks of one video frame.

    Attributes:
        frame_idx: 0-based index of the frame in decoding order.
        obj_ids: (N,) int64, one id per object (``track_id`` once tracked; >= 1).
        masks: (N, H, W) bool, full frame resolution, row = y, column = x.
        scores: (N,) float32 in [0, 1], the model's mean rodent probability inside each mask.

    Raises:
        ValueError: lengths disagree, masks are not 3-D bool, or an id is < 1.
    """

    frame_idx: int
    obj_ids: np.ndarray
    masks: np.ndarray
    scores: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.obj_ids = np.asarray(self.obj_ids, dtype=np.int64).reshape(-1)
        if self.scores is None:
            self.scores = np.ones(len(self.obj_ids), np.float32)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if self.masks.ndim != 3 or self.masks.dtype != bool:
            raise ValueError(f"masks must be (N, H, W) bool, got {self.masks.dtype} "
                             f"{self.masks.shape}")
        n = len(self.masks)
        if len(self.obj_ids) != n or len(self.scores) != n:
            raise ValueError(
                f"{n} masks but {len(self.obj_ids)} obj_ids and {len(self.scores)} scores"
            )
        if n and self.obj_ids.min() < 1:
            raise ValueError(f"obj_ids must be >= 1 (0 is background), got {self.obj_ids.tolist()}")

    def __len__(self) -> int:
        return len(self.obj_ids)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the frame."""
        return self.masks.shape[1], self.masks.shape[2]

    def to_label_image(self) -> np.ndarray:
        """(H, W) label image, pixel = obj_id, 0 = background (later objects drawn on top):
        uint8 while every id is at most 255, else uint16 (a 16-bit label PNG).

        Raises:
            ValueError: an id does not fit in 16 bits (> 65535).
        """
        top = int(self.obj_ids.max()) if len(self) else 0
        if top > 65535:
            raise ValueError(f"obj_id {top} does not fit a 16-bit label PNG (ids up to 65535)")
        out = np.zeros(self.shape, np.uint8 if top <= 255 else np.uint16)
        for oid, m in zip(self.obj_ids, self.masks):
            out[m] = oid
        return out

    @classmethod
    def from_label_image(cls, frame_idx: int, label: np.ndarray) -> FrameMasks:
        """Split a (H, W) integer label image (0 = background) into one mask per id."""
        if label.dtype == np.uint8:  # bincount is ~4x faster than unique for 8-bit labels
            ids = np.flatnonzero(np.bincount(label.ravel(), minlength=1))
        else:
            ids = np.unique(label)
        ids = ids[ids > 0]
        masks = label[None] == ids[:, None, None] if len(ids) else np.zeros((0, *label.shape), bool)
        return cls(frame_idx, ids, masks)
