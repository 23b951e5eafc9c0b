"""The segmenter: full-resolution forward pass, registry, strict loading, shipped weights."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from rodentseg.errors import RodentsegError
from rodentseg.models import MODEL_REGISTRY, load_model
from rodentseg.models.segmenter import Preprocessing, forward_full
from tests.conftest import OPENFIELD, needs


@pytest.mark.parametrize("h,w", [(480, 640), (61, 83), (33, 47)])  # odd sizes are padded
def test_forward_full_resolution(random_model_dir, h, w):
    m = load_model(str(random_model_dir), "cpu")
    with torch.inference_mode():
        out = forward_full(m.net, torch.rand(2, 1, h, w), m.pre)
    assert out.shape == (2, 1, h, w)
    probs = m.predict(np.zeros((1, h, w, 3), np.uint8))
    assert probs.shape == (1, h, w) and probs.dtype == np.float32
    assert 0 <= probs.min() and probs.max() <= 1


def test_head_chunks_give_the_same_logits(random_model_dir):
    """``head_chunk`` (the inference path's memory bound) changes nothing in the result, also
    when it does not divide the batch; ``predict`` on 5 frames equals 5 single-frame calls."""
    m = load_model(str(random_model_dir), "cpu")
    torch.manual_seed(0)
    x = torch.rand(5, 1, 61, 83)
    with torch.inference_mode():
        whole = forward_full(m.net, x, m.pre)
        chunked = forward_full(m.net, x, m.pre, head_chunk=2)
    torch.testing.assert_close(chunked, whole)
    frames = np.random.default_rng(0).integers(0, 256, (5, 61, 83, 3), dtype=np.uint8)
    one_by_one = np.concatenate([m.predict(f[None]) for f in frames])
    np.testing.assert_allclose(m.predict(frames), one_by_one, atol=1e-5)


@pytest.mark.parametrize("h,w", [(480, 640), (61, 83)])
def test_quarter_resolution_refinement(tmp_path, h, w):
    """``refine_fold=4``: the head runs at 1/4 of the frame on 16 folded pixels per position, is
    stored in the config and loads back; each output pixel still depends on its own input pixel."""
    from rodentseg.models.segmenter import RodentSegNet, save_segmenter, tiny_config

    torch.manual_seed(0)
    cfg = tiny_config(refine_fold=4, refine_channels=16, refine_hidden=8)
    net = RodentSegNet(cfg).eval()
    assert net.refine[0].in_channels == 16 + 16 and net.refine[-1].out_channels == 16
    m = load_model(str(save_segmenter(net, tmp_path / "q")), "cpu")
    assert m.pre.refine_fold == 4 and m.pre.refine_channels == 16
    x = torch.rand(1, 1, h, w)
    with torch.inference_mode():
        out = forward_full(m.net, x, m.pre)
        y = x.clone()
        y[..., h // 2, w // 2] = 1 - y[..., h // 2, w // 2]
        diff = (forward_full(m.net, y, m.pre) - out).abs()[0, 0]
    assert out.shape == (1, 1, h, w)
    assert diff[h // 2, w // 2] > 0  # the fine head sees the changed pixel itself


def test_refine_fold_must_fit_the_decoder_stride():
    from rodentseg.models.segmenter import RodentSegNet, tiny_config

    with pytest.raises(RodentsegError, match="refine_fold=3 must divide upscale=8"):
        RodentSegNet(tiny_config(refine_fold=3, refine_channels=1))


def test_unknown_model_lists_known(tmp_path):
    with pytest.raises(RodentsegError, match="unknown model 'rodent-xl'.*rodentseg-tiny"):
        load_model("rodent-xl", "cpu")


def test_missing_weights(random_model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(random_model_dir, d)
    (d / "model.safetensors").unlink()
    with pytest.raises(RodentsegError, match="no model.safetensors"):
        load_model(str(d), "cpu")


def test_weights_of_another_shape_are_refused(random_model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(random_model_dir, d)
    sd = load_file(d / "model.safetensors")
    key = next(k for k in sd if k.endswith("classifier.weight"))
    sd[key] = torch.zeros(sd[key].shape[0] - 1, *sd[key].shape[1:])
    save_file(sd, d / "model.safetensors")
    with pytest.raises(RodentsegError, match="weights"):
        load_model(str(d), "cpu")


def test_missing_tensor_is_refused(random_model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(random_model_dir, d)
    sd = load_file(d / "model.safetensors")
    sd.pop(next(k for k in sd if k.endswith("classifier.bias")))
    save_file(sd, d / "model.safetensors")
    with pytest.raises(RodentsegError, match="strict loading|weights"):
        load_model(str(d), "cpu")


def test_wrong_config_key(random_model_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(random_model_dir, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg["rodentseg"]["treshold"] = 0.4  # misspelt
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RodentsegError, match="unknown key.*treshold"):
        load_model(str(d), "cpu")


def test_cuda_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RodentsegError, match="sees none"):
        load_model("rodentseg-tiny", "cuda")


def test_preprocessing_is_stored_with_weights():
    cfg = json.loads((MODEL_REGISTRY["rodentseg-tiny"] / "config.json").read_text())
    assert Preprocessing.from_dict(cfg["rodentseg"]).upscale == 8
    assert (MODEL_REGISTRY["rodentseg-tiny"] / "MODEL_CARD.md").is_file()


@needs(OPENFIELD)
def test_shipped_model_matches_its_card(default_model):
    """The held-out frames (last 20%, never trained on) score what the model card says."""
    import re

    card = (MODEL_REGISTRY["rodentseg-tiny"] / "MODEL_CARD.md").read_text()
    claimed = float(re.search(r"mean IoU \*\*([0-9.]+)\*\*", card).group(1))
    names = [f"img{i:04d}.png" for i in range(93, 116)]
    ious = []
    for k in range(0, len(names), 8):
        batch = names[k:k + 8]
        frames = np.stack([np.asarray(Image.open(OPENFIELD / "frames" / n).convert("RGB"))
                           for n in batch])
        gt = np.stack([np.asarray(Image.open(OPENFIELD / "masks" / n)) > 0 for n in batch])
        pred = default_model.predict(frames) > default_model.pre.threshold
        ious.extend((pred & gt).sum((1, 2)) / (pred | gt).sum((1, 2)))
    assert np.mean(ious) == pytest.approx(claimed, abs=0.002)
    assert min(ious) > 0.75
