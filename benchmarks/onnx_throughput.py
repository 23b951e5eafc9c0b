"""Segmenter throughput on CPU: torch vs onnxruntime fp32 vs onnxruntime INT8, in one run.

    python benchmarks/onnx_throughput.py [--model rodentseg-tiny] [--video V] [--frames 64]
                                         [--threads 1] [--rounds 5] [--batch-size 8]

Exports the model to ONNX (fp32), quantizes it to INT8 twice (static, calibrated on 16 frames
from later in the video; dynamic, no data), then times ``predict`` of the four runtimes on the
same decoded frames, alternating runtimes within each round so that a change in machine load
hits them all alike. Prints for each runtime the median frames/s over the rounds, the ratio to
torch eager (the baseline measured in this run), the model file size, and the agreement with
torch (max |difference| of probabilities, pooled mask IoU). Decoding and writing are not timed:
this is the model call alone (``benchmarks/segment_throughput.py`` times the whole pipeline).

With ``--memory`` it also runs each runtime alone in a fresh process and prints its peak
resident memory: after the imports (torch, onnxruntime, rodentseg), and after loading the model
and segmenting three batches (the difference is what the model and its activations add).
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rodentseg.export import OnnxSegmenter, export_segmenter, parity, quantize_int8
from rodentseg.export.bundle import read_first_frames
from rodentseg.io.video import read_frames
from rodentseg.models import load_model

VIDEO = Path(__file__).resolve().parents[1].parent / "shared/data/tracktor-mice/mouse_video.mp4"


def frames_from(video: Path, start: int, n: int):
    """Frames ``start`` .. ``start + n - 1`` of the video, (n, H, W, 3) uint8."""
    import numpy as np

    got = []
    for first, batch in read_frames(video, 16):
        if first + len(batch) > start:
            got.append(batch[max(0, start - first):])
        if sum(len(b) for b in got) >= n:
            break
    return np.concatenate(got)[:n]


def _peak_mb() -> float:
    """Peak RSS of this process in MB (VmHWM: unlike ru_maxrss, it restarts at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_peak_rss(kind: str, path: str, pre, frames, threads: int,
                    bs: int) -> tuple[float, float]:
    """In a fresh process: (peak RSS MB after imports, peak RSS MB after 3 batches)."""
    import onnxruntime  # noqa: F401  (both runtimes import it: the same baseline)

    torch.set_num_threads(threads)
    base = _peak_mb()
    if kind == "torch":
        m = load_model(path, "cpu")
    else:
        m = OnnxSegmenter(Path(path), pre, kind, threads=threads)
    for _ in range(3):
        m.predict(frames[:bs])
    return base, _peak_mb()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="rodentseg-tiny", help="registry name or model folder")
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--frames", type=int, default=64, help="frames timed per round")
    ap.add_argument("--threads", type=int, default=1, help="threads of every runtime")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--memory", action="store_true",
                    help="also measure each runtime's peak RSS in a fresh process")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    frames = read_first_frames(args.video, args.frames)
    calib = frames_from(args.video, 1000, 16)
    model = load_model(args.model, "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = export_segmenter(model, Path(tmp) / "model.onnx")
        static_path, dynamic_path = Path(tmp) / "static.onnx", Path(tmp) / "dynamic.onnx"
        quantize_int8(fp32_path, static_path, model.pre, calib)
        quantize_int8(fp32_path, dynamic_path, model.pre, None)
        runtimes = {
            "torch eager fp32": (model, Path(model.path) / "model.safetensors"),
            "onnxruntime fp32": (OnnxSegmenter(fp32_path, model.pre, "fp32",
                                               threads=args.threads), fp32_path),
            "onnxruntime int8 static": (OnnxSegmenter(static_path, model.pre, "static",
                                                      threads=args.threads), static_path),
            "onnxruntime int8 dynamic": (OnnxSegmenter(dynamic_path, model.pre, "dynamic",
                                                       threads=args.threads), dynamic_path),
        }
        bs = args.batch_size
        for m, _ in runtimes.values():  # warm-up (allocations, kernel selection)
            m.predict(frames[:bs])
        fps: dict[str, list[float]] = {k: [] for k in runtimes}
        for _ in range(args.rounds):
            for name, (m, _) in runtimes.items():
                t = time.perf_counter()
                for i in range(0, len(frames), bs):
                    m.predict(frames[i:i + bs])
                fps[name].append(len(frames) / (time.perf_counter() - t))
        h, w = frames.shape[1:3]
        print(f"{args.model} on CPU, {len(frames)} frames {w}x{h} of {args.video.name}, batch "
              f"{bs}, {args.threads} thread(s), median of {args.rounds} alternated rounds")
        print(f"{'runtime':<26} {'frames/s':>9} {'x torch':>8} {'file MB':>8}  agreement with "
              "torch")
        base = statistics.median(fps["torch eager fp32"])
        for name, (m, path) in runtimes.items():
            med = statistics.median(fps[name])
            agree = "baseline" if m is model else str(parity(model, m, frames, bs))
            print(f"{name:<26} {med:9.2f} {med / base:8.2f} {path.stat().st_size / 1e6:8.2f}  "
                  f"{agree}")
        if args.memory:
            ctx = multiprocessing.get_context("spawn")
            print(f"peak resident memory, each runtime alone in a fresh process, batch {bs} of "
                  f"{w}x{h}:")
            print(f"{'runtime':<26} {'imports MB':>11} {'+ model, 3 batches MB':>22}")
            for name, (m, path) in runtimes.items():
                kind = "torch" if m is model else "onnx"
                src = args.model if kind == "torch" else str(path)
                with ctx.Pool(1) as pool:
                    base_mb, peak_mb = pool.apply(_child_peak_rss,
                                                  (kind, src, model.pre, frames[:bs], args.threads,
                                                   bs))
                print(f"{name:<26} {base_mb:11.0f} {peak_mb - base_mb:22.0f}")


if __name__ == "__main__":
    main()
