"""``rodentseg export --model M --format onnx [--int8] --out DIR``: see :func:`export_model`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand (handler :func:`run_export` as ``args.func``)."""
    from rodentseg import DEFAULT_MODEL

    p = subparsers.add_parser(
        "export", help="export the segmenter (and a SAM 2 decoder) to ONNX, optionally INT8",
        description="Export the segmenter to ONNX (dynamic batch, height and width), "
                    "optionally quantized to INT8 with onnxruntime, and check it against torch "
                    "(max abs difference of probabilities and mask IoU). Run the result with "
                    "`rodentseg segment --runtime onnx --model DIR`. Needs "
                    "`pip install 'rodentseg[onnx]'`.")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"registry name or model directory (default {DEFAULT_MODEL})")
    p.add_argument("--format", default="onnx", choices=["onnx"], dest="fmt",
                   help="export format (onnx)")
    p.add_argument("--out", type=Path, required=True, help="export folder (created)")
    p.add_argument("--int8", action="store_true",
                   help="also write model.int8.onnx: static INT8 calibrated on --frames "
                        "(recommended), or dynamic INT8 without --frames (smaller file, but "
                        "slower than torch on the AVX2 CPU measured)")
    p.add_argument("--frames", type=Path, default=None, metavar="VIDEO",
                   help="video or image folder of your own; its first frames are the parity "
                        "check and INT8 calibration set (recommended)")
    p.add_argument("--n-frames", type=int, default=16,
                   help="frames to read from --frames (default 16)")
    p.add_argument("--sam2", default=None, metavar="SAM2_MODEL",
                   help="also export this SAM 2 checkpoint's prompt encoder + mask decoder "
                        "(directory or hub id)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export in --out")
    p.set_defaults(func=run_export)
    return p


def run_export(args) -> int:
    """Run ``rodentseg export``; prints the parity figures and returns 0."""
    from rodentseg.export.bundle import export_model

    report = export_model(args.model, args.out, args.fmt, int8=args.int8, frames=args.frames,
                          sam2=args.sam2, n_frames=args.n_frames, overwrite=args.overwrite)
    print(f"parity frames: {report.parity_frames}")
    print(f"wrote {', '.join(report.files)} to {report.out}")
    return 0
