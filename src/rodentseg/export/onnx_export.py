"""The default segmenter to ONNX (fp32) and INT8, with a parity check against torch.

What is exported is the whole inference path of :func:`rodentseg.models.segmenter.forward_full`:
luma (B, 1, H, W) float32 in [0, 1] -> normalisation -> ``pixel_unshuffle`` -> SegFormer
(encoder + all-MLP decoder) -> ``pixel_shuffle`` + bilinear coarse logit -> logits
(B, 1, H, W) float32. Batch, height and width are dynamic axes. ``forward_full`` pads frames
whose sides are not a multiple of ``upscale`` (8) or are below 64 px; that padding is a Python
branch, which the tracing exporter cannot keep, so the graph is traced at a size that needs none
and the padding is done by the runtime (:class:`rodentseg.export.runtime.OnnxSegmenter`, edge
replicate like ``forward_full``, then the output is cropped). The exported graph therefore
expects H and W that are multiples of 8 and at least 64 (``upscale * sr_ratios[0]``, stored in
the model's metadata as ``min_side``).

Exporter: ``torch.onnx.export(..., dynamo=False)`` (the TorchScript-tracing exporter), opset 18;
NOTES-transformers.md measured it on SegFormer and the SAM 2 decoder (matches torch to ~2e-8).

INT8 uses onnxruntime's quantization tools (``onnxruntime.quantization``, see
https://onnxruntime.ai/docs/performance/model-optimizations/quantization.html):

- ``static`` (when calibration frames are given): QDQ format, uint8 activations and int8
  weights for every quantizable op, activation ranges from MinMax calibration on the frames;
  the usual choice for convolutional/vision models.
- ``dynamic`` (no frames): int8 weights of ``MatMul`` only, activation ranges computed at run
  time; needs no data and stays closer to fp32, but runs slower.

Measured with ``benchmarks/onnx_throughput.py`` (rodentseg-tiny, 640x480, 1 thread, AVX2 CPU
without VNNI): onnxruntime fp32 1.50x torch eager, static INT8 1.42x (mask IoU 0.991 vs
torch), dynamic INT8 0.71x (IoU 0.999); INT8 files are 2.3x (static) and 1.9x (dynamic) smaller.
INT8 gains speed on CPUs with int8 dot-product units (VNNI, AMX, ARM dotprod), not here.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from rodentseg.errors import RodentsegError
from rodentseg.models.segmenter import Preprocessing, Segmenter, forward_full

OPSET = 18
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
EXPORT_FILE = "export.json"
#: Side of the dummy frame the graph is traced with (a multiple of 8, >= 64: no padding branch).
TRACE_SIDE = 128
#: Stated parity tolerance of fp32 ONNX vs torch, on probabilities (measured ~1e-7).
FP32_TOLERANCE = 1e-4


def _require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise RodentsegError(
            f"ONNX export and the onnx runtime need the packages onnx and onnxruntime ({e}); "
            "install them with: pip install 'rodentseg[onnx]'"
        ) from None


class FullResolution(torch.nn.Module):
    """``forward_full`` as a module (what is traced): luma (B,1,H,W) -> logits (B,1,H,W)."""

    def __init__(self, net: torch.nn.Module, pre: Preprocessing):
        super().__init__()
        self.net = net
        self.pre = pre

    def forward(self, luma: torch.Tensor) -> torch.Tensor:
        return forward_full(self.net, luma, self.pre)


def min_side(config) -> int:
    """Smallest frame side ``forward_full`` accepts unpadded: ``upscale * sr_ratios[0]``
    (the first attention's reduction convolution needs it); ``config`` is the SegFormer config
    or its ``config.json`` dict."""
    sr = config["sr_ratios"] if isinstance(config, dict) else config.sr_ratios
    rodent = config["rodentseg"] if isinstance(config, dict) else config.rodentseg
    return Preprocessing.from_dict(rodent).upscale * sr[0]


def pad_multiple(side: int, pre: Preprocessing, minimum: int = 64) -> int:
    """The side the exported graph needs: a multiple of ``pre.upscale``, at least ``minimum``."""
    return max(math.ceil(side / pre.upscale) * pre.upscale, minimum)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_path(dst: Path) -> Path:
    """A fresh temporary file beside ``dst`` (same file system, so ``os.replace`` is atomic),
    with the permissions a plain ``open`` would give (mkstemp's are owner-only)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())
    return Path(tmp)


def export_segmenter(model: Segmenter, dst: str | Path, opset: int = OPSET) -> Path:
    """Export a loaded segmenter's full-resolution path to an ONNX file (fp32).

    Args:
        model: a torch segmenter (:func:`rodentseg.models.load_model`); exported on CPU.
        dst: the ``.onnx`` file to write (written to a temporary name, then renamed).
        opset: ONNX opset (18 is the one measured here).

    Returns:
        ``dst``. Input ``luma`` (B, 1, H, W) float32 in [0, 1], output ``logits``
        (B, 1, H, W) float32; B, H, W dynamic, H and W multiples of 8 and >= 64. The model's
        preprocessing settings are stored in the ONNX metadata (key ``rodentseg``).

    Raises:
        RodentsegError: onnx or onnxruntime is not installed.
    """
    _require_onnx()
    import onnx

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    module = FullResolution(model.net, model.pre).to("cpu").eval()
    side = pad_multiple(max(TRACE_SIDE, min_side(model.net.config)), model.pre)
    dummy = torch.rand(2, 1, side, side)
    tmp = _atomic_path(dst)
    axes = {0: "batch", 2: "height", 3: "width"}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings about the padding branch (see above)
            torch.onnx.export(module, (dummy,), str(tmp), input_names=["luma"],
                              output_names=["logits"], opset_version=opset, dynamo=False,
                              dynamic_axes={"luma": axes, "logits": axes})
        proto = onnx.load(str(tmp))
        meta = {"rodentseg": json.dumps(asdict(model.pre)),
                "min_side": str(min_side(model.net.config)),
                "source_weights_sha256": model.weights_sha256,
                "input_contract": "luma (B,1,H,W) float32 in [0,1]; H, W multiples of "
                                  f"{model.pre.upscale} and >= {min_side(model.net.config)} "
                                  "(pad by edge replicate)"}
        for k, v in meta.items():
            proto.metadata_props.add(key=k, value=v)
        onnx.save(proto, str(tmp))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
        model.net.to(model.device)
    return dst


def quantize_int8(src: str | Path, dst: str | Path, pre: Preprocessing,
                  calibration: np.ndarray | None = None, minimum: int = 64) -> str:
    """Quantize an exported fp32 segmenter to INT8 with ``onnxruntime.quantization``.

    Args:
        src: the fp32 ``.onnx`` written by :func:`export_segmenter`.
        dst: the INT8 ``.onnx`` to write (temporary name, then renamed).
        pre: the model's preprocessing (to pad calibration frames like the runtime does).
        calibration: (N, H, W[, 3]) uint8 frames for static quantization (8-32 frames of the
            user's own videos are enough), or None for dynamic quantization.
        minimum: smallest side of the graph's input (:func:`min_side`), for padding.

    Returns:
        ``"static"`` or ``"dynamic"`` (see the module docstring for the trade-off).
    """
    _require_onnx()
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quant_pre_process, quantize_dynamic, quantize_static)

    from rodentseg.export.runtime import frames_to_luma

    dst = Path(dst)
    prepped, tmp = _atomic_path(dst), _atomic_path(dst)
    try:
        # Constant folding and shape inference before quantizing (recommended by onnxruntime);
        # symbolic shape inference cannot resolve the dynamic H, W here, so it is skipped.
        quant_pre_process(str(src), str(prepped), skip_symbolic_shape=True)
        if calibration is None:
            quantize_dynamic(str(prepped), str(tmp), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"])
            mode = "dynamic"
        else:
            luma = frames_to_luma(calibration, pre, minimum)

            class Frames(CalibrationDataReader):
                def __init__(self):
                    self._it = iter([{"luma": luma[i:i + 1]} for i in range(len(luma))])

                def get_next(self):
                    return next(self._it, None)

            quantize_static(str(prepped), str(tmp), Frames(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
            mode = "static"
        os.replace(tmp, dst)
    finally:
        prepped.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)
        for extra in dst.parent.glob(f".{dst.name}.*-inferred.onnx"):
            extra.unlink(missing_ok=True)
    return mode


@dataclass(frozen=True)
class Parity:
    """How closely a candidate runtime reproduces a reference on the same frames.

    Attributes:
        frames: number of frames compared.
        max_abs_diff: largest absolute difference of per-pixel probabilities (in [0, 1]).
        mean_abs_diff: mean absolute difference of probabilities.
        mask_iou: IoU of the thresholded masks pooled over all frames (pixels > threshold in
            both / in either); NaN when neither has any mask pixel (nothing to compare).
    """

    frames: int
    max_abs_diff: float
    mean_abs_diff: float
    mask_iou: float

    def __str__(self) -> str:
        iou = "n/a (no mask pixels)" if math.isnan(self.mask_iou) else f"{self.mask_iou:.4f}"
        return (f"max |dp| {self.max_abs_diff:.2e}, mean |dp| {self.mean_abs_diff:.2e}, "
                f"mask IoU {iou} over {self.frames} frames")


def parity(reference, candidate, frames: np.ndarray, batch_size: int = 8) -> Parity:
    """Compare two segmenters' ``predict`` on the same frames.

    Args:
        reference, candidate: objects with ``predict(frames) -> (B, H, W) float32``
            probabilities and ``pre.threshold`` (e.g. torch :class:`Segmenter` and
            :class:`rodentseg.export.runtime.OnnxSegmenter`).
        frames: (N, H, W[, 3]) uint8 frames.
        batch_size: frames per call.
    """
    inter = union = 0
    max_d, sum_d, count = 0.0, 0.0, 0
    thr = reference.pre.threshold
    for i in range(0, len(frames), batch_size):
        a = reference.predict(frames[i:i + batch_size])
        b = candidate.predict(frames[i:i + batch_size])
        d = np.abs(a.astype(np.float64) - b)
        max_d, sum_d, count = max(max_d, float(d.max())), sum_d + float(d.sum()), count + d.size
        ma, mb = a > thr, b > thr
        inter += int((ma & mb).sum())
        union += int((ma | mb).sum())
    return Parity(len(frames), max_d, sum_d / max(count, 1),
                  inter / union if union else float("nan"))
