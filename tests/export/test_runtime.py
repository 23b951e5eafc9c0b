"""The onnxruntime segmenter behind segment_video, the ONNX cache and runtime selection."""

import numpy as np
import pytest
from PIL import Image

from rodentseg.errors import RodentsegError
from rodentseg.export import INT8_FILE, ONNX_FILE, load_onnx_model, load_runtime
from rodentseg.export.runtime import cache_root
from rodentseg.models.segmenter import Segmenter
from rodentseg.segment import SegmentOptions, segment_video


def test_cache_export_once_then_reuse(random_model_dir):
    first = load_onnx_model(str(random_model_dir))
    assert first.path.parent == cache_root() / "onnx" and first.onnx_path.name == ONNX_FILE
    stamp = first.onnx_path.stat().st_mtime_ns
    again = load_onnx_model(str(random_model_dir))
    assert again.onnx_path == first.onnx_path and again.onnx_path.stat().st_mtime_ns == stamp
    # INT8 is never made on the fly (it needs the user's frames): the message says how.
    with pytest.raises(RodentsegError, match="--int8 --frames YOUR_VIDEO"):
        load_onnx_model(str(random_model_dir), int8=True)
    assert sorted(p.name for p in first.path.iterdir()) == ["SHA256SUMS", "config.json",
                                                            "export.json", ONNX_FILE]
    assert not [p for p in (cache_root() / "onnx").iterdir() if p.name.startswith(".")]


def test_export_folder_loads_and_names_missing_int8(random_model_dir, tmp_path):
    from rodentseg.export import export_model

    export_model(str(random_model_dir), tmp_path / "exp", log=lambda s: None)
    m = load_onnx_model(str(tmp_path / "exp"))
    assert m.onnx_path == tmp_path / "exp" / ONNX_FILE
    with pytest.raises(RodentsegError, match="--int8"):
        load_onnx_model(str(tmp_path / "exp"), int8=True)
    export_model(str(random_model_dir), tmp_path / "exp", int8=True, overwrite=True,
                 log=lambda s: None)
    q = load_runtime(str(tmp_path / "exp"), "cpu", "onnx-int8")
    assert q.onnx_path == tmp_path / "exp" / INT8_FILE and q.runtime.endswith("int8")


@pytest.mark.parametrize("runtime,cls", [
    ("torch", Segmenter),   # the default: no onnx involved
    ("onnx", None),         # OnnxSegmenter
])
def test_load_runtime(random_model_dir, runtime, cls):
    m = load_runtime(str(random_model_dir), "cpu", runtime)
    assert (isinstance(m, cls) if cls else type(m).__name__ == "OnnxSegmenter")


def test_bad_runtime_and_device(random_model_dir):
    with pytest.raises(RodentsegError, match="--runtime must be one of"):
        load_runtime(str(random_model_dir), "cpu", "tensorrt")
    with pytest.raises(RodentsegError, match="onnxruntime-gpu"):
        load_onnx_model(str(random_model_dir), device="cuda")


def test_segment_video_with_onnx_matches_torch(openfield_folder, random_model_dir, tmp_path):
    """segment_video runs the onnxruntime model unchanged; masks agree with the torch run."""
    opts = SegmentOptions(animals=1, overlay=False)
    results = {}
    for runtime in ("torch", "onnx"):
        model = load_runtime(str(random_model_dir), "cpu", runtime)
        results[runtime] = segment_video(openfield_folder, tmp_path / runtime, model, opts,
                                         progress=False)
    a, b = results["torch"], results["onnx"]
    inter = union = 0
    for png in sorted((a / "masks").iterdir()):
        la = np.asarray(Image.open(png)) > 0
        lb = np.asarray(Image.open(b / "masks" / png.name)) > 0
        inter, union = inter + (la & lb).sum(), union + (la | lb).sum()
    assert len(list((b / "masks").iterdir())) == 6 and union > 0
    assert inter / union >= 0.99
