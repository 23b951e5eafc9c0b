"""Centroid tracks in the files other tracking tools read: DeepLabCut CSV and SLEAP analysis HDF5.

Both writers stream: frames are added in increasing order, frames without an animal are filled
with NaN, and the file appears under its final name only when :meth:`close` succeeds (written
under a temporary name, then renamed). Each animal is one individual / track named
``track_<track_id>`` with one body part / node, ``centroid``; the confidence is the mask score.

- :class:`DlcCsvWriter`: a multi-animal DeepLabCut table (header rows ``scorer``,
  ``individuals``, ``bodyparts``, ``coords`` with ``x, y, likelihood``; one row per frame,
  row index = frame index), as DeepLabCut's ``analyze_videos`` writes for maDLC projects and
  ``movement.io.load_poses.from_dlc_file`` reads. CSV rather than ``.h5`` because the DLC
  ``.h5`` is a pandas/PyTables frame, which would make pandas and PyTables dependencies.
- :class:`SleapAnalysisWriter`: the SLEAP analysis HDF5 layout of SLEAP's
  ``sleap/info/write_tracking_h5.py`` (column-major, as MATLAB reads it): ``tracks``
  (tracks, 2, nodes, frames), ``track_occupancy`` (frames, tracks) uint8, ``point_scores``
  (tracks, nodes, frames), ``instance_scores`` and ``tracking_scores`` (tracks, frames),
  ``track_names`` and ``node_names`` (byte strings), as
  ``movement.io.load_poses.from_sleap_file`` reads. Needs ``h5py``.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from rodentseg.io.atomic import AtomicWriter

BODYPART = "centroid"


def individual_name(track_id: int) -> str:
    """Name of a track's individual in the exports (``track_3``)."""
    return f"track_{int(track_id)}"


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


class DlcCsvWriter(AtomicWriter):
    """Streams centroid tracks into a DeepLabCut multi-animal CSV.

    Args:
        path: the ``.csv`` to write.
        track_ids: the individuals, in column order.
        n_frames: rows to write (frames 0 .. n_frames - 1).
        scorer: the ``scorer`` header value.
    """

    def __init__(self, path: str | Path, track_ids: list[int], n_frames: int,
                 scorer: str = "rodentseg"):
        self.path = Path(path)
        self._ids = {int(t): k for k, t in enumerate(track_ids)}
        self._n, self._next = n_frames, 0
        self._f = _tmp(self.path).open("w", newline="")
        self._w = csv.writer(self._f)
        names = [individual_name(t) for t in track_ids]
        self._w.writerow(["scorer"] + [scorer] * 3 * len(names))
        self._w.writerow(["individuals"] + [n for n in names for _ in range(3)])
        self._w.writerow(["bodyparts"] + [BODYPART] * 3 * len(names))
        self._w.writerow(["coords"] + ["x", "y", "likelihood"] * len(names))
        self._empty = [""] * 3 * len(names)

    def add(self, frame_idx: int, points: dict[int, tuple]) -> None:
        """Write frame ``frame_idx`` (and empty rows for the frames skipped before it).

        Args:
            points: ``{track_id: (x, y, score)}``, pixels; values may be numbers or the
                strings already formatted in ``tracks.csv``.
        """
        if frame_idx < self._next or frame_idx >= self._n:
            raise ValueError(f"frame {frame_idx} out of order or beyond n_frames={self._n}")
        while self._next < frame_idx:
            self._w.writerow([self._next, *self._empty])
            self._next += 1
        row = list(self._empty)
        for tid, (x, y, s) in points.items():
            k = 3 * self._ids[int(tid)]
            row[k:k + 3] = [x, y, s]
        self._w.writerow([frame_idx, *row])
        self._next = frame_idx + 1

    def close(self) -> Path:
        """Write the remaining empty rows and move the file into place."""
        while self._next < self._n:
            self._w.writerow([self._next, *self._empty])
            self._next += 1
        self._f.close()
        os.replace(_tmp(self.path), self.path)
        return self.path

    def abort(self) -> None:
        """Drop the unfinished file."""
        self._f.close()
        _tmp(self.path).unlink(missing_ok=True)


