"""``rodentseg summarize``: one table over the results of a batch, with zones.

For every result folder (``rodentseg segment`` / ``track`` output: ``run.json`` and
``tracks.csv``), one row per animal: frames seen, time visible, distance and mean speed (as in
its ``summary.csv``), and per zone the time in it, entries and latency
(:mod:`rodentseg.track.zones`). Zones come from ``--zones FILE`` (one file for every video: the
same camera and arena), else the open field's centre and periphery of the arena; the arena is
the file's, else found on each video's background (:func:`rodentseg.track.zones.find_arena`).
Beside the table, ``<table>.zones/<result>.png`` shows the arena, the zones and each animal's
path over the background, and ``<result>.json`` the polygons used, to edit and give back with
``--zones``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rodentseg.errors import RodentsegError

if TYPE_CHECKING:  # matplotlib and scipy load when the command runs, not for --help
    from rodentseg.track.zones import Zone

#: the columns every row has; then ``<zone>_time_s``, ``<zone>_entries``, ``<zone>_latency_s``.
BASE_COLUMNS = ["result", "video", "track_id", "frames", "visible_s", "distance_px",
                "mean_speed_px_s", "outside_arena_frames"]


def _read_result(folder: Path) -> tuple[dict, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """run.json and, per track id, (frame_idx (N,), centroids (N, 2))."""
    run_json, tracks = folder / "run.json", folder / "tracks.csv"
    if not (run_json.is_file() and tracks.is_file()):
        raise RodentsegError(f"{folder}: expected a rodentseg result folder (run.json and "
                             "tracks.csv, as rodentseg segment or track write); "
                             f"found {'no folder' if not folder.is_dir() else 'neither or one'}")
    run = json.loads(run_json.read_text())
    rows: dict[int, list] = {}
    with tracks.open(newline="") as f:
        reader = csv.DictReader(f)
        need = {"frame_idx", "track_id", "cx", "cy"}
        if not need <= set(reader.fieldnames or []):
            raise RodentsegError(f"{tracks}: expected the columns {sorted(need)}; got "
                                 f"{reader.fieldnames}")
        for r in reader:
            rows.setdefault(int(r["track_id"]), []).append(
                (int(r["frame_idx"]), float(r["cx"]), float(r["cy"])))
    out = {}
    for tid, rs in sorted(rows.items()):
        a = np.array(rs, np.float64)
        out[tid] = (a[:, 0].astype(np.int64), a[:, 1:3])
    return run, out


def video_background(video: Path, max_frames: int = 60) -> np.ndarray:
    """The per-pixel median luma of up to ``max_frames`` frames spread evenly over the video.

    Returns:
        (H, W) float32 in [0, 255].

    Raises:
        RodentsegError: the video cannot be read (see :func:`rodentseg.io.video.read_frames`).
    """
    from rodentseg.io.video import probe, read_frames

    n = max(1, probe(video).frame_count)
    step = max(1, n // max_frames)
    picked = []
    for i, batch in read_frames(video, batch_size=16):
        for k, frame in enumerate(batch):
            if (i + k) % step == 0:
                picked.append(frame[..., 0] * 0.299 + frame[..., 1] * 0.587
                              + frame[..., 2] * 0.114)
    return np.median(np.stack(picked), 0).astype(np.float32)


def draw_zones(path: Path, background: np.ndarray | None, size: tuple[int, int],
               arena: Zone | None, zones: list[Zone],
               paths: dict[int, np.ndarray]) -> None:
    """A picture of the arena, the zones and each animal's path (PNG).

    Args:
        path: the PNG to write.
        background: (H, W) luma of the empty scene, or None (a white canvas).
        size: (width, height) of the frame in pixels.
        arena, zones: what was scored.
        paths: track id -> (N, 2) centroids ``(x, y)`` in pixels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import PathPatch, Polygon
    from matplotlib.path import Path as MplPath

    w, h = size
    fig, ax = plt.subplots(figsize=(8, 8 * h / w), dpi=100)
    if background is not None:
        ax.imshow(background, cmap="gray", vmin=0, vmax=255)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    colours = plt.get_cmap("tab10")
    for i, z in enumerate(zones):
        rings = [z.polygon, *(h[::-1] for h in z.holes)]  # holes wound the other way
        shape = MplPath.make_compound_path(*(MplPath(np.vstack([r, r[:1]]), closed=True)
                                             for r in rings))
        ax.add_patch(PathPatch(shape, alpha=0.25, color=colours((i + 2) % 10), label=z.name))
    if arena is not None:
        ax.add_patch(Polygon(arena.polygon, closed=True, fill=False, lw=2, color="yellow",
                             label="arena"))
    for k, (tid, xy) in enumerate(sorted(paths.items())):
        ax.plot(xy[:, 0], xy[:, 1], lw=0.8, color=colours(k % 10), label=f"track {tid}")
    ax.legend(loc="upper right", fontsize=8, framealpha=0.7)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def summarize(results: list[str | Path], out: str | Path, zones_file: str | Path | None = None,
              centre: float = 0.5, find: bool = True, progress: bool = True) -> list[dict]:
    """Write the batch table (module docstring) to ``out`` and its pictures beside it.

    Args:
        results: result folders (``run.json`` + ``tracks.csv``).
        out: the CSV to write (replaced atomically); pictures go to ``<out stem>.zones/``.
        zones_file: arena and zones (:func:`rodentseg.track.zones.load_zones`), or None.
        centre: without zones in the file, the centre's share of the arena's area for the
            ``centre`` / ``periphery`` zones.
        find: find the arena on each video's background when the file gives none (else, no
            arena: every row counts, and the centre is taken of the paths' convex hull).
        progress: print a line per result.

    Returns:
        The rows written.

    Raises:
        RodentsegError: a folder that is not a result, a bad zones file, or no results.
    """
    from rodentseg.track.zones import (
        centre_zones,
        find_arena,
        hull_zone,
        load_zones,
        save_zones,
        zone_readouts,
    )

    if not results:
        raise RodentsegError("summarize needs at least one result folder")
    out = Path(out)
    file_arena, file_zones = load_zones(zones_file) if zones_file else (None, [])
    loaded = [(Path(r), *_read_result(Path(r))) for r in results]  # check all first
    pictures = out.with_name(out.stem + ".zones")
    pictures.mkdir(parents=True, exist_ok=True)
    rows, zone_names = [], []
    for folder, run, tracks in loaded:
        video = Path(run["video"]) if run.get("video") else None
        size = (int(run.get("width", 0)), int(run.get("height", 0)))
        fps = float(run.get("fps") or 0)
        if not fps > 0:
            raise RodentsegError(f"{folder}/run.json: expected a positive fps; got "
                                 f"{run.get('fps')!r}")
        background = None
        if video is not None and video.exists():
            background = video_background(video)
            size = (background.shape[1], background.shape[0])
        points = np.concatenate([xy for _, xy in tracks.values()]) if tracks else np.zeros((0, 2))
        arena = file_arena
        if arena is None and find and background is not None and len(points):
            arena = find_arena(background, points)
        zones = file_zones
        if not zones:
            base = arena
            if base is None and len(points) >= 3:
                base = hull_zone(points)  # no video: the centre of where the animals went
            zones = centre_zones(base, centre) if base is not None else []
        for z in zones:
            if z.name not in zone_names:
                zone_names.append(z.name)
        save_zones(pictures / f"{folder.name}.json", arena,
                   [z for z in zones if not z.holes])
        draw_zones(pictures / f"{folder.name}.png", background, size, arena, zones,
                   {tid: xy for tid, (_, xy) in tracks.items()})
        for tid, (frames, xy) in tracks.items():
            inside = arena.contains(xy) if arena is not None else np.ones(len(xy), bool)
            steps = np.hypot(*np.diff(xy[inside], axis=0).T) if inside.sum() > 1 else []
            gaps = np.diff(frames[inside]) if inside.sum() > 1 else []
            near = np.asarray(gaps) <= 5  # the max_gap of rodentseg.track.readouts.finalize
            dist = float(np.sum(np.asarray(steps)[near])) if len(steps) else 0.0
            moving = float(np.sum(np.asarray(gaps)[near]) / fps) if len(gaps) else 0.0
            row = {"result": folder.name, "video": str(video or ""), "track_id": tid,
                   "frames": int(inside.sum()), "visible_s": round(inside.sum() / fps, 4),
                   "distance_px": round(dist, 2),
                   "mean_speed_px_s": round(dist / moving, 3) if moving else "",
                   "outside_arena_frames": int((~inside).sum())}
            for name, r in zone_readouts(frames, xy, fps, zones, arena).items():
                row[f"{name}_time_s"] = round(r.time_s, 4)
                row[f"{name}_entries"] = r.entries
                row[f"{name}_latency_s"] = "" if math.isnan(r.latency_s) else round(r.latency_s,
                                                                                    4)
            rows.append(row)
        if progress:
            print(f"{folder.name}: {len(tracks)} animal(s), arena "
                  f"{'from the file' if file_arena is not None else 'found' if arena else 'none'}"
                  f", zones {', '.join(z.name for z in zones) or 'none'} -> "
                  f"{pictures / (folder.name + '.png')}")
    columns = BASE_COLUMNS + [f"{z}_{k}" for z in zone_names
                              for k in ("time_s", "entries", "latency_s")]
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, columns, restval="")
            w.writeheader()
            w.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def _share(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {v}")
    return v


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``summarize`` to the ``rodentseg`` subcommands (sets ``func``)."""
    p = subparsers.add_parser(
        "summarize", help="one table of time in zones, entries and distance over many results",
        description="One CSV row per result folder and animal: frames, time visible, distance, "
                    "mean speed, and per zone time in it, entries and latency to the first "
                    "entry. Zones from --zones (JSON: {\"arena\": [[x, y], ...], \"zones\": "
                    "{\"name\": [[x, y], ...]}}), else the open field's centre and periphery of "
                    "the arena found on each video's background. Pictures of the arena, zones "
                    "and paths go to TABLE's stem + .zones/.")
    p.add_argument("results", nargs="+", type=Path, metavar="RESULT",
                   help="result folders of rodentseg segment or track")
    p.add_argument("--out", required=True, type=Path, help="the CSV table to write")
    p.add_argument("--zones", type=Path, default=None, help="JSON file with arena and zones")
    p.add_argument("--centre", type=_share, default=0.5,
                   help="without zones: the centre zone's share of the arena area (default 0.5)")
    p.add_argument("--no-arena", action="store_true",
                   help="do not look for the arena on the video (count every position)")
    p.add_argument("--quiet", action="store_true", help="no line per result")
    p.set_defaults(func=run_summarize)
    return p


def run_summarize(args: argparse.Namespace) -> int:
    """Run ``rodentseg summarize`` from parsed arguments; returns the exit status."""
    rows = summarize(args.results, args.out, args.zones, args.centre, not args.no_arena,
                     progress=not args.quiet)
    print(f"wrote {args.out} ({len(rows)} rows)")
    return 0
