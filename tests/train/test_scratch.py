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
from rodentseg.train.scratch import ScratchRecipe, luma_frames, seg_loss, thin_parts
from rodentseg.types import body_centroid


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


def test_real_frames_under_a_wall_lose_the_covered_label(small_data):
    data = luma_frames(load_dataset(small_data))
    aug = CopyPasteAugment(data, seed=0)
    c = aug.cfg
    c.p_real, c.p_real_wall, c.max_paste, c.real_scale = 1.0, 1.0, 0, (1.0, 1.0)
    c.contrast, c.brightness, c.log_gamma, c.blur_sigma, c.noise = (1.0, 1.0), 0.0, 0.0, 0.0, 0.0
    walls, circles = aug._walls, []
    aug._walls = lambda img, lab: circles.append(walls(img, lab)) or circles[-1]
    img, lab = aug(16)
    assert len(circles) == 1 and circles[0].shape == (16, 3)  # every real frame got a wall
    outside = aug._inside(circles[0]) == 0
    assert outside.any() and (img[outside] < 0.6).all()  # dark there
    assert lab[outside].sum() == 0 and lab.sum() > 0  # no rodent label on the wall


def test_unknown_recipe_options():
    with pytest.raises(RodentsegError, match="unknown augment key"):
        ScratchRecipe({}, {"scael": [0.5, 1]})
    with pytest.raises(RodentsegError, match="unknown model key"):
        ScratchRecipe({"hidden_sizez": [8]}, {})


def test_thin_parts_are_the_tail_not_the_body():
    target = torch.zeros(1, 1, 40, 60)
    target[..., 10:30, 5:35] = 1  # body, 20 x 30
    target[..., 19:22, 35:55] = 1  # tail, 3 px wide
    thin = thin_parts(target)
    assert thin[..., 19:22, 36:55].eq(1).all()  # the tail (beyond its joint with the body)
    assert thin[..., 10:30, 5:35].sum() == 0  # none of the body
    assert thin[target == 0].sum() == 0


def test_thin_parts_are_what_the_body_centroid_leaves_out():
    target = torch.zeros(1, 1, 40, 60)
    target[..., 10:30, 5:35] = 1
    target[..., 19:22, 35:55] = 1
    target[..., 8:10, 12:14] = 1  # an ear tip
    target[..., 30:36, 20:26] = 1  # a paw, 6 px wide: thin at 7 px, not at 5
    body = (target - thin_parts(target))[0, 0].numpy()
    ys, xs = np.nonzero(body)
    assert body_centroid(target[0, 0].numpy() > 0) == pytest.approx((xs.mean(), ys.mean()))


def test_thin_weight_weighs_errors_on_the_tail():
    target = torch.zeros(1, 1, 40, 60)
    target[..., 10:30, 5:35] = 1
    target[..., 19:22, 35:55] = 1
    logits = torch.where(target > 0, 4.0, -4.0)
    logits[..., 19:22, 35:55] = -4.0  # the tail is missed
    missed = seg_loss(logits, target, thin_weight=5.0) - seg_loss(logits, target)
    logits[..., 19:22, 35:55] = 4.0  # with the tail found, the weight adds next to nothing
    found = seg_loss(logits, target, thin_weight=5.0) - seg_loss(logits, target)
    assert missed > 0 and missed > 50 * found


def test_thin_weight_is_a_recipe_option():
    assert ScratchRecipe({"thin_weight": 3}, {}).thin_weight == 3.0


def test_refinement_head_is_a_recipe_option():
    r = ScratchRecipe({"refine_fold": 4, "refine_channels": 16, "refine_hidden": 32}, {})
    assert (r.pre.refine_fold, r.pre.refine_channels, r.pre.refine_hidden) == (4, 16, 32)
    assert r.net_config.num_labels == 2 * 2 * 16 + 1
    assert r.build_model().refine[0].out_channels == 32
