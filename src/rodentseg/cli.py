"""The ``rodentseg`` command line: ``segment``, ``track``, ``annotate``, ``evaluate``, ``train``,
``frames``, ``export``, ``app``, ``models``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rodentseg import __version__
from rodentseg.errors import RodentsegError, from_os_error
from rodentseg.heap import bound_heap

#: Modules that each add one subcommand with ``add_parser(subparsers)``.
SUBCOMMAND_MODULES = ["rodentseg.evaluate.cli", "rodentseg.track.cli", "rodentseg.annotate.cli",
                      "rodentseg.export.cli", "rodentseg.app.cli",
                      "rodentseg.train.frames_cli", "rodentseg.annotate.autolabel_run",
                      "rodentseg.track.summarize"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_segment(sub) -> None:
    from rodentseg import DEFAULT_MODEL

    p = sub.add_parser("segment", help="segment and track every animal in videos",
                       description="Write per-frame masks, identities, tables and an overlay "
                                   "for each VIDEO into OUT/<video stem>/.")
    p.add_argument("videos", nargs="+", metavar="VIDEO_DIR_OR_GLOB",
                   help="video files (any FFmpeg format), folders of videos or images, or "
                        "quoted glob patterns")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"registry name or model directory (default {DEFAULT_MODEL})")
    p.add_argument("--animals", type=_positive_int, default=None,
                   help="number of animals in the video; keeps exactly that many identities")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default auto)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="frames per model call")
    p.add_argument("--min-area", type=_positive_int, default=30,
                   help="smallest animal in pixels (default 30)")
    p.add_argument("--probation", type=int, default=30, metavar="FRAMES",
                   help="without --animals: a new track counts as an animal once found on half "
                        "of its first FRAMES frames; shorter-lived ones join their animal "
                        "(tail tips) or are dropped (default 30; 0 keeps every track)")
    p.add_argument("--no-overlay", action="store_true", help="do not write overlay.mp4")
    p.add_argument("--px-per-cm", type=float, default=None,
                   help="image scale in pixels per cm, for speeds and distances in cm")
    p.add_argument("--overwrite", action="store_true",
                   help="replace finished results made with other options or weights")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--runtime", choices=["torch", "onnx", "onnx-int8"], default="torch",
                   help="torch, or onnxruntime (needs the [onnx] extra; see `rodentseg export`)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local (default) or ray: one Ray task per video (the [ray] extra)")
    p.add_argument("--address", default=None,
                   help="with --engine ray: cluster address (auto, ray://host:10001); "
                        "default a local Ray")
    p.add_argument("--retries", type=int, default=2,
                   help="with --engine ray: retries of a task that crashed (default 2)")
    p.add_argument("--eval", metavar="GT", type=Path,
                   help="after the run, score the masks against GT (label PNG folder or COCO "
                        "JSON) into OUT/<stem>/eval/ (one video only)")
    p.add_argument("--eval-only", action="store_true",
                   help="do not segment: re-score the existing OUT/<stem>/ against --eval GT")
    p.add_argument("--keypoints", type=Path,
                   help="with --eval: human keypoints (DeepLabCut, SLEAP or frame,bodypart,x,y "
                        "CSV) to check the masks against")
    p.set_defaults(func=_run_segment)


def _run_segment(args) -> int:
    from rodentseg.engine import expand_videos
    from rodentseg.segment import SegmentOptions, segment_videos, summary_line

    args.videos = expand_videos(args.videos)
    if (args.eval or args.eval_only) and len(args.videos) != 1:
        raise RodentsegError(f"--eval scores one video; got {len(args.videos)} videos")
    if args.eval_only and not (args.eval or args.keypoints):
        raise RodentsegError("--eval-only needs --eval GT (or --keypoints) to score against")
    if args.eval_only:
        result = args.out / Path(args.videos[0]).stem
        if not (result / "run.json").is_file():
            raise RodentsegError(f"--eval-only: {result} holds no finished result; run "
                                 "`rodentseg segment` first (without --eval-only)")
        return _evaluate_result(result, args)
    opts = SegmentOptions(animals=args.animals, batch_size=args.batch_size,
                          min_area=args.min_area, overlay=not args.no_overlay,
                          px_per_cm=args.px_per_cm, probation=args.probation)
    if args.engine == "ray":
        from rodentseg.engine import segment_videos_ray

        done, failed = segment_videos_ray(args.videos, args.out, args.model, args.device, opts,
                                          overwrite=args.overwrite, address=args.address,
                                          retries=args.retries, runtime=args.runtime,
                                          progress=not args.quiet)
    else:
        done, failed = segment_videos(args.videos, args.out, args.model, args.device, opts,
                                      overwrite=args.overwrite, progress=not args.quiet,
                                      runtime=args.runtime)
    for d in done:
        print(summary_line(d))  # also with --quiet, which only hides the progress bar
    for video, msg in failed.items():
        print(f"error: {msg}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(args.videos)} videos failed", file=sys.stderr)
        return 2
    if args.eval or args.keypoints:
        return _evaluate_result(done[0], args)
    return 0


def _evaluate_result(result: Path, args) -> int:
    from rodentseg.evaluate import evaluate_folders
    from rodentseg.evaluate.cli import print_summary

    video = Path(args.videos[0])
    r = evaluate_folders(result / "masks", args.eval, result / "eval",
                         video=None if video.is_dir() else video,
                         frames=video if video.is_dir() else None, keypoints=args.keypoints)
    print_summary(r, result / "eval")
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train or fine-tune a model from a YAML recipe",
                       description="Run a training recipe (configs/scratch-tiny.yaml, "
                                   "segformer.yaml, dinov3-lora.yaml, sam2-decoder.yaml) into "
                                   "runs/<name>/; a killed run resumes when started again. "
                                   "Several GPUs: accelerate launch -m rodentseg.cli train ...")
    p.add_argument("--config", help="recipe YAML (e.g. configs/scratch-tiny.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (repeatable), e.g. --set steps=500 "
                        "--set model.input_scale=0.25")
    p.add_argument("--low-res", action="store_true",
                   help="dinov3-lora: quarter-resolution input (model.input_scale=0.25) for "
                        "small GPUs")
    p.add_argument("--overwrite", action="store_true",
                   help="delete a run already in the output folder and start afresh (without "
                        "it, a killed run with the same config resumes; another is refused)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_run_train)


#: What ``rodentseg train`` needs beyond an inference install (the ``[train]`` extra).
TRAIN_MODULES = ("accelerate", "peft", "kornia")


def _run_train(args) -> int:
    missing = [m for m in TRAIN_MODULES if not _module_exists(m)]
    if missing:
        raise RodentsegError(f"rodentseg train needs {', '.join(missing)} (the training stack, "
                             "not part of an inference install): pip install \"rodentseg[train]\"")
    from rodentseg.train.config import load_config
    from rodentseg.train.loop import train

    overrides = args.set + (["model.input_scale=0.25"] if args.low_res else [])
    scores = train(load_config(args.config, overrides), progress=not args.quiet,
                   overwrite=args.overwrite)
    if scores:  # only the main process reports
        print(f"validation mean IoU {scores['val_miou']:.4f} (min {scores['val_min_iou']:.4f}), "
              f"J&F {scores['val_jf']:.4f} after {scores['steps']} steps, "
              f"{scores['train_time_s']:.0f} s")
    return 0


def _add_models(sub) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.add_argument("--write-sha256sums", type=Path, metavar="MODEL_DIR", default=None,
                   help="record the sha256 of MODEL_DIR/model.safetensors in MODEL_DIR/SHA256SUMS "
                        "(rerun after replacing shipped weights; loading checks it)")
    p.set_defaults(func=_run_models)


def _run_models(args) -> int:
    from rodentseg.models import MODEL_REGISTRY

    if args.write_sha256sums is not None:
        from rodentseg.models.integrity import write_sha256sums

        print(write_sha256sums(args.write_sha256sums).read_text(), end="")
        return 0
    for name, path in MODEL_REGISTRY.items():
        print(f"{name}\t{path}")
    return 0


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # the parent package is not there (yet)
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rodentseg", description=__doc__)
    parser.add_argument("--version", action="version", version=f"rodentseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_segment(sub)
    _add_train(sub)
    _add_models(sub)
    for name in SUBCOMMAND_MODULES:
        if _module_exists(name):
            importlib.import_module(name).add_parser(sub)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm, systemd, Ray, ``kill``), raised like Ctrl-C so the same cleanup runs."""


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread; a second
    SIGTERM during the cleanup is ignored. Elsewhere than the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input or a system error such as a full
    disk, with a one-line message; 130 after Ctrl-C, 143 after SIGTERM, with unfinished results
    removed)."""
    args = build_parser().parse_args(argv)
    bound_heap()  # long videos: keep peak memory flat (rodentseg.heap)
    try:
        with _sigterm_as_interrupt():
            return args.func(args)
    except RodentsegError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, no permission, a name too long: one line, not a traceback
        print(f"error: {from_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, Terminated) else "interrupted"
        print(f"{what}; finished results are kept, the unfinished one is discarded",
              file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
