"""Issue 23, defect 4: damaged weights loaded silently (corrupted tensor data in
``model.safetensors`` or an ONNX file: exit status 0 and zero animals found).

Now a shipped model's ``model.safetensors`` is checked against the sha256 in ``SHA256SUMS``
beside it, an export's ONNX files against the ``SHA256SUMS`` that ``rodentseg export`` writes,
and any model's weights and outputs must be finite numbers; each failure is one line and exit
status 2."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from rodentseg.cli import main
from rodentseg.errors import RodentsegError
from rodentseg.io.video import sha256_file
from rodentseg.models import MODEL_REGISTRY, load_model
from rodentseg.models.integrity import (
    SUMS_FILE,
    read_sha256sums,
    verify_sha256sums,
    write_sha256sums,
)
from rodentseg.models.segmenter import WEIGHTS_FILE


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
def test_shipped_sha256sums_match_the_shipped_weights(name):
    """Fails after shipped weights are replaced until `rodentseg models --write-sha256sums
    src/rodentseg/models/weights/<name>` (or write_sha256sums) is rerun beside them."""
    folder = MODEL_REGISTRY[name]
    assert read_sha256sums(folder).keys() == {WEIGHTS_FILE}, f"{folder / SUMS_FILE} missing"
    verify_sha256sums(folder)
    if shutil.which("sha256sum"):  # the file is in sha256sum's own format
        subprocess.run(["sha256sum", "--quiet", "-c", SUMS_FILE], cwd=folder, check=True)


@pytest.fixture
def shipped_copy(tmp_path):
    """A copy of the shipped model folder (with its SHA256SUMS)."""
    return shutil.copytree(MODEL_REGISTRY["rodentseg-tiny"], tmp_path / "rodentseg-tiny")


def _flip_byte(path, offset_from_end=100):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF  # inside the tensor data, past the safetensors header
    path.write_bytes(bytes(data))


def test_damaged_shipped_weights_are_refused_with_both_digests(shipped_copy, short_video,
                                                               tmp_path, capsys, monkeypatch):
    expected = read_sha256sums(shipped_copy)[WEIGHTS_FILE]
    _flip_byte(shipped_copy / WEIGHTS_FILE)
    found = sha256_file(shipped_copy / WEIGHTS_FILE)
    with pytest.raises(RodentsegError) as e:
        load_model(str(shipped_copy), "cpu")
    msg = str(e.value)
    assert str(shipped_copy / WEIGHTS_FILE) in msg and expected in msg and found in msg
    # the same through the command line, as a registry name: one line, exit 2, no result
    monkeypatch.setitem(MODEL_REGISTRY, "rodentseg-tiny", shipped_copy)
    assert main(["segment", str(short_video), "--out", str(tmp_path / "out"), "--quiet",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "damaged" in err[0], err
    assert not (tmp_path / "out" / short_video.stem).exists()


def test_write_sha256sums_records_replaced_weights(shipped_copy):
    """The step for whoever replaces shipped weights: rerun it, and loading passes again."""
    _flip_byte(shipped_copy / WEIGHTS_FILE, 4)  # "new weights": still finite float32 values
    with pytest.raises(RodentsegError, match="is damaged or was replaced"):
        load_model(str(shipped_copy), "cpu")
    assert main(["models", "--write-sha256sums", str(shipped_copy)]) == 0
    model = load_model(str(shipped_copy), "cpu")
    assert model.weights_sha256 == read_sha256sums(shipped_copy)[WEIGHTS_FILE]
    write_sha256sums(shipped_copy)  # idempotent
    assert (shipped_copy / SUMS_FILE).read_text() == (
        f"{model.weights_sha256}  {WEIGHTS_FILE}\n")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_in_any_model_folder(shipped_copy, bad):
    """A user's folder has no SHA256SUMS: NaN or inf among the weights is still refused."""
    (shipped_copy / SUMS_FILE).unlink()
    state = load_file(shipped_copy / WEIGHTS_FILE)
    name = sorted(state)[3]
    state[name].view(-1)[0] = bad
    save_file(state, shipped_copy / WEIGHTS_FILE, metadata={"format": "pt"})
    with pytest.raises(RodentsegError, match=f"non-finite weights.*first {name!r}"):
        load_model(str(shipped_copy), "cpu")


def test_non_finite_output_is_refused():
    model = load_model("rodentseg-tiny", "cpu")
    with torch.no_grad():
        model.net.refine[2].bias.fill_(float("nan"))  # as an overflow on a device would
    frames = np.full((2, 64, 64, 3), 128, np.uint8)
    with pytest.raises(RodentsegError, match="non-finite .* probabilities for a batch of 2"):
        model.predict(frames)


def _onnx_folder(tmp_path):
    pytest.importorskip("onnxruntime")
    from rodentseg.export.onnx_export import ONNX_FILE, export_segmenter

    folder = tmp_path / "export"
    folder.mkdir()
    model = load_model("rodentseg-tiny", "cpu")
    export_segmenter(model, folder / ONNX_FILE)
    shutil.copy2(model.path / "config.json", folder / "config.json")
    (folder / "export.json").write_text(json.dumps({"files": [ONNX_FILE]}))
    return folder, folder / ONNX_FILE


def test_onnx_export_with_nan_weights_or_changed_bytes_is_refused(tmp_path):
    import onnx
    from onnx import numpy_helper

    from rodentseg.export.runtime import load_onnx_model

    folder, path = _onnx_folder(tmp_path)
    assert load_onnx_model(str(folder)).predict(np.zeros((1, 64, 64), np.uint8)).shape == (
        1, 64, 64)
    graph = onnx.load(str(path))
    init = next(i for i in graph.graph.initializer if numpy_helper.to_array(i).size > 1)
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] = np.nan
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    onnx.save(graph, str(path))
    with pytest.raises(RodentsegError, match=f"non-finite weights .*first {init.name!r}"):
        load_onnx_model(str(folder))
    write_sha256sums(folder, [path.name])  # what `rodentseg export` writes beside its files
    _flip_byte(path, 8)
    with pytest.raises(RodentsegError, match="model.onnx is damaged or was replaced"):
        load_onnx_model(str(folder))
