"""A finished result folder, for notebooks: ``rodentseg.load_result(DIR)``.

    >>> res = rodentseg.load_result("runs/demo/mouse_video")
    >>> res.tracks.groupby("track_id").speed_px_s.mean()   # pandas
    >>> fm = res.masks[120]                                # FrameMasks of frame 120
    >>> ds = res.to_movement()                             # movement poses dataset

Nothing is read until it is asked for: the tables on first access, a frame's masks when it is
indexed (one PNG), so a 10,000-frame result opens at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from rodentseg.errors import RodentsegError


def _pandas():
    try:
        import pandas
    except ImportError:
        raise RodentsegError("tables as DataFrames need pandas: pip install pandas (or "
                             '"rodentseg[keypoints]")') from None
    return pandas


class ResultMasks(Sequence):
    """The masks of a result, one :class:`~rodentseg.types.FrameMasks` per frame, read on
    demand from ``masks/NNNNNN.png`` (``masks[i]`` reads one file; iterating streams them).

    ``len()`` is the number of frames; ``masks[i].obj_ids`` are ``track_id`` values and
    ``masks[i].masks`` is ``(N, H, W)`` bool at the video's resolution.
    """

    def __init__(self, folder: Path, n_frames: int):
        self.folder = folder
        self._n = n_frames

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        from PIL import Image

        from rodentseg.types import FrameMasks

        i = int(i)
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"frame {i} is outside the result's {self._n} frames")
        path = self.folder / f"{i:06d}.png"
        if not path.is_file():
            raise RodentsegError(f"{path} is missing: the result is damaged (rerun the command)")
        return FrameMasks.from_label_image(i, np.asarray(Image.open(path)))

    def __iter__(self) -> Iterator:
        for i in range(self._n):
            yield self[i]


class Result:
    """A result folder of ``rodentseg segment`` or ``track``.

    Attributes:
        folder: the folder.
        run: ``run.json`` as a dict (version, model, options, video, fps, size, timings).
        fps: frames per second; ``width``, ``height``: frame size in pixels.
        n_frames: frames of the video (the number of mask PNGs).
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = self.folder / "run.json"
        if not path.is_file() or not (self.folder / "tracks.csv").is_file():
            raise RodentsegError(f"{self.folder}: expected a rodentseg result folder (run.json "
                                 "and tracks.csv, as rodentseg segment or track write)")
        self.run: dict = json.loads(path.read_text())
        self.fps = float(self.run.get("fps") or 0)
        self.width, self.height = int(self.run.get("width", 0)), int(self.run.get("height", 0))
        n = self.run.get("frame_count")
        self.n_frames = int(n) if n else len(list((self.folder / "masks").glob("*.png")))

    def __repr__(self) -> str:
        return (f"Result({str(self.folder)!r}: {self.n_frames} frames, {self.width}x"
                f"{self.height}, {self.fps:g} fps, tracks {self.track_ids})")

    @cached_property
    def tracks(self):
        """``tracks.csv`` as a pandas DataFrame: one row per animal per frame (columns in the
        README's Output section; pixels, seconds)."""
        return _pandas().read_csv(self.folder / "tracks.csv")

    @cached_property
    def summary(self):
        """``summary.csv`` as a pandas DataFrame: one row per animal."""
        return _pandas().read_csv(self.folder / "summary.csv")

    @cached_property
    def track_ids(self) -> list[int]:
        """The ``track_id`` values present, increasing (read from ``tracks.csv``)."""
        import csv

        with (self.folder / "tracks.csv").open(newline="") as f:
            return sorted({int(r["track_id"]) for r in csv.DictReader(f)})

    @property
    def masks(self) -> ResultMasks:
        """Every frame's masks, read on demand (:class:`ResultMasks`)."""
        return ResultMasks(self.folder / "masks", self.n_frames)

    def to_movement(self):
        """The tracks as a ``movement`` poses dataset (an ``xarray.Dataset``: ``position``
        (time, space, keypoints, individuals), ``confidence``; time in seconds).

        Read from ``tracks.nc`` when the result has it, else from ``tracks.sleap.h5`` through
        ``movement.io.load_dataset``.

        Raises:
            RodentsegError: ``movement`` is not installed, or the result found no animal.
        """
        try:
            import movement.io as mio
        except ImportError:
            raise RodentsegError('movement datasets need movement: pip install '
                                 '"rodentseg[movement]"') from None
        nc = self.folder / "tracks.nc"
        if nc.is_file():
            import xarray

            with xarray.open_dataset(nc) as ds:
                return ds.load()
        h5 = self.folder / "tracks.sleap.h5"
        if not h5.is_file():
            raise RodentsegError(f"{self.folder} has no tracks (no animal was found)")
        load = getattr(mio, "load_dataset", None)  # movement >= 0.17; before, load_poses
        if load is None:
            from movement.io.load_poses import from_file as load
        return load(h5, source_software="SLEAP", fps=self.fps)


def load_result(folder: str | Path) -> Result:
    """Open a result folder of ``rodentseg segment`` / ``track`` (:class:`Result`).

    Raises:
        RodentsegError: not a result folder (no ``run.json`` or ``tracks.csv``).
    """
    return Result(folder)
