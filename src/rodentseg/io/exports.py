"""Centroid tracks in the files other tracking tools read: DeepLabCut CSV, SLEAP analysis HDF5,
a ``movement`` netCDF dataset and NWB (``ndx-pose``).

The DeepLabCut and SLEAP writers stream: frames are added in increasing order, frames without an
animal are filled with NaN, and the file appears under its final name only when :meth:`close`
succeeds (written under a temporary name, then renamed). Each animal is one individual / track
named ``track_<track_id>`` with one body part / node, ``centroid``; the confidence is the mask
score.

- :class:`DlcCsvWriter`: a multi-animal DeepLabCut table (header rows ``scorer``,
  ``individuals``, ``bodyparts``, ``coords`` with ``x, y, likelihood``; one row per frame,
  row index = frame index), as DeepLabCut's ``analyze_videos`` writes for maDLC projects and
  ``movement.io.load_poses.from_dlc_file`` reads. CSV rather than ``.h5`` because the DLC
  ``.h5`` is a pandas/PyTables frame, which would make pandas and PyTables dependencies.
- :class:`SleapAnalysisWriter`: the SLEAP analysis HDF5 layout of SLEAP's
  ``sleap/info/write_tracking_h5.py`` (column-major, as MATLAB reads it): ``tracks``
  (tracks, 2, nodes, frames), ``track_occupancy`` (frames, tracks) uint8, ``point_scores``
  (tracks, nodes, frames), ``instance_scores`` and ``tracking_scores`` (tracks, frames),
  ``track_names`` and ``node_names`` (byte strings), ``video_path``, ``video_ind``,
  ``labels_path`` and ``provenance``, as ``movement.io.load_poses.from_sleap_file`` and
  ``sleap_io.load_file`` read it (``sleap_io.save_file(labels, "x.slp")`` needs
  ``video_path``). Needs ``h5py``.
- :func:`write_movement_exports`: the same tracks as a ``movement`` poses dataset, saved as
  netCDF (``xarray``'s ``to_netcdf``, the format movement recommends for its datasets) and as one
  NWB file per animal (``movement.io.save_poses.to_nwb_file``: NWB allows one subject per
  file). Needs ``movement`` (``pip install "rodentseg[movement]"``).

Why the first two are written here and not with movement's or sleap-io's writers: both of those
need every frame in memory at once (movement's as an ``xarray`` dataset, sleap-io's as one
Python object per animal per frame), and movement's ``to_sleap_analysis_file`` leaves
``video_path`` empty, which is what keeps ``sleap_io`` from saving the file as ``.slp``. These
two stream and need only ``h5py``; the loaders of both libraries are the tests' reference.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from rodentseg.io.atomic import AtomicWriter

BODYPART = "centroid"


def individual_name(track_id: int) -> str:
    """Name of a track's individual in the exports (``track_3``)."""
    return f"track_{int(track_id)}"


