"""Human keypoints as a mask check that needs no mask labels: how many fall inside the masks.

Readers for DeepLabCut (CSV or H5), SLEAP (``.slp`` through ``sleap-io``) and a simple
``frame,bodypart,x,y[,individual]`` CSV, and :class:`KeypointContainment`, an update/compute
accumulator. Coordinates are image pixels, x = column and y = row, with pixel centres at whole
numbers (as DeepLabCut and SLEAP store them); a point is inside a mask when the pixel it
rounds to (half up) is set.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from rodentseg.errors import RodentsegError
from rodentseg.io.masks import frame_index_of
from rodentseg.types import FrameMasks

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
            if min_likelihood is not None and "likelihood" in cols:
                if not _num(vals[cols["likelihood"]]) >= min_likelihood:
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


def read_slp(path: str | Path) -> Keypoints:
    """SLEAP labels (``.slp``) through sleap-io: user-labelled instances of each frame (the
    predicted ones when a frame has none); individual = track name, else the instance's
    position in the frame when there are several.

    Raises:
        RodentsegError: sleap-io is missing, or the file covers more than one video.
    """
    path = Path(path)
    try:
        import sleap_io
    except ImportError:
        raise RodentsegError(f"reading the SLEAP file {path} needs sleap-io: "
                             "pip install sleap-io") from None
    labels = sleap_io.load_slp(str(path))
    if len(labels.videos) > 1:
        raise RodentsegError(f"{path} labels {len(labels.videos)} videos; evaluate one video at "
                             "a time (expected a .slp with one video)")
    rows = []
    for lf in labels.labeled_frames:
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


def read_keypoints(path: str | Path, min_likelihood: float | None = None) -> Keypoints:
    """Read keypoints, choosing the reader by suffix and, for CSV, by the first cell
    (``scorer`` means DeepLabCut).

    Raises:
        RodentsegError: missing file or unknown format.
    """
    path = Path(path)
    if not path.is_file():
        raise RodentsegError(f"keypoint file {path} does not exist (expected a DeepLabCut "
                             ".csv/.h5, a SLEAP .slp or a frame,bodypart,x,y CSV)")
    suffix = path.suffix.lower()
    if suffix == ".slp":
        return read_slp(path)
    if suffix in (".h5", ".hdf5"):
        return read_dlc_h5(path, min_likelihood)
    if suffix == ".csv":
        with path.open(newline="") as fh:
            first = next(csv.reader(fh), [""])
        if first and first[0].strip().lower() == "scorer":
            return read_dlc_csv(path, min_likelihood)
        return read_simple_csv(path)
    raise RodentsegError(f"unknown keypoint format {path.name!r}: expected .csv (DeepLabCut or "
                         "frame,bodypart,x,y), .h5 (DeepLabCut) or .slp (SLEAP)")


class KeypointContainment:
    """Fraction of human keypoints inside the masks, accumulated one frame at a time.

    ``update(masks)`` looks up the frame's points in its masks. ``compute()`` pairs each
    individual with one object id for the whole video (Hungarian assignment maximising the
    points inside, so names need not equal ids and identity swaps cost points) and reports:

    - ``inside_any``: fraction of points inside any mask;
    - ``inside_right``: fraction inside the mask of the object paired with their individual;
    - both per body part, the points, the pairing and the frames never given masks (their
      points count as outside).
    """

    def __init__(self, keypoints: Keypoints):
        self.kp = keypoints
        order = np.argsort(keypoints.frame_idx, kind="stable")
        frames, starts = np.unique(keypoints.frame_idx[order], return_index=True)
        bounds = list(starts) + [len(order)]
        self._by_frame = {int(f): order[bounds[i]:bounds[i + 1]] for i, f in enumerate(frames)}
        self.reset()

    def reset(self) -> None:
        self._hits: list[tuple[int, int]] = []  # (point index, obj_id) for each containing mask
        self._seen: set[int] = set()

    def update(self, masks: FrameMasks) -> None:
        """Record which objects of this frame contain each of the frame's keypoints."""
        idx = self._by_frame.get(int(masks.frame_idx))
        self._seen.add(int(masks.frame_idx))
        if idx is None or not len(masks):
            return
        h, w = masks.shape
        col = np.floor(self.kp.xy[idx, 0] + 0.5).astype(np.int64)
        row = np.floor(self.kp.xy[idx, 1] + 0.5).astype(np.int64)
        ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
        inside = np.zeros((len(masks), len(idx)), bool)
        inside[:, ok] = masks.masks[:, row[ok], col[ok]]
        for k, p in zip(*np.nonzero(inside)):
            self._hits.append((int(idx[p]), int(masks.obj_ids[k])))

    def compute(self) -> dict:
        kp, n = self.kp, len(self.kp)
        inds = sorted(set(kp.individual))
        objs = sorted({o for _, o in self._hits})
        counts = np.zeros((len(inds), len(objs)), np.int64)
        ind_pos = {v: i for i, v in enumerate(inds)}
        obj_pos = {v: i for i, v in enumerate(objs)}
        for p, o in set(self._hits):
            counts[ind_pos[kp.individual[p]], obj_pos[o]] += 1
        pairing = {}
        if counts.size:
            for r, c in zip(*linear_sum_assignment(counts, maximize=True)):
                if counts[r, c] > 0:
                    pairing[inds[r]] = objs[c]
        any_in = np.zeros(n, bool)
        right_in = np.zeros(n, bool)
        for p, o in self._hits:
            any_in[p] = True
            right_in[p] |= pairing.get(kp.individual[p]) == o
        parts = {}
        for part in sorted(set(kp.bodypart)):
            sel = kp.bodypart == part
            parts[part] = {"points": int(sel.sum()), "inside_any": int(any_in[sel].sum()),
                           "inside_right": int(right_in[sel].sum())}
        missing = sorted(set(self._by_frame) - self._seen)
        return {"points": n, "inside_any": float(any_in.mean()) if n else math.nan,
                "inside_right": float(right_in.mean()) if n else math.nan,
                "inside_any_count": int(any_in.sum()), "inside_right_count": int(right_in.sum()),
                "per_bodypart": parts, "pairing": {k: int(v) for k, v in pairing.items()},
                "frames_without_masks": len(missing)}
