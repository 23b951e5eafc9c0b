"""Behaviour readouts and exports, added to a result folder before it is published.

:func:`finalize` is the one post-processing step of ``rodentseg segment`` and
``rodentseg track``. It reads ``tracks.csv`` once per pass (streaming: memory does not grow
with the number of frames) and writes, each under a temporary name and then renamed:

- ``tracks.csv`` with :data:`SPEED_COLUMNS` appended after the 11 columns of
  :data:`rodentseg.io.results.TRACK_COLUMNS`:
  ``speed_px_s`` = distance from the animal's previous row / time between the rows, when that
  row is at most ``max_gap`` frames back (else empty: the animal was lost, the jump is not
  movement); ``distance_px`` = running sum of those distances; ``speed_cm_s`` and
  ``distance_cm`` the same divided by ``px_per_cm`` (empty without it). Centroid jitter of a
  still animal adds to the distance; smooth the centroids first if that matters.
- ``summary.csv``: one row per animal (:data:`SUMMARY_COLUMNS`); ``mean_speed`` = distance /
  time covered by the counted steps.
- ``heatmap_<track_id>.png``: occupancy (time the centroid spent in each ``cell_px`` square)
  as an RGB image of the frame's size (matplotlib ``inferno``: black = never, yellow = the
  most; the most is ``heatmap_max_s`` in ``summary.csv``), so it overlays the video.
- ``swaps.csv``: the tracker's review log (:mod:`rodentseg.track.events`).
- ``tracks.dlc.csv`` and ``tracks.sleap.h5``: the centroids for DeepLabCut / SLEAP /
  ``movement`` users (:mod:`rodentseg.io.exports`); with ``movement`` installed also
  ``tracks.nc`` (a movement dataset, netCDF) and ``nwb/track_<id>.nwb`` (NWB, ``ndx-pose``, one
  file per animal); none of them when no animal was found.
- ``masks.json``: its ``videos`` entry and the frames' ``file_name`` filled in from the source
  video (:func:`rodentseg.io.masks.set_coco_video`).
"""

from __future__ import annotations

import csv
import importlib.util
import math
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from rodentseg.io.exports import DlcCsvWriter, SleapAnalysisWriter, write_movement_exports
from rodentseg.io.masks import set_coco_video
from rodentseg.io.results import TRACK_COLUMNS
from rodentseg.io.video import image_files
from rodentseg.track.events import SWAP_COLUMNS, TrackEvent

SPEED_COLUMNS = ["speed_px_s", "distance_px", "speed_cm_s", "distance_cm"]
SUMMARY_COLUMNS = ["track_id", "frames", "first_frame", "last_frame", "visible_s",
                   "mean_area_px", "distance_px", "mean_speed_px_s", "max_speed_px_s",
                   "distance_cm", "mean_speed_cm_s", "max_speed_cm_s", "heatmap",
                   "heatmap_max_s"]


@dataclass
class _Animal:
    grid: np.ndarray  # (rows, cols) int64 frames per cell
    frames: int = 0
    first: int = -1
    last: int = -1
    area_sum: float = 0.0
    distance: float = 0.0
    moving_time: float = 0.0
    max_speed: float = 0.0
    prev: tuple[int, float, float] | None = field(default=None)


def _rows(path: Path) -> Iterator[list[str]]:
    """Rows of a tracks.csv after its header, checking the columns and the frame order."""
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or header[:len(TRACK_COLUMNS)] != TRACK_COLUMNS:
            raise ValueError(f"{path} does not start with the columns {TRACK_COLUMNS}")
        last = -1
        for row in reader:
            frame = int(row[0])
            if frame < last:
                raise ValueError(f"{path}: frame {frame} comes after frame {last}")
            last = frame
            yield row[:len(TRACK_COLUMNS)]


def _num(x: float | None, nd: int = 3):
    return "" if x is None else round(x, nd)


