"""End-to-end `rodentseg segment` throughput and memory, against decode-only, in one run.

    python benchmarks/segment_throughput.py [--video V] [--frames N] [--threads T]
        [--runtime torch|onnx|onnx-int8] [--overlay]

Runs the default model end to end on CPU (decode, model, identities, writing the mask PNGs,
RLE, tables and run.json; with ``--overlay`` also overlay.mp4, as `rodentseg segment` does
unless given ``--no-overlay``) over the video, then decodes the same frames alone, and prints
both frame rates and their ratio, the time split by stage, and peak RSS after 1,000 frames and
at the end (ratio <= 1.05 means memory does not grow with the video).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from rodentseg.export.runtime import load_runtime
from rodentseg.heap import bound_heap
from rodentseg.io.video import VideoWriter, read_frames
from rodentseg.segment import SegmentOptions, segment_video

VIDEO = Path(__file__).resolve().parents[1].parent / "shared/data/tracktor-mice/mouse_video.mp4"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--frames", type=int, default=0, help="first N frames only (0 = all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--overlay", action="store_true", help="also draw and encode overlay.mp4")
    ap.add_argument("--runtime", default="torch", choices=["torch", "onnx", "onnx-int8"],
                    help="as `rodentseg segment --runtime` (onnx needs the [onnx] extra)")
    args = ap.parse_args()
    bound_heap()  # as the `rodentseg` CLI does for every command
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        video = args.video
        if args.frames:
            video = Path(tmp) / f"{args.video.stem}_first{args.frames}.mp4"
            with VideoWriter(video, 640, 480, 30, crf=18) as w:
                for first, batch in read_frames(args.video, 8):
                    for f in batch[: max(0, args.frames - first)]:
                        w.write(f)
                    if first + len(batch) >= args.frames:
                        break
        model = load_runtime("rodentseg-tiny", "cpu", args.runtime)
        marks: dict[int, float] = {}

        def on_batch(n: int) -> None:
            if n >= 1000 and 1000 not in marks:
                marks[1000] = peak_rss_mb()

        t = time.perf_counter()
        out = segment_video(video, Path(tmp) / "out", model,
                            SegmentOptions(batch_size=args.batch_size, overlay=args.overlay),
                            progress=True, on_batch=on_batch)
        e2e_s = time.perf_counter() - t
        rss_end = peak_rss_mb()
        run = json.loads((out / "run.json").read_text())
        n = run["frame_count"]
        t = time.perf_counter()
        m = sum(len(b) for _, b in read_frames(video, args.batch_size))
        decode_s = time.perf_counter() - t
        assert m == n
    print(f"video: {args.video.name}, {n} frames {run['width']}x{run['height']}, "
          f"runtime {args.runtime}, torch threads {torch.get_num_threads()}, "
          f"batch {args.batch_size}")
    print("writes           : masks/*.png, masks.json, tracks.csv, run.json"
          + (", overlay.mp4" if args.overlay else " (no overlay.mp4; --overlay adds it)"))
    print(f"decode only      : {n / decode_s:8.1f} frames/s")
    print(f"end to end       : {n / e2e_s:8.1f} frames/s  (ratio to decode-only "
          f"{(n / e2e_s) / (n / decode_s):.3f})")
    tm = run["timings"]
    print("time per frame   : " + ", ".join(
        f"{k[:-2]} {1000 * tm[k] / n:.1f} ms" for k in ("decode_s", "model_s", "instances_s",
                                                        "write_s")) + " (write overlaps model)")
    if 1000 in marks:
        print(f"peak RSS         : {marks[1000]:.0f} MB after 1000 frames, {rss_end:.0f} MB after "
              f"{n} frames, ratio {rss_end / marks[1000]:.3f}")
    else:
        print(f"peak RSS         : {rss_end:.0f} MB after {n} frames (< 1000 frames: no ratio)")


if __name__ == "__main__":
    sys.exit(main())
