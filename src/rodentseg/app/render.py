"""Pictures the app shows: a frame with masks and clicks, and the tracks of a segment run."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from rodentseg.app.prompting import FramePrompt
from rodentseg.overlay import colour_of, draw_masks
from rodentseg.types import FrameMasks

_FG, _BG = (60, 220, 60), (230, 40, 40)


def draw_frame(frame: np.ndarray, fm: FrameMasks, prompts: dict[int, FramePrompt],
               pending_corner: tuple[float, float] | None = None,
               selected: int | None = None) -> np.ndarray:
    """The frame with each object's mask in its colour, its clicks and a pending box corner.

    Args:
        frame: (H, W, 3) uint8 RGB.
        fm: the frame's masks (colour of obj_id k: :func:`rodentseg.overlay.colour_of`).
        prompts: ``{obj_id: FramePrompt}`` of this frame; foreground points are green dots,
            background points red dots, each ringed in the object's colour; boxes are drawn
            in the object's colour (thicker for the ``selected`` object).
        pending_corner: (x, y) of the first corner of a box being drawn, or None.
        selected: the obj_id the next click goes to.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    img = Image.fromarray(draw_masks(frame, fm))
    d = ImageDraw.Draw(img)
    for oid, p in prompts.items():
        ring = tuple(int(c) for c in colour_of(oid))
        if p.box is not None:
            d.rectangle(p.box, outline=ring, width=3 if oid == selected else 1)
        for (x, y), label in zip(p.points, p.labels):
            d.ellipse((x - 4, y - 4, x + 4, y + 4), fill=_FG if label else _BG, outline=ring,
                      width=2)
    if pending_corner is not None:
        x, y = pending_corner
        d.line((x - 8, y, x + 8, y), fill=(255, 255, 0), width=2)
        d.line((x, y - 8, x, y + 8), fill=(255, 255, 0), width=2)
    return np.asarray(img)


def draw_tracks(frame: np.ndarray, tracks_csv: str | Path) -> np.ndarray:
    """Each animal's centroid path from a ``tracks.csv``, in its colour, over a frame.

    Args:
        frame: (H, W, 3) uint8 RGB, e.g. the first frame of the video.
        tracks_csv: a ``tracks.csv`` of :mod:`rodentseg.io.results` (pixels).

    Returns:
        (H, W, 3) uint8 RGB; a gap in an animal's frames (lost) breaks its line.
    """
    paths: dict[int, list[list[tuple[float, float]]]] = {}
    last: dict[int, int] = {}
    with Path(tracks_csv).open(newline="") as f:
        for row in csv.DictReader(f):
            tid, t = int(row["track_id"]), int(row["frame_idx"])
            if tid not in paths or t - last[tid] > 1:
                paths.setdefault(tid, []).append([])
            paths[tid][-1].append((float(row["cx"]), float(row["cy"])))
            last[tid] = t
    img = Image.fromarray((frame * 0.6).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for tid, pieces in paths.items():
        colour = tuple(int(c) for c in colour_of(tid))
        for piece in pieces:
            if len(piece) > 1:
                d.line(piece, fill=colour, width=2)
            else:
                x, y = piece[0]
                d.ellipse((x - 1, y - 1, x + 1, y + 1), fill=colour)
        x, y = pieces[0][0]
        d.text((x + 4, y - 12), str(tid), fill=colour)
    return np.asarray(img)
