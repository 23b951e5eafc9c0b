"""Labelled frames for training: a folder of frames and a folder of same-named mask PNGs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rodentseg.errors import RodentsegError


@dataclass
class LabelledFrames:
    """Frames with binary rodent masks, all of one size.

    Attributes:
        names: file name of each frame, sorted.
        frames: (N, H, W) uint8 luma.
        masks: (N, H, W) bool, True = rodent (any instance id > 0).
    """

    names: list[str]
    frames: np.ndarray
    masks: np.ndarray

    def subset(self, idx: list[int]) -> LabelledFrames:
        return LabelledFrames([self.names[i] for i in idx], self.frames[idx], self.masks[idx])


def load_labelled_frames(root: str | Path, frames_dir: str = "frames",
                         masks_dir: str = "masks") -> LabelledFrames:
    """Read ``root/frames/*.png`` and the masks of the same name in ``root/masks/``.

    Colour frames are converted to luma (ITU-R BT.601, PIL mode ``L``); mask pixels > 0 are rodent.

    Raises:
        RodentsegError: a folder is missing, empty, a frame has no mask, or sizes differ.
    """
    root = Path(root)
    fdir, mdir = root / frames_dir, root / masks_dir
    for d in (fdir, mdir):
        if not d.is_dir():
            raise RodentsegError(f"expected a folder {d} with PNG images, found none")
    names = sorted(p.name for p in fdir.glob("*.png"))
    if not names:
        raise RodentsegError(f"no *.png frames in {fdir}")
    missing = [n for n in names if not (mdir / n).is_file()]
    if missing:
        raise RodentsegError(f"{len(missing)} frames have no mask in {mdir}, e.g. {missing[:3]}")
    frames = np.stack([np.asarray(Image.open(fdir / n).convert("L")) for n in names])
    masks = np.stack([np.asarray(Image.open(mdir / n)) > 0 for n in names])
    if frames.shape != masks.shape:
        raise RodentsegError(f"frames {frames.shape} and masks {masks.shape} differ in size")
    return LabelledFrames(names, frames, masks)


def temporal_split(n: int, val_fraction: float) -> tuple[list[int], list[int]]:
    """Train/validation indices: the last ``val_fraction`` of the (time-ordered) frames is val.

    A block at the end, rather than every k-th frame, keeps near-duplicate neighbouring frames
    from sitting on both sides of the split.
    """
    n_val = max(1, round(n * val_fraction))
    return list(range(n - n_val)), list(range(n - n_val, n))
