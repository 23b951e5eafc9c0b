"""The scratch recipe: augmentation, loss, resume after a kill, config errors, model card."""

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from rodentseg.errors import RodentsegError
from rodentseg.models import load_model
from rodentseg.models.segmenter import Preprocessing, RodentSegNet, forward_full, tiny_config
from rodentseg.train.augment import CopyPasteAugment
from rodentseg.train.data import load_labelled_frames, temporal_split
from rodentseg.train.scratch import TrainConfig, load_config, seg_loss, train
from tests.conftest import OPENFIELD, REPO


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """Eight real openfield frames and masks at 160x120 (a quarter of the size)."""
    if not OPENFIELD.exists():
        pytest.skip(f"test data {OPENFIELD} not present")
    root = tmp_path_factory.mktemp("of")
    (root / "frames").mkdir()
    (root / "masks").mkdir()
    for i in range(0, 116, 15):
        name = f"img{i:04d}.png"
        Image.open(OPENFIELD / "frames" / name).convert("L").resize((160, 120)).save(
            root / "frames" / name)
        Image.open(OPENFIELD / "masks" / name).resize((160, 120), Image.NEAREST).save(
            root / "masks" / name)
    return root


def test_split_is_temporal():
    assert temporal_split(10, 0.2) == (list(range(8)), [8, 9])


def test_augment_shapes_labels_and_seed(small_data):
    data = load_labelled_frames(small_data)
    img, lab = CopyPasteAugment(data, seed=3)(6)
    assert img.shape == lab.shape == (6, 1, 120, 160)
    assert 0 <= img.min() and img.max() <= 1
    assert set(lab.unique().tolist()) <= {0.0, 1.0}
    assert lab.sum() > 0  # some rodent pixels in six images
    img2, lab2 = CopyPasteAugment(data, seed=3)(6)
    assert torch.equal(img, img2) and torch.equal(lab, lab2)
    # labelled pixels are dark fur, the rest mostly floor
    assert img[lab > 0].mean() < img[lab == 0].mean()


def test_loss_drops_on_a_fixed_batch(small_data):
    data = load_labelled_frames(small_data)
    x = torch.from_numpy(data.frames[:4]).float()[:, None] / 255
    y = torch.from_numpy(data.masks[:4]).float()[:, None]
    torch.manual_seed(0)
    net = RodentSegNet(tiny_config())
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    pre = Preprocessing()
    losses = []
    for _ in range(8):
        loss = seg_loss(forward_full(net, x, pre), y)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def _cfg(data, out, **kw):
    return TrainConfig(data=str(data), out=str(out), steps=4, batch_size=2, warmup=1,
                       eval_every=2, checkpoint_every=2, val_fraction=0.25, **kw)


def test_resume_after_kill_equals_uninterrupted(small_data, tmp_path, monkeypatch):
    scores = train(_cfg(small_data, tmp_path / "a"))
    assert 0 <= scores["val_miou"] <= 1 and scores["train_frames"] == 6
    run = tmp_path / "a"
    for f in ("config.yaml", "metrics.csv", "curve.png", "model/config.json",
              "model/model.safetensors", "model/MODEL_CARD.md"):
        assert (run / f).is_file(), f
    assert load_model(str(run / "model"), "cpu").pre.upscale == 8  # usable by --model

    import rodentseg.train.scratch as scratch

    calls = {"n": 0}
    real_loss = scratch.seg_loss

    def killed_at_step_3(*a):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_loss(*a)

    monkeypatch.setattr(scratch, "seg_loss", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(small_data, tmp_path / "b"))
    monkeypatch.setattr(scratch, "seg_loss", real_loss)
    train(_cfg(small_data, tmp_path / "b"))  # resumes from the step-2 checkpoint
    a = load_file(tmp_path / "a" / "model" / "model.safetensors")
    b = load_file(tmp_path / "b" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "2", "4"]


def test_config_errors(tmp_path):
    with pytest.raises(RodentsegError, match="unknown config key.*stepz"):
        load_config(None, ["stepz=3"])
    with pytest.raises(RodentsegError, match="unknown augment key"):
        load_config(None, ["augment.scael=[0.5,1]"])
    with pytest.raises(RodentsegError, match="key=value"):
        load_config(None, ["steps"])
    with pytest.raises(RodentsegError, match="does not exist"):
        load_config(str(tmp_path / "none.yaml"), [])
    cfg = load_config(str(REPO / "configs/scratch-tiny.yaml"), ["steps=7", "augment.scale=[0.5, 1.0]"])
    assert cfg.steps == 7 and cfg.augment.scale == (0.5, 1.0) and cfg.batch_size == 8


def test_missing_data_folder(tmp_path):
    with pytest.raises(RodentsegError, match="expected a folder"):
        load_labelled_frames(tmp_path)
    (tmp_path / "frames").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "frames" / "a.png")
    with pytest.raises(RodentsegError, match="no mask"):
        load_labelled_frames(tmp_path)
