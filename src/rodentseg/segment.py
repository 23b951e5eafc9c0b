"""``rodentseg segment``: video in, per-animal masks, identities, tables and an overlay out.

For a video ``VIDEO`` and an output folder ``OUT`` the result is ``OUT/<video stem>/``:

- ``masks/NNNNNN.png``: 8-bit label image per frame, pixel = ``track_id`` (0 = background);
- ``masks.json``: the same masks as COCO RLE, ``image_id`` = frame index, ``track_id`` per
  annotation;
- ``tracks.csv``: one row per animal per frame (``frame_idx, time_s, track_id, area_px, cx, cy,
  x0, y0, x1, y1, score``; pixels, box ``xyxy`` with x1/y1 exclusive, time = frame_idx / fps);
- ``overlay.mp4``: the video with coloured masks and ids;
- ``run.json``: version, model and weights hash, video sha256, fps, frame count, options, timings.

Everything is written into ``OUT/.<stem>.partial/`` and renamed to ``OUT/<stem>/`` only when
complete. A run that was killed leaves only the partial folder, which the next run replaces;
videos whose finished output matches (same video hash, model weights and options) are skipped.
Memory stays constant: frames are decoded, segmented and written batch by batch.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rodentseg import __version__
from rodentseg.errors import RodentsegError
from rodentseg.io.masks import CocoWriter, write_label_png
from rodentseg.io.video import VideoWriter, probe, read_frames
from rodentseg.models import Segmenter, load_model
from rodentseg.models.segmenter import sha256_file
from rodentseg.overlay import draw_masks
from rodentseg.track.instances import split_instances
from rodentseg.track.tracker import Tracker
from rodentseg.types import FrameMasks

TRACK_COLUMNS = ["frame_idx", "time_s", "track_id", "area_px", "cx", "cy",
                 "x0", "y0", "x1", "y1", "score"]


@dataclass(frozen=True)
class SegmentOptions:
    """Options of a segment run (all recorded in ``run.json``).

    Attributes:
        animals: known number of animals, or None to keep every animal found.
        batch_size: frames per model call.
        min_area: smallest animal in pixels (smaller specks join a neighbour or are dropped).
        overlay: write ``overlay.mp4``.
    """

    animals: int | None = None
    batch_size: int = 8
    min_area: int = 30
    overlay: bool = True

    def __post_init__(self):
        if self.animals is not None and not 1 <= self.animals <= 255:
            raise RodentsegError(f"--animals must be between 1 and 255, got {self.animals}")
        if self.batch_size < 1:
            raise RodentsegError(f"--batch-size must be >= 1, got {self.batch_size}")


def _frame_rows(fm: FrameMasks, fps: float) -> list[list]:
    rows = []
    for oid, m, s in zip(fm.obj_ids, fm.masks, fm.scores):
        ys, xs = np.nonzero(m)
        rows.append([fm.frame_idx, round(fm.frame_idx / fps, 4), int(oid), len(xs),
                     round(float(xs.mean()), 2), round(float(ys.mean()), 2), int(xs.min()),
                     int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, round(float(s), 4)])
    return rows


def _check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe_file = out / f".rodentseg-write-test-{os.getpid()}"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as e:
        raise RodentsegError(
            f"cannot write to output directory {out}: {e.strerror or e}; "
            "expected a directory you can create and write in"
        ) from None


def _run_signature(video_sha: str, model: Segmenter, opts: SegmentOptions) -> dict:
    return {"video_sha256": video_sha, "weights_sha256": model.weights_sha256,
            "options": asdict(opts)}


def _matches(run_json: Path, signature: dict) -> bool:
    try:
        done = json.loads(run_json.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return all(done.get(k) == v for k, v in signature.items())


def segment_video(video: str | Path, out: str | Path, model: Segmenter,
                  opts: SegmentOptions = SegmentOptions(), overwrite: bool = False,
                  progress: bool = True, on_batch: Callable[[int], None] | None = None) -> Path:
    """Segment and track every animal of one video; see the module docstring for the outputs.

    Args:
        video: path of a video FFmpeg reads.
        out: parent output folder; results go to ``out/<video stem>/``.
        model: a loaded segmenter (:func:`rodentseg.models.load_model`).
        opts: run options.
        overwrite: replace a finished result made with other options or weights.
        progress: show a progress bar (frames/s, ETA) on stderr.
        on_batch: called with the number of frames done after each batch (benchmarks).

    Returns:
        The result folder.

    Raises:
        RodentsegError: bad video (missing, not a video, corrupt, truncated, no frames), an
            output folder that cannot be written, or a finished result from a different run
            without ``overwrite``. Nothing under ``out/<stem>/`` changes when it is raised.
    """
    video, out = Path(video), Path(out)
    t_start = time.perf_counter()
    info = probe(video)
    _check_writable(out)
    final = out / video.stem
    signature = _run_signature(sha256_file(video), model, opts)
    if final.exists():
        if _matches(final / "run.json", signature):
            if progress:
                print(f"{video}: already done in {final} (same video, model and options); skipped")
            return final
        if not overwrite:
            raise RodentsegError(
                f"{final} already holds a result of another run (different video, model or "
                "options); pass --overwrite to replace it, or choose another --out"
            )
    partial = out / f".{video.stem}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "masks").mkdir(parents=True)
    tracker = Tracker(n_animals=opts.animals)
    timings = {"decode_s": 0.0, "model_s": 0.0, "instances_s": 0.0, "write_s": 0.0}
    n_frames = 0
    overlay = (VideoWriter(partial / "overlay.mp4", info.width, info.height, info.fps)
               if opts.overlay else None)
    bar = tqdm(total=info.frame_count, unit="frame", desc=video.name, disable=not progress,
               dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=1)  # writing overlaps the next batch's model call
    pending = None
    try:
        with CocoWriter(partial / "masks.json", info.width, info.height) as coco, \
                (partial / "tracks.csv").open("w", newline="") as tf:
            table = csv.writer(tf)
            table.writerow(TRACK_COLUMNS)

            def write_batch(frames: np.ndarray, results: list[FrameMasks]) -> float:
                t = time.perf_counter()
                for frame, fm in zip(frames, results):
                    write_label_png(partial / "masks" / f"{fm.frame_idx:06d}.png", fm)
                    coco.add(fm)
                    table.writerows(_frame_rows(fm, info.fps))
                    if overlay is not None:
                        overlay.write(draw_masks(frame, fm))
                return time.perf_counter() - t

            t = time.perf_counter()
            for first, frames in read_frames(video, opts.batch_size):
                t1 = time.perf_counter()
                probs = model.predict(frames)
                t2 = time.perf_counter()
                results = []
                for k, prob in enumerate(probs):
                    inst = split_instances(prob, model.pre.threshold, opts.animals,
                                           opts.min_area, priors=tracker.predicted_centroids())
                    results.append(tracker.update(first + k, inst.masks, inst.scores))
                t3 = time.perf_counter()
                if pending is not None:
                    timings["write_s"] += pending.result()
                pending = pool.submit(write_batch, frames, results)
                timings["decode_s"] += t1 - t
                timings["model_s"] += t2 - t1
                timings["instances_s"] += t3 - t2
                n_frames += len(frames)
                bar.update(len(frames))
                if on_batch is not None:
                    on_batch(n_frames)
                t = time.perf_counter()
            if pending is not None:
                timings["write_s"] += pending.result()
                pending = None
        if overlay is not None:
            overlay.close()
            overlay = None
    except BaseException:
        if pending is not None:
            pending.result()
        if overlay is not None:
            overlay.__exit__(RuntimeError, None, None)
        bar.close()
        pool.shutdown()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    bar.close()
    pool.shutdown()
    total = time.perf_counter() - t_start
    run = {
        "rodentseg_version": __version__,
        "model": model.name,
        **signature,
        "video": str(video.resolve()),
        "fps": info.fps, "frame_count": n_frames, "width": info.width, "height": info.height,
        "duration_s": round(n_frames / info.fps, 3), "codec": info.codec,
        "device": str(model.device), "python": platform.python_version(),
        "timings": {**{k: round(v, 3) for k, v in timings.items()}, "total_s": round(total, 3),
                    "fps": round(n_frames / total, 2)},
    }
    (partial / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    if final.exists():  # overwrite: swap in, then drop the old result
        old = out / f".{video.stem}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(partial, final)
        shutil.rmtree(old)
    else:
        os.replace(partial, final)
    return final


def segment_videos(videos: list[str | Path], out: str | Path, model_name: str, device: str,
                   opts: SegmentOptions, overwrite: bool = False,
                   progress: bool = True) -> tuple[list[Path], dict[str, str]]:
    """Segment several videos with one model; a failing video does not stop the others.

    Returns:
        The result folders of the videos that finished, and ``{video: error message}`` for
        those that failed.

    Raises:
        RodentsegError: the model cannot be loaded, or two videos share a file stem (their
            outputs would collide).
    """
    stems = [Path(v).stem for v in videos]
    dup = {s for s in stems if stems.count(s) > 1}
    if dup:
        raise RodentsegError(f"videos with the same file name {sorted(dup)} would write to the "
                             "same output folder; segment them into different --out folders")
    model = load_model(model_name, device)
    done, failed = [], {}
    for v in videos:
        try:
            done.append(segment_video(v, out, model, opts, overwrite, progress))
        except RodentsegError as e:
            failed[str(v)] = str(e)
    return done, failed
