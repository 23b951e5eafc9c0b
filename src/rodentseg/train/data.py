"""Labelled frames held in memory (:class:`LabelledFrames`) and the time-ordered split.

Datasets on disk are read by :mod:`rodentseg.train.datasets`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LabelledFrames:
    """Frames with binary rodent masks, all of one size (one setup's frames of one size, at
    the scale they train at: :func:`rodentseg.train.canvas.training_groups`).

    Attributes:
        names: file name of each frame, sorted.
        frames: (N, H, W) uint8 luma.
        masks: (N, H, W) bool, True = rodent (any instance id > 0).
        videos: the video of each frame (one background per video); None = one video.
        setup: the setup the frames come from (balanced sampling draws each setup equally).
        lengths: (N,) float32 body length of the frame's animals in pixels (median over its
            animals, :func:`rodentseg.train.canvas.animal_lengths`; NaN without one); None =
            not measured.
    """

    names: list[str]
    frames: np.ndarray
    masks: np.ndarray
    videos: list[str] | None = None
    setup: str = ""
    lengths: np.ndarray | None = None

    def subset(self, idx: list[int]) -> LabelledFrames:
        return LabelledFrames([self.names[i] for i in idx], self.frames[idx], self.masks[idx],
                              None if self.videos is None else [self.videos[i] for i in idx],
                              self.setup, None if self.lengths is None else self.lengths[idx])


def temporal_split(n: int, val_fraction: float) -> tuple[list[int], list[int]]:
    """Train/validation indices: the last ``val_fraction`` of the (time-ordered) frames is val.

    A block at the end, rather than every k-th frame, keeps near-duplicate neighbouring frames
    from sitting on both sides of the split.
    """
    n_val = max(1, round(n * val_fraction))
    return list(range(n - n_val)), list(range(n - n_val, n))