def finalize(folder: str | Path, fps: float, width: int, height: int,
             px_per_cm: float | None = None, events: list[TrackEvent] | None = None,
             n_frames: int | None = None, max_gap: int = 5, cell_px: int = 10,
             video: str | Path | None = None, name: str | None = None) -> None:
    """Add speeds, summary, heatmaps, the review log and the exports to a result folder.

    Args:
        folder: the (partial) result folder holding ``tracks.csv`` in frame order.
        fps: frame rate, frames per second (> 0).
        width, height: frame size in pixels.
        px_per_cm: image scale, pixels per centimetre, or None for pixel units only.
        events: the tracker's log (``Tracker.events``), or None for an empty ``swaps.csv``.
        n_frames: frames of the video (rows of the exports); default: last frame in
            ``tracks.csv`` + 1.
        max_gap: largest frame gap over which a step still counts as movement.
        cell_px: side of a heatmap cell in pixels.
        video: the video file or folder of images the masks were found in (frame ``i`` of a
            folder is its ``i``-th image in name order), or None when there is none (``track``
            without ``--video``). Recorded in ``masks.json``, ``tracks.sleap.h5``, ``tracks.nc``
            and the NWB files.
        name: the result's name (``masks.json``'s video name; without a video, also the SLEAP
            file's ``video_path``); default: the video's stem.

    Raises:
        ValueError: a bad ``fps``/``px_per_cm``, or ``tracks.csv`` is not in the layout of
            :mod:`rodentseg.io.results` (missing columns, frames out of order).
    """
    folder = Path(folder)
    if not fps > 0 or (px_per_cm is not None and not px_per_cm > 0):
        raise ValueError(f"fps and px_per_cm must be > 0, got {fps} and {px_per_cm}")
    tracks = folder / "tracks.csv"
    grid_shape = (math.ceil(height / cell_px), math.ceil(width / cell_px))
    animals: dict[int, _Animal] = {}
    last_frame = -1
    tmp = folder / ".tracks.csv.tmp"
    try:
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(TRACK_COLUMNS + SPEED_COLUMNS)
            for row in _rows(tracks):
                frame, tid = int(row[0]), int(row[2])
                cx, cy = float(row[4]), float(row[5])
                a = animals.setdefault(tid, _Animal(np.zeros(grid_shape, np.int64)))
                speed = None
                if a.prev is not None and frame - a.prev[0] <= max_gap:
                    dt = (frame - a.prev[0]) / fps
                    step = math.hypot(cx - a.prev[1], cy - a.prev[2])
                    speed = step / dt
                    a.distance += step
                    a.moving_time += dt
                    a.max_speed = max(a.max_speed, speed)
                a.prev = (frame, cx, cy)
                a.frames += 1
                a.first = frame if a.first < 0 else a.first
                a.last = frame
                a.area_sum += float(row[3])
                gy = min(max(int(cy // cell_px), 0), grid_shape[0] - 1)
                gx = min(max(int(cx // cell_px), 0), grid_shape[1] - 1)
                a.grid[gy, gx] += 1
                last_frame = max(last_frame, frame)
                cm = None if px_per_cm is None else 1.0 / px_per_cm
                w.writerow(row + [_num(speed), _num(a.distance),
                                  _num(None if speed is None or cm is None else speed * cm),
                                  _num(None if cm is None else a.distance * cm)])
        os.replace(tmp, tracks)
    finally:
        tmp.unlink(missing_ok=True)
    _write_summary(folder, animals, fps, px_per_cm, width, height, cell_px)
    _write_swaps(folder / "swaps.csv", events or [])
    n_frames = last_frame + 1 if n_frames is None else max(n_frames, last_frame + 1)
    video = Path(video).resolve() if video is not None else None
    name = name or (video.stem if video is not None else folder.name)
    if (folder / "masks.json").is_file():
        names = [p.name for p in image_files(video)] if video and video.is_dir() else None
        set_coco_video(folder / "masks.json", name, str(video or ""), fps,
                       len(names) if names is not None else n_frames, names)
    if animals:
        _write_exports(folder, sorted(animals), n_frames, fps, video, name)


def _write_summary(folder: Path, animals: dict[int, _Animal], fps: float,
                   px_per_cm: float | None, width: int, height: int, cell_px: int) -> None:
    import matplotlib

    cmap = matplotlib.colormaps["inferno"]
    tmp = folder / ".summary.csv.tmp"
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SUMMARY_COLUMNS)
        for tid in sorted(animals):
            a = animals[tid]
            mean_speed = a.distance / a.moving_time if a.moving_time else None
            cm = None if px_per_cm is None else 1.0 / px_per_cm
            name = f"heatmap_{tid}.png"
            seconds = a.grid / fps
            rgb = (cmap(seconds / seconds.max())[..., :3] * 255).round().astype(np.uint8)
            rgb[a.grid == 0] = 0
            img = Image.fromarray(rgb).resize((rgb.shape[1] * cell_px, rgb.shape[0] * cell_px),
                                              Image.NEAREST).crop((0, 0, width, height))
            img.save(folder / f".{name}.tmp.png")
            os.replace(folder / f".{name}.tmp.png", folder / name)
            w.writerow([tid, a.frames, a.first, a.last, _num(a.frames / fps, 4),
                        _num(a.area_sum / a.frames, 1), _num(a.distance),
                        _num(mean_speed), _num(a.max_speed if a.moving_time else None),
                        _num(None if cm is None else a.distance * cm),
                        _num(None if cm is None or mean_speed is None else mean_speed * cm),
                        _num(None if cm is None or not a.moving_time else a.max_speed * cm),
                        name, _num(float(seconds.max()), 4)])
    os.replace(tmp, folder / "summary.csv")


def _write_swaps(path: Path, events: list[TrackEvent]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(SWAP_COLUMNS)
        w.writerows(e.row() for e in sorted(events, key=lambda e: (e.frame_idx, e.kind)))
    os.replace(tmp, path)


def _write_exports(folder: Path, track_ids: list[int], n_frames: int, fps: float,
                   video: Path | None, name: str) -> None:
    h5 = folder / "tracks.sleap.h5"
    with DlcCsvWriter(folder / "tracks.dlc.csv", track_ids, n_frames) as dlc, \
            SleapAnalysisWriter(h5, track_ids, n_frames, video_path=video or name) as sleap:
        frame, points = None, {}
        for row in _rows(folder / "tracks.csv"):
            f = int(row[0])
            if f != frame and frame is not None:
                dlc.add(frame, points)
                sleap.add(frame, points)
                points = {}
            frame = f
            points[int(row[2])] = (row[4], row[5], row[10])
        if frame is not None:
            dlc.add(frame, points)
            sleap.add(frame, points)
    if importlib.util.find_spec("movement") is None:
        warnings.warn('tracks.nc and nwb/ are not written without movement; pip install '
                      '"rodentseg[movement]"', stacklevel=3)
    else:
        write_movement_exports(h5, folder / "tracks.nc", folder / "nwb", fps, video)
