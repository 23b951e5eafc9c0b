"""Frames of many setups prepared for one training canvas (the ``scratch-tiny`` recipe).

Setups differ in frame size (320x240 to 1328x1048), in how large the animals look in them and
in how many frames they have. :func:`training_groups` reads the training frames once, as luma,
and groups them by setup and frame size; each group is resized once so that its median animal
length (:func:`animal_lengths`) lies in ``augment.animal_length`` = ``[lo, hi]`` pixels (a group
already inside the range keeps its size; one below is enlarged to ``lo``, one above is shrunk
to ``hi``). A group without animals (an empty arena: negatives) has no length to match; it is
enlarged only where its frames are smaller than the canvas, so that a crop of it fills the
canvas. :class:`~rodentseg.train.augment.CopyPasteAugment` then cuts canvas-sized scenes out of
the groups (random similarity transforms that keep the animals in view), draws each setup
equally often, and builds the pasted scenes on one empty-arena background per video
(:func:`video_backgrounds`).

The range is a trade-off: the model sees animals at the sizes of the range times the random
scale jitter (``real_scale``, ``scale``), and at inference ``rodentseg segment`` reads frames at
their own size. A narrow range evens out the setups (a mouse filling a 1328x1048 oblique view
and one of 40 px in a 320x240 chamber look alike to the model) but teaches fewer sizes; a
range that holds every setup's own size keeps the sizes met at inference but may leave a large
animal too big for the canvas. ``openfield-m4s1``'s median body length is 129 px (5-95%:
115-154 px at 640x480), so a range that includes it trains that set as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from rodentseg.errors import RodentsegError
from rodentseg.train.data import LabelledFrames
from rodentseg.types import BODY_WIDTH_PX

#: Training canvas (H, W) when the frames have several sizes and ``augment.canvas`` is unset.
DEFAULT_CANVAS = (384, 512)


def animal_lengths(mask: np.ndarray) -> list[float]:
    """Body length of each animal of an instance mask, in pixels.

    The body is the animal's mask without its thin parts (a morphological opening with a
    ``BODY_WIDTH_PX`` square removes the tail, as :func:`rodentseg.types.body_centroid` does; the
    whole mask where the opening leaves nothing); its length is ``4 sqrt(l1)``, ``l1`` the larger
    eigenvalue of the covariance of its pixel coordinates (an ellipse's full major axis).

    Args:
        mask: (H, W) int instance ids, 0 = background.

    Returns:
        One length per instance id > 0, in id order; empty for an empty mask.
    """
    out = []
    for sl, oid in zip(ndimage.find_objects(mask), range(1, int(mask.max(initial=0)) + 1)):
        if sl is None:
            continue
        m = np.pad(mask[sl] == oid, BODY_WIDTH_PX)
        body = ndimage.binary_opening(m, np.ones((BODY_WIDTH_PX, BODY_WIDTH_PX), bool))
        ys, xs = np.nonzero(body if body.any() else m)
        if len(xs) < 2:
            out.append(float(len(xs)))
            continue
        cov = np.cov(np.stack([xs, ys]).astype(np.float64))
        out.append(float(4 * np.sqrt(max(np.linalg.eigvalsh(cov)[-1], 0.0))))
    return out


def group_scale(lengths: Sequence[float], animal_length: Sequence[float] | None,
                frame_hw: tuple[int, int], canvas: tuple[int, int]) -> float:
    """The factor one group's frames are resized by (module docstring).

    Args:
        lengths: body length of every animal in the group, pixels (empty: no animals).
        animal_length: ``(lo, hi)`` pixels, or None (animals keep their size).
        frame_hw, canvas: (H, W) of the group's frames and of the training canvas.
    """
    if len(lengths) == 0:  # negatives: fill the canvas, never shrink
        return max(1.0, canvas[0] / frame_hw[0], canvas[1] / frame_hw[1])
    if animal_length is None:
        return 1.0
    lo, hi = animal_length
    med = float(np.median(lengths))
    return lo / med if med < lo else hi / med if med > hi else 1.0


def resolve_canvas(sizes: Sequence[tuple[int, int]], canvas: Sequence[int] | None
                   ) -> tuple[int, int]:
    """The training canvas (H, W): ``canvas`` when set, else the frames' size when they all
    have one, else :data:`DEFAULT_CANVAS`."""
    if canvas is not None:
        return int(canvas[0]), int(canvas[1])
    sizes = set(sizes)
    return next(iter(sizes)) if len(sizes) == 1 else DEFAULT_CANVAS


def _resize(x: np.ndarray, hw: tuple[int, int], binary: bool) -> np.ndarray:
    """(N, H, W) uint8 or bool -> (N, h, w), bilinear with antialiasing (a mask: > 0.5)."""
    t = torch.from_numpy(x.astype(np.float32))[:, None]
    t = F.interpolate(t, size=hw, mode="bilinear", align_corners=False, antialias=True)[:, 0]
    if binary:
        return (t > 0.5).numpy()
    return t.round().clamp(0, 255).to(torch.uint8).numpy()


def training_groups(items, animal_length: Sequence[float] | None = None,
                    canvas: Sequence[int] | None = None) -> list[LabelledFrames]:
    """The training frames as luma, one :class:`LabelledFrames` per setup and frame size, each
    resized by :func:`group_scale` (module docstring).

    Args:
        items: dataset items (``image`` (H, W, 3) uint8 RGB, ``mask`` (H, W) int instance ids,
            ``name``, ``video``, and ``setup``: items without one count as setup ``""``).
        animal_length: ``(lo, hi)`` body length in pixels, or None (no resizing).
        canvas: (H, W) of the training canvas (:func:`resolve_canvas` of the frame sizes when
            None).

    Returns:
        Groups in order of first appearance; frames within a group in item order. Luma is PIL's
        ``L`` conversion (ITU-R BT.601), as :func:`rodentseg.train.scratch.luma_frames`.

    Raises:
        RodentsegError: no items, or a bad ``animal_length``.
    """
    if animal_length is not None and not 0 < animal_length[0] <= animal_length[1]:
        raise RodentsegError(f"augment.animal_length must be [lo, hi] pixels with 0 < lo <= hi; "
                             f"got {list(animal_length)}")
    collected: dict[tuple[str, tuple[int, int]], dict[str, list]] = {}
    for it in items:
        luma = np.asarray(Image.fromarray(it["image"]).convert("L"))
        g = collected.setdefault((it.get("setup", ""), luma.shape), {
            "names": [], "frames": [], "masks": [], "videos": [], "lengths": [], "all": []})
        lengths = animal_lengths(it["mask"])
        g["names"].append(it["name"])
        g["frames"].append(luma)
        g["masks"].append(it["mask"] > 0)
        g["videos"].append(it["video"])
        g["lengths"].append(float(np.median(lengths)) if lengths else float("nan"))
        g["all"] += lengths
    if not collected:
        raise RodentsegError("expected at least one training frame; the training split is empty")
    canvas = resolve_canvas([hw for _, hw in collected], canvas)
    groups = []
    for (setup, hw), g in collected.items():
        frames, masks = np.stack(g["frames"]), np.stack(g["masks"])
        scale = group_scale(g["all"], animal_length, hw, canvas)
        if scale != 1.0:
            size = (max(1, round(hw[0] * scale)), max(1, round(hw[1] * scale)))
            frames, masks = _resize(frames, size, False), _resize(masks, size, True)
        groups.append(LabelledFrames(g["names"], frames, masks, g["videos"], setup,
                                     np.asarray(g["lengths"], np.float32) * scale))
    return groups


def video_backgrounds(data: LabelledFrames, grow: float = 0.1) -> list[np.ndarray]:
    """The empty arena of each video of a group: the per-pixel (lower) median of its frames
    with their animals masked out (the camera is still, the animals move; a static background
    estimate as in Barnich & Van Droogenbroeck 2011, "ViBe").

    Each animal's mask is grown by ``grow`` x the group's median body length (at least 3 px),
    so that the shadow next to it is masked out too. Where no frame of the video shows the
    floor (an animal that never left its place, or a video of one frame), the hole is filled
    from the free pixels around it (:func:`_fill_holes`), so no background holds an unlabelled
    animal.

    Returns:
        One (H, W) float32 image in [0, 1] per video, in order of first appearance
        (``data.videos``; one for all frames when it is None).
    """
    videos = data.videos or [""] * len(data.frames)
    lengths = data.lengths if data.lengths is not None else np.array([np.nan])
    length = float(np.nanmedian(lengths)) if np.isfinite(lengths).any() else 0.0
    r = max(3, round(grow * length))
    out = []
    for v in dict.fromkeys(videos):
        idx = [i for i, x in enumerate(videos) if x == v]
        frames = torch.from_numpy(data.frames[idx]).float() / 255
        held = torch.from_numpy(ndimage.maximum_filter(data.masks[idx], (1, 2 * r + 1, 2 * r + 1)))
        bg = frames.masked_fill(held, float("nan")).nanmedian(0).values
        out.append(_fill_holes(bg).numpy())
    return out


def _fill_holes(bg: torch.Tensor) -> torch.Tensor:
    """NaN pixels of (H, W) filled from the valid pixels around them: a push-pull pyramid
    (means over 2x2, 4x4, ... blocks of the valid pixels, then each hole takes the finest
    block mean that has any, bilinearly upsampled); all NaN: mid-grey."""
    valid = torch.isfinite(bg)
    if valid.all():
        return bg
    if not valid.any():
        return torch.full_like(bg, 0.5)
    s = torch.where(valid, bg, torch.zeros_like(bg))[None, None]
    w = valid.float()[None, None]
    levels = [(s, w)]
    while not (w > 0).all():
        s, w = (F.avg_pool2d(t, 2, ceil_mode=True) for t in (s, w))
        levels.append((s, w))
    est = s / w
    for s, w in reversed(levels[:-1]):
        up = F.interpolate(est, size=s.shape[-2:], mode="bilinear", align_corners=False)
        est = torch.where(w > 0, s / w.clamp(min=1e-12), up)
    return torch.where(valid, bg, est[0, 0])