class SleapAnalysisWriter(AtomicWriter):
    """Streams centroid tracks into a SLEAP analysis HDF5 file, ``chunk`` frames at a time.

    Args:
        path: the ``.h5`` to write.
        track_ids: the tracks, in order.
        n_frames: frames in the file (0 .. n_frames - 1).
        chunk: frames buffered in memory between writes.

    Raises:
        ImportError: h5py is not installed (``pip install h5py``).
    """

    def __init__(self, path: str | Path, track_ids: list[int], n_frames: int,
                 chunk: int = 4096):
        import h5py

        self.path = Path(path)
        self._ids = {int(t): k for k, t in enumerate(track_ids)}
        self._n, self._chunk = n_frames, chunk
        n_t = len(track_ids)
        self._h5 = h5py.File(_tmp(self.path), "w")
        opts = {"compression": "gzip", "compression_opts": 4}
        c = max(1, min(chunk, n_frames))
        self._tracks = self._h5.create_dataset("tracks", (n_t, 2, 1, n_frames), "f8",
                                               fillvalue=np.nan, chunks=(n_t, 2, 1, c), **opts)
        self._occ = self._h5.create_dataset("track_occupancy", (n_frames, n_t), "u1",
                                            fillvalue=0, chunks=(c, n_t), **opts)
        self._pscore = self._h5.create_dataset("point_scores", (n_t, 1, n_frames), "f8",
                                               fillvalue=np.nan, chunks=(n_t, 1, c), **opts)
        self._iscore = self._h5.create_dataset("instance_scores", (n_t, n_frames), "f8",
                                               fillvalue=np.nan, chunks=(n_t, c), **opts)
        self._h5.create_dataset("tracking_scores", (n_t, n_frames), "f8", fillvalue=np.nan,
                                chunks=(n_t, c), **opts)
        self._h5["track_names"] = np.array([individual_name(t).encode() for t in track_ids],
                                           dtype="S")
        self._h5["node_names"] = np.array([BODYPART.encode()], dtype="S")
        self._h5["edge_names"] = np.zeros((0, 2), dtype="S1")
        self._h5["edge_inds"] = np.zeros((0, 2), np.int64)
        self._h5.attrs["source"] = "rodentseg"
        self._start = 0
        self._new_buffer()

    def _new_buffer(self) -> None:
        n = min(self._chunk, self._n - self._start)
        self._xy = np.full((len(self._ids), 2, max(n, 0)), np.nan)
        self._score = np.full((len(self._ids), max(n, 0)), np.nan)

    def _flush(self) -> None:
        n = self._xy.shape[2]
        if n:
            sl = slice(self._start, self._start + n)
            self._tracks[:, :, 0, sl] = self._xy
            self._occ[sl] = (~np.isnan(self._xy[:, 0])).T.astype(np.uint8)
            self._pscore[:, 0, sl] = self._score
            self._iscore[:, sl] = self._score
        self._start += n
        self._new_buffer()

    def add(self, frame_idx: int, points: dict[int, tuple]) -> None:
        """Record frame ``frame_idx``: ``{track_id: (x, y, score)}`` in pixels."""
        if frame_idx < self._start or frame_idx >= self._n:
            raise ValueError(f"frame {frame_idx} out of order or beyond n_frames={self._n}")
        while frame_idx >= self._start + self._xy.shape[2]:
            self._flush()
        k = frame_idx - self._start
        for tid, (x, y, s) in points.items():
            i = self._ids[int(tid)]
            self._xy[i, :, k] = float(x), float(y)
            self._score[i, k] = float(s)

    def close(self) -> Path:
        """Write the buffered frames and move the file into place."""
        while self._start < self._n:
            self._flush()
        self._h5.close()
        os.replace(_tmp(self.path), self.path)
        return self.path

    def abort(self) -> None:
        """Drop the unfinished file."""
        self._h5.close()
        _tmp(self.path).unlink(missing_ok=True)
