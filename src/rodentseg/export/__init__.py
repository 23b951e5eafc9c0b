"""Deployment formats: ONNX export of the default segmenter (fp32, INT8) and the SAM 2 prompt
decoder, and an onnxruntime segmenter with the torch segmenter's interface.

Needs the ``onnx`` extra (``pip install 'rodentseg[onnx]'``: onnx, onnxruntime); importing this
package works without it, and every function that needs it raises a RodentsegError naming the
install command.
"""

from importlib import import_module

_EXPORTS = {
    "FORMATS": "bundle", "ExportReport": "bundle", "export_model": "bundle",
    "read_first_frames": "bundle",
    "FP32_TOLERANCE": "onnx_export", "INT8_FILE": "onnx_export", "ONNX_FILE": "onnx_export",
    "OPSET": "onnx_export", "Parity": "onnx_export", "export_segmenter": "onnx_export",
    "parity": "onnx_export", "quantize_int8": "onnx_export",
    "RUNTIMES": "runtime", "OnnxSegmenter": "runtime", "load_onnx_model": "runtime",
    "load_runtime": "runtime",
    "SAM2_FILE": "sam2", "Sam2Parity": "sam2", "export_sam2_decoder": "sam2",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Names are imported on first use, so ``rodentseg --help`` does not pay for torch."""
    if name in _EXPORTS:
        return getattr(import_module(f"rodentseg.export.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rodentseg.export' has no attribute {name!r}")
