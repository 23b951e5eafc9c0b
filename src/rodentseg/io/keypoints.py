"""Keypoint files as one flat table: DeepLabCut (CSV or H5, single- or multi-animal), SLEAP
(``.slp`` through ``sleap-io``) and a simple ``frame,bodypart,x,y[,individual]`` CSV.

Coordinates are image pixels, x = column and y = row, with pixel centres at whole numbers (as
DeepLabCut and SLEAP store them).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rodentseg.errors import RodentsegError
from rodentseg.io.masks import frame_index_of

_DLC_HEADER = ("scorer", "individuals", "bodyparts", "coords")


@dataclass
class Keypoints:
    """A flat table of labelled points.

    Attributes:
        frame_idx: (K,) int64, 0-based frame index (from a file name, its last run of digits).
        xy: (K, 2) float64, (x, y) in pixels; x = column, y = row.
        bodypart: (K,) object array of str.
        individual: (K,) object array of str; ``""`` for single-animal labels.
    """

    frame_idx: np.ndarray
    xy: np.ndarray
    bodypart: np.ndarray
    individual: np.ndarray

    def __len__(self) -> int:
        return len(self.frame_idx)


def _frame_of(value: str) -> int:
    value = str(value).strip()
    if value.isdigit():
        return int(value)
    return frame_index_of(Path(value.replace("\\", "/")))


def _make(rows: list[tuple[int, float, float, str, str]], path: Path) -> Keypoints:
    rows = [r for r in rows if math.isfinite(r[1]) and math.isfinite(r[2])]
    if not rows:
        raise RodentsegError(f"{path} holds no labelled keypoints (every x, y is empty or NaN)")
    return Keypoints(np.array([r[0] for r in rows], np.int64),
                     np.array([(r[1], r[2]) for r in rows], np.float64),
                     np.array([r[3] for r in rows], object), np.array([r[4] for r in rows], object))


def _num(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _from_dlc_table(index: list[str], columns: list[tuple[str, str, str]], values: list[list],
                    path: Path, min_likelihood: float | None) -> Keypoints:
    """DeepLabCut's table: one row per frame, columns (individual or "", bodypart, coord)."""
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for c, (individual, part, coord) in enumerate(columns):
        groups.setdefault((individual, part), {})[coord] = c
    rows = []
    for frame_name, vals in zip(index, values):
        frame = _frame_of(frame_name)
        for (individual, part), cols in groups.items():
            if "x" not in cols or "y" not in cols:
                continue
            if (min_likelihood is not None and "likelihood" in cols
                    and not _num(vals[cols["likelihood"]]) >= min_likelihood):
                continue
            rows.append((frame, _num(vals[cols["x"]]), _num(vals[cols["y"]]), part, individual))
    return _make(rows, path)


def read_dlc_csv(path: str | Path, min_likelihood: float | None = None) -> Keypoints:
    """DeepLabCut CSV: header rows ``scorer``, (``individuals``), ``bodyparts``, ``coords``,
    then one row per frame whose leading index column(s) name the image (``img0042.png``,
    ``labeled-data/m4s1/img0042.png``, the path split over three columns, or a frame number).

    Args:
        min_likelihood: drop points whose ``likelihood`` (model output files) is below it.
    """
    path = Path(path)
    with path.open(newline="") as fh:
        table = [r for r in csv.reader(fh) if r]
    header: dict[str, list[str]] = {}
    while table and table[0][0].strip().lower() in _DLC_HEADER:
        row = table.pop(0)
        header[row[0].strip().lower()] = row
    if "bodyparts" not in header or "coords" not in header:
        raise RodentsegError(f"{path} is not a DeepLabCut CSV: expected header rows "
                             f"scorer/[individuals]/bodyparts/coords, found {list(header)}")
    coords = header["coords"]
    n_index = next((i for i, v in enumerate(coords) if v in ("x", "y", "likelihood")), None)
    if n_index is None:
        raise RodentsegError(f"{path}: the coords header row has no x/y columns")
    individuals = header.get("individuals", [""] * len(coords))
    columns = [(individuals[c], header["bodyparts"][c], coords[c])
               for c in range(n_index, len(coords))]
    index = [next((v for v in reversed(r[:n_index]) if v.strip()), "") for r in table]
    return _from_dlc_table(index, columns, [r[n_index:] for r in table], path, min_likelihood)


def read_dlc_h5(path: str | Path, min_likelihood: float | None = None) -> Keypoints:
    """DeepLabCut H5 (a pandas DataFrame with the same columns as the CSV).

    Raises:
        RodentsegError: pandas/PyTables are missing (the message names the pip install).
    """
    path = Path(path)
    try:
        import pandas as pd
    except ImportError:
        raise RodentsegError(f"reading the DeepLabCut H5 file {path} needs pandas and PyTables: "
                             "pip install pandas tables (or pass the CSV DeepLabCut writes "
                             "next to it)") from None
    try:
        df = pd.read_hdf(path)
    except ImportError:
        raise RodentsegError(f"reading {path} needs PyTables: pip install tables") from None
    index = ["/".join(map(str, i)) if isinstance(i, tuple) else str(i) for i in df.index]
    columns = [(str(c[1]) if len(c) == 4 else "", str(c[-2]), str(c[-1])) for c in df.columns]
    return _from_dlc_table(index, columns, df.to_numpy(dtype=float).tolist(), path,
                           min_likelihood)


