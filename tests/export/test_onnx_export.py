"""ONNX export of the segmenter: parity with torch on real frames, INT8, the export folder."""

import json

import numpy as np
import pytest

from rodentseg.cli import main
from rodentseg.errors import RodentsegError
from rodentseg.export import (
    FP32_TOLERANCE,
    INT8_FILE,
    ONNX_FILE,
    OnnxSegmenter,
    export_model,
    export_segmenter,
    parity,
    quantize_int8,
)
from rodentseg.models import load_model
from tests.conftest import OPENFIELD, needs


@pytest.fixture(scope="module")
def random_model(random_model_dir):
    return load_model(str(random_model_dir), "cpu")


@pytest.fixture(scope="module")
def exported(random_model, tmp_path_factory):
    path = export_segmenter(random_model, tmp_path_factory.mktemp("onnx") / ONNX_FILE)
    return OnnxSegmenter(path, random_model.pre, "random")


@pytest.mark.parametrize("size", [
    (480, 640),  # the data's frame size: multiples of 8, no padding
    (123, 201),  # odd sides: the runtime pads to 128 x 208 and crops back
    (40, 50),    # below the 64 px minimum: padded to 64 x 64
])
def test_fp32_matches_torch_on_real_frames(random_model, exported, openfield_frames, size):
    h, w = size
    frames = openfield_frames[:3, -h:, -w:]
    got = exported.predict(frames)
    want = random_model.predict(frames)
    assert got.shape == want.shape == (3, h, w) and got.dtype == np.float32
    assert np.abs(got - want).max() <= FP32_TOLERANCE


def test_grey_frames_and_interface(random_model, exported, openfield_frames):
    grey = openfield_frames[:2, ..., 0]  # (B, H, W) uint8: the three channels are equal
    assert np.abs(exported.predict(grey) - random_model.predict(grey)).max() <= FP32_TOLERANCE
    assert exported.pre == random_model.pre and str(exported.device) == "cpu"
    assert len(exported.weights_sha256) == 64 and exported.weights_sha256 != \
        random_model.weights_sha256  # another file: a torch run's run.json does not match
    for seg in (exported, random_model):  # both runtimes check frames alike (check_frames)
        with pytest.raises(ValueError, match=r"expected uint8 frames.*float32"):
            seg.predict(grey.astype(np.float32))
        with pytest.raises(ValueError, match="expected uint8 frames"):
            seg.predict(grey[0])  # one (H, W) frame without its batch axis


def test_int8_static_and_dynamic(random_model, exported, openfield_frames, tmp_path):
    modes = {}
    crops = openfield_frames[:, 120:360, 160:480]  # 240 x 320 around the arena centre: faster
    for calib in (crops[:2], None):
        dst = tmp_path / f"{calib is None}.int8.onnx"
        mode = quantize_int8(exported.onnx_path, dst, random_model.pre, calib)
        q = OnnxSegmenter(dst, random_model.pre, "q")
        p = parity(exported, q, crops[4:])
        modes[mode] = p
        print(f"INT8 {mode} vs fp32 (random weights): {p}")
        assert dst.stat().st_size < 0.6 * exported.onnx_path.stat().st_size
        assert 0 < p.max_abs_diff < 0.1  # quantized: close, but not bit-identical
    assert set(modes) == {"static", "dynamic"}
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


@needs(OPENFIELD)
@pytest.mark.slow
def test_default_model_export_real_frames(default_model, tmp_path, capsys):
    """Acceptance: the shipped model's ONNX export matches torch (IoU >= 0.99) on real frames."""
    report = export_model("rodentseg-tiny", tmp_path / "exp", int8=True,
                          frames=OPENFIELD / "frames", n_frames=16)
    log = capsys.readouterr().out
    print(log)
    assert report.fp32.frames == 16 and report.fp32.max_abs_diff <= FP32_TOLERANCE
    assert report.fp32.mask_iou >= 0.99
    assert report.int8_mode == "static" and report.int8.mask_iou >= 0.9
    assert "mask IoU" in log and "int8 (static)" in log
    saved = json.loads((tmp_path / "exp" / "export.json").read_text())
    assert saved["source_weights_sha256"] == default_model.weights_sha256
    assert saved["int8_vs_fp32"]["mask_iou"] == pytest.approx(report.int8.mask_iou)


def test_export_folder_and_cli(random_model_dir, tmp_path, capsys):
    out = tmp_path / "exp"
    assert main(["export", "--model", str(random_model_dir), "--format", "onnx",
                 "--out", str(out), "--frames", str(OPENFIELD / "frames"),
                 "--n-frames", "2"]) == 0
    log = capsys.readouterr().out
    assert "onnx fp32 vs torch: max |dp|" in log and "over 2 frames" in log
    assert sorted(p.name for p in out.iterdir()) == ["SHA256SUMS", "config.json", "export.json",
                                                     ONNX_FILE]
    before = (out / ONNX_FILE).stat().st_mtime_ns
    # A second export into the same folder needs --overwrite; nothing is touched without it.
    assert main(["export", "--model", str(random_model_dir), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / ONNX_FILE).stat().st_mtime_ns == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_requests(random_model_dir, tmp_path):
    with pytest.raises(RodentsegError, match="--format must be one of"):
        export_model(str(random_model_dir), tmp_path / "x", fmt="tflite")
    with pytest.raises(RodentsegError, match="unknown model"):
        export_model("no-such-model", tmp_path / "x")
    with pytest.raises(RodentsegError, match="not found"):
        export_model(str(random_model_dir), tmp_path / "x", frames=tmp_path / "missing.mp4")
    assert not (tmp_path / "x").exists()
    assert INT8_FILE.endswith(".onnx")