def _tmp(path: Path) -> Path:
    """Temporary name of ``path`` (same suffix: some writers insist on theirs)."""
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


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
        video_path: the video (or folder of images) the tracks were found in, as SLEAP
            stores it (``video_path``); ``sleap_io`` opens it when it exists and still loads and
            saves the file when it does not.
        chunk: frames buffered in memory between writes.

    Raises:
        ImportError: h5py is not installed (``pip install h5py``).
        ValueError: an empty ``video_path``.
    """

    def __init__(self, path: str | Path, track_ids: list[int], n_frames: int, *,
                 video_path: str | Path, chunk: int = 4096):
        import h5py

        if not str(video_path):
            raise ValueError("SleapAnalysisWriter needs the video's path (video_path); an empty "
                             "one makes the file unsavable by sleap_io. Pass the video, folder "
                             "of images or masks the tracks come from.")

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
        self._h5["video_path"] = str(video_path)
        self._h5["video_ind"] = 0
        self._h5["labels_path"] = ""
        self._h5["provenance"] = json.dumps({"software": "rodentseg"})
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


def write_movement_exports(sleap_h5: str | Path, nc_path: str | Path, nwb_dir: str | Path,
                           fps: float, video_path: str | Path | None = None) -> list[Path]:
    """Save the tracks of a :class:`SleapAnalysisWriter` file as movement netCDF and NWB.

    The ``movement`` poses dataset (``load_poses.from_numpy``; ``position`` (time, space,
    keypoints, individuals) in pixels, ``time`` in seconds, ``confidence`` = the mask score,
    NaN where an animal was not found) goes to ``nc_path`` with ``Dataset.to_netcdf``; read it
    back with ``xarray.open_dataset``. Each individual goes to ``nwb_dir/<individual>.nwb`` with
    ``movement.io.save_poses.to_nwb_file`` (``ndx-pose`` ``PoseEstimation`` in the ``behavior``
    processing module; ``session_start_time`` is the time of writing, as rodentseg does not know
    when the session was recorded); read it back with ``load_poses.from_nwb_file``. Each file is
    written under a temporary name and renamed.

    Args:
        sleap_h5: a finished ``tracks.sleap.h5``.
        nc_path: the ``.nc`` to write.
        nwb_dir: folder for the ``.nwb`` files (created).
        fps: frame rate, frames per second.
        video_path: the source video or folder of images, recorded as the dataset's
            ``video_path`` attribute and in each NWB file as an external-file ``ImageSeries``
            ``acquisition/video`` that ``PoseEstimation.source_video`` links to; None to
            leave it out.

    Returns:
        The files written.

    Raises:
        ImportError: movement is not installed; the message gives the install command.
    """
    import datetime

    import h5py

    try:
        from movement.io import load_poses, save_poses
        from movement.io.nwb import NWBFileSaveConfig
        from pynwb import NWBHDF5IO
    except ImportError as e:
        raise ImportError(f"the netCDF and NWB exports need movement ({e}); "
                          'pip install "rodentseg[movement]"') from None
    from rodentseg import __version__

    with h5py.File(sleap_h5, "r") as f:
        tracks = f["tracks"][:]  # (tracks, 2, nodes, frames)
        scores = f["point_scores"][:]  # (tracks, nodes, frames)
        names = [n.decode() for n in f["track_names"][:]]
        nodes = [n.decode() for n in f["node_names"][:]]
    ds = load_poses.from_numpy(tracks.transpose(3, 1, 2, 0), scores.transpose(2, 1, 0),
                               individual_names=names, keypoint_names=nodes, fps=fps,
                               source_software="rodentseg")
    ds.attrs = {k: v for k, v in ds.attrs.items() if v is not None}  # netCDF has no None
    ds.attrs["source_software_version"] = __version__
    if video_path is not None:
        ds.attrs["video_path"] = str(video_path)
    nc_path, nwb_dir = Path(nc_path), Path(nwb_dir)
    ds.to_netcdf(_tmp(nc_path))
    os.replace(_tmp(nc_path), nc_path)
    written = [nc_path]

    pose_kwargs, videos = {}, {}
    for name in names:
        pose_kwargs[name] = {"scorer": "rodentseg", "source_software_version": __version__}
        if video_path is not None:  # one ImageSeries per file: an NWB object has one parent
            videos[name] = _source_video(Path(video_path), fps, ds.sizes["time"])
            pose_kwargs[name]["source_video"] = videos[name]
    config = NWBFileSaveConfig(
        nwbfile_kwargs={"session_description": "rodentseg centroid tracks",
                        "session_start_time": datetime.datetime.now(datetime.timezone.utc)},
        pose_estimation_kwargs=pose_kwargs)
    files = save_poses.to_nwb_file(ds, config)
    nwb_dir.mkdir(parents=True, exist_ok=True)
    for name, nwb in zip(names, files if isinstance(files, list) else [files]):
        if name in videos:
            nwb.add_acquisition(videos[name])
        path = nwb_dir / f"{name}.nwb"
        with NWBHDF5IO(_tmp(path), "w") as io:
            io.write(nwb)
        os.replace(_tmp(path), path)
        written.append(path)
    return written


def _source_video(video: Path, fps: float, n_frames: int):
    """An external-file ``ImageSeries`` named ``video`` for ndx-pose's ``source_video`` link:
    the video file, or each image of a folder (one frame per file)."""
    from pynwb.image import ImageSeries

    from rodentseg.io.video import image_files

    files = [str(p) for p in image_files(video)] if video.is_dir() else [str(video)]
    return ImageSeries(name="video", description="the frames the tracks were found in",
                       external_file=files, starting_frame=list(range(len(files)))
                       if video.is_dir() else [0], format="external", rate=float(fps),
                       num_samples=int(n_frames))