def read_slp(path: str | Path, video: str | None = None) -> Keypoints:
    """SLEAP labels (``.slp``) through sleap-io: user-labelled instances of each frame (the
    predicted ones when a frame has none); individual = track name, else the instance's
    position in the frame when there are several.

    Args:
        video: with a file that labels several videos (e.g. the views of a multi-camera
            session), the one to read: its file name (``minimal_top.mp4``) or stem.

    Raises:
        RodentsegError: sleap-io is missing, or the file covers several videos and ``video``
            does not name one of them.
    """
    path = Path(path)
    try:
        import sleap_io
    except ImportError:
        raise RodentsegError(f"reading the SLEAP file {path} needs sleap-io: "
                             "pip install sleap-io") from None
    labels = sleap_io.load_slp(str(path), open_videos=False)
    names = [Path(str(v.filename).replace("\\", "/")).name for v in labels.videos]
    if video is None and len(names) > 1:
        raise RodentsegError(f"{path} labels {len(names)} videos ({', '.join(names)}); expected "
                             "one, or name the one to read (video=..., --video in the CLI)")
    if video is not None:
        want = Path(video).name
        keep = [i for i, n in enumerate(names) if want in (n, Path(n).stem)]
        if not keep:
            raise RodentsegError(f"{path} labels no video named {want!r}; it labels "
                                 f"{', '.join(names)}")
        wanted = labels.videos[keep[0]]
    else:
        wanted = labels.videos[0] if labels.videos else None
    rows = []
    for lf in labels.labeled_frames:
        if lf.video is not wanted:
            continue
        instances = lf.user_instances or lf.instances
        for k, inst in enumerate(instances):
            pts = np.asarray(inst.numpy(), dtype=np.float64)[:, :2]
            nodes = [n.name for n in inst.skeleton.nodes]
            track = getattr(inst, "track", None)
            individual = track.name if track is not None else (
                str(k + 1) if len(instances) > 1 else "")
            rows += [(int(lf.frame_idx), x, y, part, individual)
                     for part, (x, y) in zip(nodes, pts)]
    return _make(rows, path)


def read_simple_csv(path: str | Path) -> Keypoints:
    """CSV with a header ``frame,bodypart,x,y`` and optionally ``individual``; ``frame`` is a
    frame number or an image file name (``img0042.png``)."""
    path = Path(path)
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip() for f in reader.fieldnames or []]
        missing = {"frame", "bodypart", "x", "y"} - set(fields)
        if missing:
            raise RodentsegError(f"{path}: expected columns frame,bodypart,x,y[,individual], "
                                 f"missing {sorted(missing)} (found {fields})")
        rows = [(_frame_of(r["frame"]), _num(r["x"]), _num(r["y"]), r["bodypart"].strip(),
                 (r.get("individual") or "").strip()) for r in reader]
    return _make(rows, path)


def read_keypoints(path: str | Path, min_likelihood: float | None = None,
                   video: str | None = None, scale: float = 1.0) -> Keypoints:
    """Read keypoints, choosing the reader by suffix and, for CSV, by the first cell
    (``scorer`` means DeepLabCut).

    Args:
        min_likelihood: drop points whose ``likelihood`` is below it (DeepLabCut model output).
        video: for a SLEAP file that labels several videos, the one to read (file name).
        scale: multiply every coordinate by it (keypoints labelled on a video of another size,
            e.g. 0.5 for points labelled at twice the video's resolution). Pixel centres stay
            at whole numbers: x' = (x + 0.5) * scale - 0.5.

    Raises:
        RodentsegError: missing file, unknown format, or a scale that is not a positive number.
    """
    path = Path(path)
    if not path.is_file():
        raise RodentsegError(f"keypoint file {path} does not exist (expected a DeepLabCut "
                             ".csv/.h5, a SLEAP .slp or a frame,bodypart,x,y CSV)")
    if not (math.isfinite(scale) and scale > 0):
        raise RodentsegError(f"keypoint scale must be a positive number, got {scale}")
    suffix = path.suffix.lower()
    if suffix == ".slp":
        kp = read_slp(path, video)
    elif suffix in (".h5", ".hdf5"):
        kp = read_dlc_h5(path, min_likelihood)
    elif suffix == ".csv":
        with path.open(newline="") as fh:
            first = next(csv.reader(fh), [""])
        if first and first[0].strip().lower() == "scorer":
            kp = read_dlc_csv(path, min_likelihood)
        else:
            kp = read_simple_csv(path)
    else:
        raise RodentsegError(f"unknown keypoint format {path.name!r}: expected .csv (DeepLabCut "
                             "or frame,bodypart,x,y), .h5 (DeepLabCut) or .slp (SLEAP)")
    if scale != 1.0:
        kp.xy = (kp.xy + 0.5) * scale - 0.5
    return kp
