"""The scratch recipe: copy-paste augmentation, loss, data errors (the loop: test_loop.py)."""

import numpy as np
import pytest
import torch
from PIL import Image

from rodentseg.errors import RodentsegError
from rodentseg.models.segmenter import Preprocessing, RodentSegNet, forward_full, tiny_config
from rodentseg.train.augment import CopyPasteAugment
from rodentseg.train.data import temporal_split
from rodentseg.train.datasets import load_dataset
from rodentseg.train.scratch import ScratchRecipe, luma_frames, seg_loss


def test_split_is_temporal():
    assert temporal_split(10, 0.2) == (list(range(8)), [8, 9])


def test_augment_shapes_labels_and_seed(small_data):
    data = luma_frames(load_dataset(small_data))
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
    data = luma_frames(load_dataset(small_data))
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


def test_missing_data_folder(tmp_path):
    with pytest.raises(RodentsegError, match="expected a folder"):
        load_dataset(tmp_path, "frames")
    (tmp_path / "frames").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "frames" / "a.png")
    with pytest.raises(RodentsegError, match="no mask"):
        load_dataset(tmp_path, "frames")


def test_walls_put_rodents_against_a_dark_surround(small_data):
    data = luma_frames(load_dataset(small_data))
    aug = CopyPasteAugment(data, seed=0)
    aug.cfg.p_real, aug.cfg.p_wall, aug.cfg.p_at_wall = 0.0, 1.0, 1.0
    img, lab = aug(8)
    touching = 0
    for i in range(8):
        ring = (torch.nn.functional.max_pool2d(lab[i:i + 1], 9, 1, 4)[0, 0] > 0) & (lab[i, 0] == 0)
        touching += bool((img[i, 0][ring] < 0.5).any())  # dark pixels right next to the animal
    assert touching >= 6, touching


def test_unknown_recipe_options():
    with pytest.raises(RodentsegError, match="unknown augment key"):
        ScratchRecipe({}, {"scael": [0.5, 1]})
    with pytest.raises(RodentsegError, match="unknown model key"):
        ScratchRecipe({"hidden_sizez": [8]}, {})
