"""``rodentseg export``'s work: an export folder with the ONNX models and their parity report.

Layout of ``OUT/``:

- ``model.onnx``: the default segmenter, fp32 (:func:`rodentseg.export.export_segmenter`);
- ``model.int8.onnx``: INT8 (with ``--int8``; static when frames are given, else dynamic);
- ``sam2_prompt_mask_decoder.onnx``: SAM 2 prompt encoder + mask decoder (with ``--sam2``);
- ``config.json``: the torch model's config (it carries the preprocessing settings);
- ``export.json``: source model and weights hash, opset, versions, parity figures.

The folder is built under a temporary name beside ``OUT`` and moved into place at the end; an
existing ``OUT`` that already holds an export is replaced only with ``overwrite``, and files of
``OUT`` that the export does not write are left alone. :func:`rodentseg.export.load_onnx_model`
reads the folder.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rodentseg import __version__
from rodentseg.errors import RodentsegError
from rodentseg.export.onnx_export import (
    EXPORT_FILE,
    FP32_TOLERANCE,
    INT8_FILE,
    ONNX_FILE,
    OPSET,
    Parity,
    _require_onnx,
    _umask,
    export_segmenter,
    min_side,
    parity,
    quantize_int8,
)
from rodentseg.export.runtime import OnnxSegmenter
from rodentseg.export.sam2 import SAM2_FILE, Sam2Parity, export_sam2_decoder
from rodentseg.io.results import check_writable
from rodentseg.models.integrity import SUMS_FILE, write_sha256sums
from rodentseg.models.segmenter import CONFIG_FILE

FORMATS = ("onnx",)


@dataclass
class ExportReport:
    """What :func:`export_model` wrote and how closely each export matches its reference.

    Attributes:
        out: the export folder.
        files: file names written in it.
        fp32: ONNX fp32 vs torch on the parity frames.
        int8: ONNX INT8 vs ONNX fp32 (None without ``int8``).
        int8_mode: ``"static"`` or ``"dynamic"`` (None without ``int8``).
        sam2: SAM 2 decoder onnxruntime vs torch (None without ``sam2``).
        parity_frames: where the parity frames came from.
    """

    out: Path
    files: list[str]
    fp32: Parity
    int8: Parity | None = None
    int8_mode: str | None = None
    sam2: Sam2Parity | None = None
    parity_frames: str = ""


def read_first_frames(video: str | Path, n: int) -> np.ndarray:
    """The first ``n`` frames of a video or image folder, (n', H, W, 3) uint8 RGB, n' <= n.

    Raises:
        RodentsegError: what :func:`rodentseg.io.video.read_frames` raises for a bad video.
    """
    from rodentseg.io.video import read_frames

    got: list[np.ndarray] = []
    for _, batch in read_frames(video, min(n, 8)):
        got.append(batch)
        if sum(len(b) for b in got) >= n:
            break
    return np.concatenate(got)[:n]


def _noise_frames(n: int = 4, h: int = 240, w: int = 320) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def export_model(model: str, out: str | Path, fmt: str = "onnx", int8: bool = False,
                 frames: str | Path | None = None, sam2: str | None = None,
                 n_frames: int = 16, overwrite: bool = False,
                 log: Callable[[str], None] = print) -> ExportReport:
    """Export a segmenter (and optionally a SAM 2 decoder) into ``out`` and check parity.

    Args:
        model: registry name or torch model folder of the segmenter.
        out: export folder (see the module docstring).
        fmt: ``"onnx"`` (the only format).
        int8: also write ``model.int8.onnx``.
        frames: video or image folder whose first ``n_frames`` frames are the parity frames and
            the INT8 calibration set (static INT8). None: 4 noise frames for parity (differences
            are meaningful, mask IoU usually is not) and dynamic INT8.
        sam2: SAM 2 checkpoint (directory or hub id) whose prompt encoder + mask decoder to
            export too.
        n_frames: parity / calibration frames to read.
        overwrite: replace the files of an earlier export in ``out``.
        log: where progress lines go.

    Returns:
        The report (also written to ``out/export.json``).

    Raises:
        RodentsegError: an unknown format, ``out`` holding an export without ``overwrite``,
            missing onnx/onnxruntime, an unknown model, an unreadable video, or fp32 parity
            worse than :data:`FP32_TOLERANCE` (the export is then not published).
    """
    from rodentseg.models import Segmenter, load_model

    if fmt not in FORMATS:
        raise RodentsegError(f"--format must be one of {list(FORMATS)}, got {fmt!r}")
    _require_onnx()
    out = Path(out)
    ours = (ONNX_FILE, INT8_FILE, SAM2_FILE, CONFIG_FILE, EXPORT_FILE, SUMS_FILE)
    present = [f for f in ours if (out / f).exists()]
    if present and not overwrite:
        raise RodentsegError(f"{out} already holds an export ({present}); pass --overwrite to "
                             "replace it, or choose another --out")
    torch_model = load_model(model, "cpu")
    if not isinstance(torch_model, Segmenter):
        raise RodentsegError(
            f"--model {model}: ONNX export covers the rodentseg-tiny architecture (scratch-tiny "
            f"recipe); got a {type(torch_model).__name__} (a fine-tuned run): segment with "
            "--runtime torch (SAM 2 prompt encoder + mask decoder: `--sam2 SAM2_MODEL`)")
    if frames is not None:
        sample, source = read_first_frames(frames, n_frames), f"first frames of {frames}"
        source = f"{len(sample)} {source}"
    else:
        sample, source = _noise_frames(), "4 uniform-noise frames 320x240 (no --frames given)"
    check_writable(out.parent)  # a one-line error before any work, not a traceback
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        log(f"exporting {model} to ONNX (opset {OPSET}) ...")
        export_segmenter(torch_model, tmp / ONNX_FILE)
        shutil.copy2(torch_model.path / CONFIG_FILE, tmp / CONFIG_FILE)
        smallest = min_side(torch_model.net.config)
        fp32 = OnnxSegmenter(tmp / ONNX_FILE, torch_model.pre, str(out / ONNX_FILE),
                             min_side=smallest)
        report = ExportReport(out, [ONNX_FILE, CONFIG_FILE, EXPORT_FILE],
                              parity(torch_model, fp32, sample), parity_frames=source)
        log(f"onnx fp32 vs torch: {report.fp32}")
        if not report.fp32.max_abs_diff <= FP32_TOLERANCE:
            raise RodentsegError(
                f"the ONNX export differs from torch by {report.fp32.max_abs_diff:.2e} "
                f"(tolerance {FP32_TOLERANCE:.0e}); nothing was written to {out}. Please "
                "report this with your torch and onnxruntime versions")
        if int8:
            log("quantizing to INT8 ...")
            report.int8_mode = quantize_int8(tmp / ONNX_FILE, tmp / INT8_FILE, torch_model.pre,
                                             sample if frames is not None else None, smallest)
            q = OnnxSegmenter(tmp / INT8_FILE, torch_model.pre, str(out / INT8_FILE),
                              min_side=smallest)
            report.int8 = parity(fp32, q, sample)
            report.files.append(INT8_FILE)
            log(f"onnx int8 ({report.int8_mode}) vs onnx fp32: {report.int8}")
        if sam2 is not None:
            log(f"exporting the SAM 2 prompt encoder + mask decoder of {sam2} ...")
            report.sam2 = export_sam2_decoder(sam2, tmp / SAM2_FILE,
                                              sample if frames is not None else None)
            report.files.append(SAM2_FILE)
            log(f"sam2 decoder onnx vs torch: {report.sam2}")
        # loading an export checks its ONNX files against these (rodentseg.models.integrity)
        write_sha256sums(tmp, [f for f in report.files if f.endswith(".onnx")])
        report.files.append(SUMS_FILE)
        (tmp / EXPORT_FILE).write_text(json.dumps(_export_json(report, torch_model), indent=2)
                                       + "\n")
        _publish(tmp, out, report.files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def _export_json(report: ExportReport, torch_model) -> dict:
    import onnxruntime
    import torch

    def clean(d):
        return None if d is None else {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                       for k, v in asdict(d).items()}

    return {"rodentseg_version": __version__, "source": torch_model.name,
            "source_weights_sha256": torch_model.weights_sha256, "opset": OPSET,
            "exporter": "torch.onnx.export(dynamo=False)", "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "input": "luma (B,1,H,W) float32 in [0,1]; B, H, W dynamic; H, W multiples of 8 "
                     "and >= 64 (OnnxSegmenter pads by edge replicate and crops)",
            "files": report.files, "parity_frames": report.parity_frames,
            "fp32_vs_torch": clean(report.fp32), "fp32_tolerance": FP32_TOLERANCE,
            "int8_mode": report.int8_mode, "int8_vs_fp32": clean(report.int8),
            "sam2_vs_torch": clean(report.sam2)}


def _publish(tmp: Path, out: Path, files: list[str]) -> None:
    """Move the finished export into ``out`` (the whole folder when ``out`` is new)."""
    if not out.exists():
        os.replace(tmp, out)
        return
    for f in (INT8_FILE, SAM2_FILE):  # stale optional files of an earlier export
        if f not in files:
            (out / f).unlink(missing_ok=True)
    for f in files:
        if f != EXPORT_FILE:
            os.replace(tmp / f, out / f)
    os.replace(tmp / EXPORT_FILE, out / EXPORT_FILE)
