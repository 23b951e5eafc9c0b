"""Memory and speed of video propagation: rodentseg's pruned streaming session against the
transformers default (whole-video) session, on the first N frames of a real video.

    python benchmarks/annotate_memory.py [--frames 30,300] [--default-frames 30] [--repeats R]
        [--image-size 1024] [--threads T]

Model: the real-size SAM 2.1-tiny architecture (``Sam2VideoConfig()`` defaults, 39.0M
parameters) with random weights, saved with ``save_pretrained`` and loaded back as users load
models. ``--image-size`` below 1024 shrinks only the input side (and the feature-map sizes
that follow from it), to make the 300-frame run affordable on a CPU; say so when quoting.

Each (mode, N) runs in its own process so that peak RSS (``ru_maxrss``) is that run's alone:

- ``streaming``: :class:`rodentseg.annotate.VideoSession` (frames decoded one at a time,
  session pruned after every frame, results on disk);
- ``default``: transformers' documented whole-video mode: every frame preprocessed into a
  ``Sam2VideoInferenceSession(video=...)``, then ``propagate_in_video_iterator``, masks
  resized to the frame as ``post_process_masks`` does.

Printed: seconds per propagated frame, peak RSS, the RSS ratio N_max / N_min per mode (memory
that does not grow with the video gives ~1.0), the speed ratio streaming / default (median of
``--repeats`` alternated runs at N_min, and the single runs), and the mean IoU of the two
modes' masks at N_min (1.0 = same masks).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

VIDEO = Path(__file__).resolve().parents[1].parent / "shared/data/tracktor-mice/mouse_video.mp4"
MOUSE = [[253.0, 221.0]]  # the tracktor mouse on frame 0 (x, y)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_model(path: Path, image_size: int) -> None:
    from transformers import Sam2VideoConfig, Sam2VideoModel

    cfg = Sam2VideoConfig()
    s = image_size
    if s != 1024:
        cfg.image_size = s
        cfg.vision_config.backbone_config.image_size = [s, s]
        cfg.vision_config.backbone_feature_sizes = [[s // 4] * 2, [s // 8] * 2, [s // 16] * 2]
        cfg.prompt_encoder_config.image_size = s
        cfg.memory_attention_rope_feat_sizes = [s // 16, s // 16]
    torch.manual_seed(0)
    model = Sam2VideoModel(cfg).eval()
    with torch.no_grad():  # report the object present (a random head says "absent" half the time)
        model.mask_decoder.pred_obj_score_head.proj_out.bias.fill_(5.0)
    model.save_pretrained(path)


def make_clip(video: Path, path: Path, n: int) -> None:
    from rodentseg.io.video import VideoWriter, read_frames

    with VideoWriter(path, 640, 480, 30, crf=18) as w:
        for first, batch in read_frames(video, 8):
            for f in batch[: max(0, n - first)]:
                w.write(f)
            if first + len(batch) >= n:
                break


def run_streaming(model_dir: Path, clip: Path, masks_out: Path | None) -> dict:
    from rodentseg.annotate import load_video_model

    model = load_video_model(str(model_dir), "cpu")
    saved = []
    with model.start(clip) as s:
        s.add_prompt(0, 1, points=MOUSE)
        t = time.perf_counter()
        n = 0
        for _, _, masks in s.propagate(0, "forward"):
            n += 1
            if masks_out is not None:
                saved.append(np.packbits(masks[0]))
        dt = time.perf_counter() - t
    if masks_out is not None:
        np.save(masks_out, np.stack(saved))
    return {"s_per_frame": dt / max(n - 1, 1), "frames": n}


def run_default(model_dir: Path, clip: Path, masks_out: Path | None) -> dict:
    import torch.nn.functional as F
    from transformers import Sam2VideoInferenceSession

    from rodentseg.annotate import load_video_model
    from rodentseg.io.video import read_frames

    model = load_video_model(str(model_dir), "cpu")
    frames = np.concatenate([b for _, b in read_frames(clip, 16)])
    h, w = frames.shape[1:3]
    pixels = torch.cat([model.pre.pixel_values(frames[i:i + 16]) for i in range(0, len(frames),
                                                                                 16)])
    del frames
    s = Sam2VideoInferenceSession(video=pixels, video_height=h, video_width=w,
                                  dtype=torch.float32)
    del pixels
    i = s.obj_id_to_idx(1)
    s.add_point_inputs(i, 0, {"point_coords": model.pre.points(np.array([MOUSE]), h, w)[None],
                              "point_labels": torch.ones(1, 1, 1, dtype=torch.int32)})
    s.obj_with_new_inputs = [1]
    saved = []
    with torch.inference_mode():
        out = model.model(inference_session=s, frame_idx=0)
        t = time.perf_counter()
        n = 0
        for out in model.model.propagate_in_video_iterator(s, start_frame_idx=0):
            m = F.interpolate(out.pred_masks.float(), (h, w), mode="bilinear",
                              align_corners=False)[0, 0] > 0
            n += 1
            if masks_out is not None:
                saved.append(np.packbits(m.numpy()))
        dt = time.perf_counter() - t
    if masks_out is not None:
        np.save(masks_out, np.stack(saved))
    return {"s_per_frame": dt / max(n - 1, 1), "frames": n}


def child(args) -> None:
    torch.set_num_threads(args.threads) if args.threads else None
    fn = run_streaming if args.mode == "streaming" else run_default
    res = fn(Path(args.model_dir), Path(args.clip), Path(args.masks) if args.masks else None)
    res["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=VIDEO)
    ap.add_argument("--frames", default="30,300", help="comma-separated clip lengths")
    ap.add_argument("--image-size", type=int, default=1024, help="model input side (px)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--modes", default="streaming,default")
    ap.add_argument("--default-frames", default=None,
                    help="clip lengths for the default mode only (default: --frames); the "
                         "default session's cost at the longest clip is the slowest part")
    ap.add_argument("--repeats", type=int, default=3,
                    help="alternated timing runs of both modes at the smallest frame count")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    ap.add_argument("--masks", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    counts = sorted(int(x) for x in args.frames.split(","))
    modes = args.modes.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_model(tmp / "model", args.image_size)

        def run(mode: str, n: int, masks: bool = False) -> dict:
            cmd = [sys.executable, __file__, "--child", "--mode", mode, "--model-dir",
                   str(tmp / "model"), "--clip", str(tmp / f"clip{n}.mp4"),
                   "--threads", str(args.threads)]
            if masks:
                cmd += ["--masks", str(tmp / f"{mode}.npy")]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{mode} {n} failed:\n{out.stderr[-3000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{mode:9s} {n:4d} frames: {r['s_per_frame']:.3f} s/frame, "
                  f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
            return r

        default_counts = (counts if args.default_frames is None
                          else sorted(int(x) for x in args.default_frames.split(",")))
        results: dict[tuple[str, int], dict] = {}
        for n in sorted(set(counts) | set(default_counts)):
            make_clip(args.video, tmp / f"clip{n}.mp4", n)
            for mode in modes:
                if mode != "default" or n in default_counts:
                    results[mode, n] = run(mode, n, masks=n == counts[0])
        lo, hi = counts[0], counts[-1]
        speed: dict[str, list[float]] = {m: [] for m in modes}
        for k in range(args.repeats):  # alternate the modes: load on a shared machine drifts
            for mode in (modes if k % 2 == 0 else modes[::-1]):
                speed[mode].append(run(mode, lo)["s_per_frame"])
        print(f"\nSAM 2.1-tiny architecture, random weights, input {args.image_size} px, "
              f"torch threads {args.threads or torch.get_num_threads()}")
        for mode in modes:
            ns = sorted(n for m, n in results if m == mode)
            a, b = results[mode, ns[0]]["peak_rss_mb"], results[mode, ns[-1]]["peak_rss_mb"]
            if len(ns) == 1:
                print(f"{mode:9s} peak RSS {a:.0f} MB at {ns[0]} frames (run at no other length)")
            else:
                print(f"{mode:9s} peak RSS {a:.0f} MB at {ns[0]} frames, {b:.0f} MB at {ns[-1]}: "
                      f"ratio {b / a:.3f}")
        if len(modes) == 2:
            med = {m: float(np.median(v)) for m, v in speed.items()} if args.repeats else {}
            if med:
                print(f"s/frame at {lo} frames, median of {args.repeats} alternated runs: "
                      f"streaming {med['streaming']:.3f} vs default {med['default']:.3f} "
                      f"(ratio {med['streaming'] / med['default']:.3f})")
            for n in counts:
                if ("default", n) not in results:
                    continue
                ours, ref = (results[m, n]["s_per_frame"] for m in ("streaming", "default"))
                print(f"s/frame at {n} frames, single runs: streaming {ours:.3f} vs default "
                      f"{ref:.3f} (ratio {ours / ref:.3f})")
            a = np.unpackbits(np.load(tmp / "streaming.npy"), axis=1).astype(bool)
            b = np.unpackbits(np.load(tmp / "default.npy"), axis=1).astype(bool)
            inter, union = (a & b).sum(1), (a | b).sum(1)
            iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
            print(f"mask IoU streaming vs default over {lo} frames: mean {iou.mean():.4f}, "
                  f"min {iou.min():.4f}, identical frames {(a == b).all(1).sum()}/{len(a)}")


if __name__ == "__main__":
    main()
