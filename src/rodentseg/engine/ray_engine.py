"""Segment many videos on a Ray cluster (``rodentseg segment --engine ray``): one task per video.

Scale comes from Ray (https://docs.ray.io): its scheduler places one task per video on any node
with the CPUs/GPUs the task asks for, retries tasks whose worker died (node lost, killed for
memory) or that raised an unexpected exception, up to ``retries`` times (``max_retries`` and
``retry_exceptions`` of ``ray.remote``), and this module only submits, waits and reports.

Each task calls :func:`rodentseg.segment.segment_video`, the function the local engine runs, so
the result folders are the same files in the same layout, written atomically. A video whose
finished ``run.json`` matches (same video hash, weights and options) is skipped inside its task.
A bad video (missing, corrupt, truncated: a ``RodentsegError``) fails at once, is not retried,
and does not stop the others. Each worker process loads the model once and reuses it for every
task it runs.

Every node must see the videos, the output folder and a model directory (if one is named) at the
same paths (a shared file system), and have rodentseg installed (registry models ship with it).

Not done: splitting one long video into chunks that run on several nodes (identities would then
need stitching across chunk borders); one video is one task.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from rodentseg.errors import RodentsegError

#: Models loaded in this worker process: (model, device, runtime, threads) -> segmenter.
_MODELS: dict[tuple, object] = {}


@dataclass
class VideoResult:
    """The outcome of one video's task.

    Attributes:
        video: the video path as given.
        status: ``done`` (segmented now), ``skipped`` (an identical finished result existed)
            or ``failed``.
        folder: the result folder (None when failed).
        frames: frames in the result (0 when failed).
        seconds: wall time of the task (model loading excluded), 0 when failed.
        error: the error message when failed.
        host: the machine that ran the task.
    """

    video: str
    status: str
    folder: str | None = None
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    host: str = ""


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def segment_task(video: str, out: str, model_name: str, device: str, opts, overwrite: bool,
                 runtime: str, threads: int) -> VideoResult:
    """Body of one Ray task (also callable directly): segment one video into ``out``.

    ``RodentsegError`` (bad input) is returned as a failed result so that Ray does not retry
    it; any other exception propagates so that Ray retries the task.
    """
    import json

    import torch

    from rodentseg.export.runtime import load_runtime
    from rodentseg.segment import segment_video

    torch.set_num_threads(threads)
    host = socket.gethostname()
    try:
        key = (model_name, device, runtime, threads)
        if key not in _MODELS:
            _MODELS[key] = load_runtime(model_name, device, runtime, threads)
        run_json = Path(out) / Path(video).stem / "run.json"
        before = _stamp(run_json)
        t = time.perf_counter()
        folder = segment_video(video, out, _MODELS[key], opts, overwrite, progress=False)
        seconds = time.perf_counter() - t
    except RodentsegError as e:
        return VideoResult(video, "failed", error=str(e), host=host)
    skipped = before is not None and _stamp(run_json) == before
    frames = json.loads((folder / "run.json").read_text()).get("frame_count", 0)
    return VideoResult(video, "skipped" if skipped else "done", str(folder), frames,
                       round(seconds, 2), host=host)


def _resources(ray, device: str, gpus_per_task: float | None) -> tuple[float, str]:
    """(GPUs per task, device string inside the task) for ``device``."""
    if device.startswith("cuda:"):
        raise RodentsegError(f"--device {device}: with --engine ray, Ray assigns a GPU to each "
                             "task; use --device cuda (or auto)")
    if device not in ("auto", "cpu", "cuda"):
        raise RodentsegError(f"--device must be auto, cpu or cuda; got {device!r}")
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    if device == "cpu" or (device == "auto" and not cluster_gpus):
        return 0.0, "cpu"
    if not cluster_gpus:
        raise RodentsegError("--device cuda asked for GPUs, but the Ray cluster has none "
                             f"(resources: {ray.cluster_resources()}); use --device cpu or auto")
    return (1.0 if gpus_per_task is None else gpus_per_task), "cuda"


def _message(ray, err: Exception, attempts: int) -> str:
    cause = getattr(err, "cause", None)
    if isinstance(err, ray.exceptions.RayTaskError) and cause is not None:
        text = f"{type(cause).__name__}: {cause}"
    else:
        text = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err) else ''}"
    return f"failed after {attempts} attempt(s): {text}"


def segment_videos_ray(videos: list[str | Path], out: str | Path, model_name: str, device: str,
                       opts, overwrite: bool = False, address: str | None = None,
                       retries: int = 2, runtime: str = "torch", progress: bool = True,
                       cpus_per_task: int = 1, gpus_per_task: float | None = None,
                       summary: bool = True) -> tuple[list[Path], dict[str, str]]:
    """Segment videos as Ray tasks; mirrors :func:`rodentseg.segment.segment_videos`.

    Args:
        videos: video files (see :func:`rodentseg.engine.expand_videos` for DIR_OR_GLOB).
        out: parent output folder; results go to ``out/<video stem>/``.
        model_name: registry name or model directory (on a shared path for a cluster).
        device: ``auto`` (a GPU per task when the cluster has GPUs), ``cpu`` or ``cuda``.
        opts: :class:`rodentseg.segment.SegmentOptions`.
        overwrite: replace finished results made with other options or weights.
        address: Ray cluster address (``auto``: the running cluster, ``ray://host:10001``);
            None: an already initialised Ray, else a new local Ray on this machine.
        retries: extra attempts for a task whose worker died or that raised an unexpected
            error (bad-input errors are not retried).
        runtime: ``torch``, ``onnx`` or ``onnx-int8`` (:func:`rodentseg.export.load_runtime`).
        progress: a progress bar over videos.
        cpus_per_task: CPUs requested per task (also its torch / onnxruntime threads).
        gpus_per_task: GPUs per task when on GPU (default 1; a fraction such as 0.5 puts two
            tasks on one GPU, which the small default model allows).
        summary: print a table of every video's outcome at the end.

    Returns:
        The result folders of the videos that finished (done or skipped), in input order, and
        ``{video: error message}`` for those that failed.

    Raises:
        RodentsegError: Ray is not installed, two videos share a file stem, the model cannot
            be loaded, or the device cannot be served by the cluster.
    """
    videos = [str(v) for v in videos]
    stems = [Path(v).stem for v in videos]
    dup = sorted({s for s in stems if stems.count(s) > 1})
    if dup:
        raise RodentsegError(f"videos with the same file name {dup} would write to the same "
                             "output folder; segment them into different --out folders")
    if retries < 0:
        raise RodentsegError(f"--retries must be >= 0, got {retries}")
    try:
        import ray
    except ImportError:
        raise RodentsegError("--engine ray needs Ray: pip install 'rodentseg[ray]' (or use the "
                             "default --engine local)") from None
    from rodentseg.export.runtime import load_runtime

    load_runtime(model_name, "cpu", runtime)  # fail fast on a bad model; fills the ONNX cache
    out = str(Path(out).resolve())
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, logging_level="ERROR")
    try:
        gpus, task_device = _resources(ray, device, gpus_per_task)
        task = ray.remote(segment_task).options(num_cpus=cpus_per_task, num_gpus=gpus,
                                                max_retries=retries, retry_exceptions=True)
        refs = {task.remote(v, out, model_name, task_device, opts, overwrite, runtime,
                            cpus_per_task): v for v in videos}
        results: dict[str, VideoResult] = {}
        bar = tqdm(total=len(videos), unit="video", desc="ray", disable=not progress,
                   dynamic_ncols=True)
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                v = refs[ready[0]]
                try:
                    results[v] = ray.get(ready[0])
                except ray.exceptions.RayError as e:
                    results[v] = VideoResult(v, "failed", error=_message(ray, e, retries + 1))
                bar.update(1)
                bar.set_postfix(failed=sum(r.status == "failed" for r in results.values()))
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        finally:
            bar.close()
    finally:
        if started:
            ray.shutdown()
    ordered = [results[v] for v in videos]
    if summary:
        print(summary_table(ordered))
    done = [Path(r.folder) for r in ordered if r.status != "failed"]
    return done, {r.video: r.error for r in ordered if r.status == "failed"}


def summary_table(results: list[VideoResult]) -> str:
    """A plain-text table: one row per video (status, frames, seconds, fps, error), then totals."""
    name_w = max([len(Path(r.video).name) for r in results] + [5])
    lines = [f"{'video':<{name_w}}  {'status':<7}  {'frames':>7}  {'seconds':>8}  {'fps':>6}  "
             "host / error"]
    for r in results:
        fps = f"{r.frames / r.seconds:6.1f}" if r.status == "done" and r.seconds else f"{'-':>6}"
        sec = f"{r.seconds:8.1f}" if r.status == "done" else f"{'-':>8}"
        frames = f"{r.frames:7d}" if r.status != "failed" else f"{'-':>7}"
        tail = r.error if r.status == "failed" else r.host
        lines.append(f"{Path(r.video).name:<{name_w}}  {r.status:<7}  {frames}  {sec}  {fps}  "
                     f"{tail}")
    count = {s: sum(r.status == s for r in results) for s in ("done", "skipped", "failed")}
    lines.append(f"{len(results)} videos: {count['done']} done, {count['skipped']} skipped, "
                 f"{count['failed']} failed")
    return "\n".join(lines)

