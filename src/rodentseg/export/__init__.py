"""Deployment formats: ONNX export of the default segmenter (fp32, INT8) and the SAM 2 prompt
decoder, and an onnxruntime segmenter with the torch segmenter's interface.

Needs the ``onnx`` extra (``pip install 'rodentseg[onnx]'``: onnx, onnxruntime); importing this
package works without it, and every function that needs it raises a RodentsegError naming the
install command.
"""

from rodentseg.export.bundle import FORMATS, ExportReport, export_model, read_first_frames
from rodentseg.export.onnx_export import (FP32_TOLERANCE, INT8_FILE, ONNX_FILE, OPSET, Parity,
                                          export_segmenter, parity, quantize_int8)
from rodentseg.export.runtime import (RUNTIMES, OnnxSegmenter, load_onnx_model, load_runtime)
from rodentseg.export.sam2 import SAM2_FILE, Sam2Parity, export_sam2_decoder

__all__ = ["FORMATS", "FP32_TOLERANCE", "INT8_FILE", "ONNX_FILE", "OPSET", "RUNTIMES",
           "SAM2_FILE", "ExportReport", "OnnxSegmenter", "Parity", "Sam2Parity",
           "export_model", "export_sam2_decoder", "export_segmenter", "load_onnx_model",
           "load_runtime", "parity", "quantize_int8", "read_first_frames"]
