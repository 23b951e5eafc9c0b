"""``rodentseg segment``: video in, per-animal masks, identities, tables and an overlay out.

For a video ``VIDEO`` and an output folder ``OUT`` the result is ``OUT/<video stem>/`` in the
layout of :mod:`rodentseg.io.results` (``masks/``, ``masks.json``, ``tracks.csv``,
``overlay.mp4``, ``run.json``), published only when complete. A killed run leaves only a partial
folder, which the next run replaces; videos whose finished output matches (same video hash,
model weights and options) are skipped. Memory stays constant: frames are decoded, segmented and
written batch by batch; decoding, and identities plus writing, run on two threads beside the
model's, and the writing of one batch overlaps the model call of the next; glibc's heap keeps its
memory between batches and gives its free pages back every :data:`TRIM_EVERY` frames
(:mod:`rodentseg.heap`). Without a known number of animals, tracks are confirmed as animals
after a probation (:mod:`rodentseg.track.probation`): short-lived specks are dropped, cut-off
tail pieces join their animal.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from rodentseg import __version__
from rodentseg.errors import RodentsegError, from_os_error
from rodentseg.heap import bound_heap, trim_heap
from rodentseg.io.results import (
    TRACK_COLUMNS,
    ResultWriter,
    discard_on_error,
    prepare,
    publish,
)
from rodentseg.io.video import probe, read_frames, sha256_input
from rodentseg.models import Segmenter, load_model
from rodentseg.track.instances import split_instances
from rodentseg.track.probation import Probation
from rodentseg.track.readouts import finalize
from rodentseg.track.tracker import Tracker

__all__ = ["TRACK_COLUMNS", "SegmentOptions", "segment_video", "segment_videos", "summary_line"]

TRIM_EVERY = 256  # frames between returns of the heap's free pages (rodentseg.heap)


@dataclass(frozen=True)
class SegmentOptions:
    """Options of a segment run (all recorded in ``run.json``).

    Attributes:
        animals: known number of animals, or None to keep every animal found.
        batch_size: frames per model call.
        min_area: smallest animal in pixels (smaller specks join a neighbour or are dropped).
        overlay: write ``overlay.mp4``.
        px_per_cm: image scale, for speeds and distances in cm (None: pixels only).
        probation: without ``animals``, frames a new track is on probation before it counts
            as an animal (found on half of them; :class:`rodentseg.track.probation.Probation`,
            which gives the trade-offs); 0 keeps every track. Ignored with ``animals``.
    """

    animals: int | None = None
    batch_size: int = 8
    min_area: int = 30
    overlay: bool = True
    px_per_cm: float | None = None
    probation: int = 30

    def __post_init__(self):
        if self.px_per_cm is not None and not self.px_per_cm > 0:
            raise RodentsegError(f"--px-per-cm must be > 0, got {self.px_per_cm}")
        if self.animals is not None and not 1 <= self.animals <= 255:
            raise RodentsegError(f"--animals must be between 1 and 255, got {self.animals}")
        if self.batch_size < 1:
            raise RodentsegError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.probation < 0:
            raise RodentsegError(f"--probation must be >= 0 frames, got {self.probation}")


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
    bound_heap()
    info = probe(video)
    signature = {"video_sha256": sha256_input(video), "weights_sha256": model.weights_sha256,
                 "options": asdict(opts)}
    partial = prepare(out, video.stem, signature, overwrite)
    if partial is None:
        if progress:
            print(f"{video}: already done in {out / video.stem} (same video, model and options); "
                  "skipped")
        return out / video.stem
    tracker = Tracker(n_animals=opts.animals)
    probation = None if opts.animals is not None else Probation(opts.probation,
                                                                 n_frames=info.frame_count)
    timings = {"decode_s": 0.0, "model_s": 0.0, "instances_s": 0.0, "write_s": 0.0}
    n_frames = 0
    batches = read_frames(video, opts.batch_size)

    def decode():
        t = time.perf_counter()
        item = next(batches, None)
        timings["decode_s"] += time.perf_counter() - t
        return item

    def identify(first, frames, probs) -> list:
        t = time.perf_counter()
        results = []  # (masks, frame) ready to write
        for k, prob in enumerate(probs):
            inst = split_instances(prob, model.pre.threshold, opts.animals, opts.min_area,
                                   priors=tracker.predicted_centroids())
            fm = tracker.update(first + k, inst.masks, inst.scores, frame=frames[k])
            if probation is None:
                results.append((fm, frames[k]))
            else:
                results += probation.push(fm, frames[k] if opts.overlay else None)
        timings["instances_s"] += time.perf_counter() - t
        return results

    def write(results) -> None:
        t = time.perf_counter()
        for fm, frame in results:
            writer.write(fm, frame)
        timings["write_s"] += time.perf_counter() - t

    with discard_on_error(partial), ResultWriter(partial, info.width, info.height, info.fps,
                                                 overlay=opts.overlay) as writer:
        bar = tqdm(total=info.frame_count, unit="frame", desc=video.name, disable=not progress,
                   dynamic_ncols=True)
        # The model runs on this thread; decoding (waited for: decoding ahead slowed the model
        # on 2 cores) and identities plus writing (which overlaps the next model call) run on
        # their own. Each thread allocates from its own malloc arena, so the blocks that
        # outlive a batch (frames, masks) do not fragment the arena the model's activations
        # reuse batch after batch (rodentseg.heap).
        reader, post = ThreadPoolExecutor(max_workers=1), ThreadPoolExecutor(max_workers=1)
        try:
            written = None
            while (item := reader.submit(decode).result()) is not None:
                first, frames = item
                t = time.perf_counter()
                probs = model.predict(frames)
                timings["model_s"] += time.perf_counter() - t
                results = post.submit(identify, first, frames, probs).result()
                del probs
                if written is not None:
                    written.result()  # done by now (same thread); raises its error
                written = post.submit(write, results)
                n_frames += len(frames)
                if n_frames // TRIM_EVERY > (n_frames - len(frames)) // TRIM_EVERY:
                    trim_heap()
                bar.update(len(frames))
                if on_batch is not None:
                    on_batch(n_frames)
            if written is not None:
                written.result()
            if probation is not None:
                write(probation.flush())
        finally:
            bar.close()
            reader.shutdown()
            post.shutdown()  # waits for a batch still being written
            batches.close()
        writer.close()
        events = tracker.events if probation is None else probation.events(tracker.events)
        finalize(partial, info.fps, info.width, info.height, px_per_cm=opts.px_per_cm,
                 events=events, n_frames=n_frames, video=video)
    total = time.perf_counter() - t_start
    run = {
        "rodentseg_version": __version__,
        "command": "segment",
        "model": model.name,
        "runtime": getattr(model, "runtime", "torch"),
        **signature,
        "video": str(video.resolve()),
        "fps": info.fps, "frame_count": n_frames, "width": info.width, "height": info.height,
        "duration_s": round(n_frames / info.fps, 3), "codec": info.codec,
        "device": str(model.device), "python": platform.python_version(),
        "animals_found": len(writer.track_ids),
        "tracks_not_animals": 0 if probation is None else probation.rejected,
        "masks_merged": 0 if probation is None else probation.merged,
        "masks_dropped": 0 if probation is None else probation.dropped,
        "timings": {**{k: round(v, 3) for k, v in timings.items()}, "total_s": round(total, 3),
                    "fps": round(n_frames / total, 2)},
    }
    return publish(partial, run)


def summary_line(folder: str | Path) -> str:
    """One line about a finished ``segment`` result, from its ``run.json``.

    For example ``mouse_video: 1 animal, 10000 frames in 331 s (30.2 frames/s) ->
    runs/demo/mouse_video``; the tracks that were not animals
    (:mod:`rodentseg.track.probation`), if any, in brackets after the animals.
    """
    folder = Path(folder)
    run = json.loads((folder / "run.json").read_text())
    n = run.get("animals_found")
    if n is None:  # a result written before run.json counted them: one summary row each
        with (folder / "summary.csv").open() as f:
            n = sum(1 for _ in f) - 1
    animals = f"{n} animal{'' if n == 1 else 's'}"
    if run.get("tracks_not_animals"):
        animals += f" ({run['tracks_not_animals']} other tracks merged or dropped)"
    frames, seconds = run["frame_count"], run["timings"]["total_s"]
    return (f"{folder.name}: {animals}, {frames} frames in {seconds:.0f} s "
            f"({frames / max(seconds, 1e-3):.1f} frames/s) -> {folder}")


def segment_videos(videos: list[str | Path], out: str | Path, model_name: str, device: str,
                   opts: SegmentOptions, overwrite: bool = False, progress: bool = True,
                   runtime: str = "torch") -> tuple[list[Path], dict[str, str]]:
    """Segment several videos with one model; a failing video does not stop the others.

    Returns:
        The result folders of the videos that finished, and ``{video: error message}`` for
        those that failed (bad input, or an ``OSError`` such as a full disk, worded by
        :func:`rodentseg.errors.from_os_error`).

    Args:
        runtime: ``torch``, or ``onnx`` / ``onnx-int8`` (onnxruntime; the [onnx] extra).

    Raises:
        RodentsegError: the model cannot be loaded, or two videos share a file stem (their
            outputs would collide).
    """
    stems = [Path(v).stem for v in videos]
    dup = {s for s in stems if stems.count(s) > 1}
    if dup:
        raise RodentsegError(f"videos with the same file name {sorted(dup)} would write to the "
                             "same output folder; segment them into different --out folders")
    if runtime == "torch":
        model = load_model(model_name, device)
    else:
        from rodentseg.export.runtime import load_runtime  # needs the [onnx] extra

        model = load_runtime(model_name, device, runtime)
    done, failed = [], {}
    for v in videos:
        try:
            done.append(segment_video(v, out, model, opts, overwrite, progress))
        except RodentsegError as e:
            failed[str(v)] = str(e)
        except OSError as e:  # a full disk, ...: the partial folder is gone, writers closed
            failed[str(v)] = str(from_os_error(e))
    return done, failed
