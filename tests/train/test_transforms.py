"""PromptAugment: boxes, points and masks move with the image; jitter leaves masks; seeding."""

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_dilation, binary_erosion

from rodentseg.errors import RodentsegError
from rodentseg.train.transforms import PromptAugment, PromptAugmentConfig

H, W = 48, 64
OFF = {"hflip": 0.0, "vflip": 0.0, "affine": 0.0, "jitter": 0.0, "blur": 0.0}


def mask_box(m: torch.Tensor) -> torch.Tensor:
    """xyxy (x1/y1 exclusive) of a (H, W) bool mask."""
    ys, xs = torch.nonzero(m, as_tuple=True)
    return torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()


@pytest.fixture
def batch():
    """8 samples: an L-shaped object (bright in the image), its box and all its pixel centres."""
    m = torch.zeros(8, 1, H, W, dtype=torch.bool)
    m[:, 0, 14:26, 18:40] = True
    m[:, 0, 26:33, 32:40] = True
    image = torch.full((8, 3, H, W), 0.1)
    image[m.expand(-1, 3, -1, -1)] = 0.9
    box = mask_box(m[0, 0]).expand(8, 1, 4).clone()
    ys, xs = torch.nonzero(m[0, 0], as_tuple=True)
    points = torch.stack([xs, ys], -1).float().expand(8, -1, -1).clone()
    return image, m, box, points


@pytest.mark.parametrize("flip", [
    {"hflip": 1.0},                 # left-right only
    {"vflip": 1.0},                 # up-down only
    {"hflip": 1.0, "vflip": 1.0},  # both = rotation by 180 degrees
])
def test_flips_move_box_points_and_mask_exactly(batch, flip):
    image, m, box, points = batch
    out = PromptAugment({**OFF, **flip})(image, m, box, points)
    for b in range(8):
        tm = out["masks"][b, 0]
        assert torch.equal(out["boxes"][b, 0], mask_box(tm))
        c = out["points"][b].long()
        assert torch.equal(out["points"][b], c.float())  # whole pixels stay whole
        assert tm[c[:, 1], c[:, 0]].all()  # every point lands on the mask
        assert tm.sum() == m[b, 0].sum()
    if flip == {"hflip": 1.0}:
        assert out["boxes"][0, 0].tolist() == [W - 40, 14, W - 18, 33]


def test_rotation_scale_box_contains_mask_box_and_points_stay_inside(batch):
    image, m, box, points = batch
    aug = PromptAugment({**OFF, "affine": 1.0, "degrees": 180, "scale": (0.7, 1.3)}, seed=3)
    interior = binary_erosion(m[0, 0].numpy(), iterations=2)
    inner = torch.from_numpy(interior)[points[0, :, 1].long(), points[0, :, 0].long()]
    assert inner.sum() > 100
    moved = 0
    for _ in range(4):
        out = aug(image, m, box, points)
        for b in range(8):
            tm = out["masks"][b, 0]
            tb, mb = out["boxes"][b, 0], mask_box(tm)
            assert (tb[:2] <= mb[:2] + 0.5).all() and (tb[2:] >= mb[2:] - 0.5).all()
            c = torch.floor(out["points"][b] + 0.5).long()
            assert tm[c[inner, 1], c[inner, 0]].all()  # interior points stay on the mask
            moved += not torch.equal(tm, m[b, 0])
            # the bright object stays under the mask, the dark floor around it
            img = out["image"][b, 0]
            core = binary_erosion(tm.numpy(), structure=np.ones((3, 3), bool))
            assert img[torch.from_numpy(core)].min() > 0.85
            assert ((img > 0.5) != tm).sum() <= 0.02 * tm.sum()  # boundary pixels only
            outside = ~torch.from_numpy(binary_dilation(tm.numpy(), iterations=2))
            assert img[outside].max() <= 0.1 + 1e-6
    assert moved >= 28  # p = 1: nearly every draw changes the mask


def test_colour_jitter_and_blur_do_not_move_masks_or_prompts(batch):
    image, m, box, points = batch
    cfg = {**OFF, "jitter": 1.0, "brightness": 0.5, "contrast": 0.5, "saturation": 0.5,
           "hue": 0.1, "blur": 1.0}
    out = PromptAugment(cfg)(image, m.float(), box, points)
    assert torch.equal(out["masks"], m.float())
    assert torch.equal(out["boxes"], box) and torch.equal(out["points"], points)
    assert not torch.allclose(out["image"], image)
    assert 0 <= out["image"].min() and out["image"].max() <= 1


def test_integer_id_masks_keep_their_ids(batch):
    image, m, _, _ = batch
    ids = m.to(torch.int32) * 7
    out = PromptAugment({"jitter": 0.0})(image, ids)
    assert out["masks"].dtype == torch.int32
    assert set(out["masks"].unique().tolist()) <= {0, 7}


def test_same_seed_same_output_and_resume(batch):
    image, m, box, points = batch
    a, b = PromptAugment(seed=5), PromptAugment(seed=5)
    torch.manual_seed(0)
    before = torch.rand(1)
    first = a(image, m, box, points)
    torch.manual_seed(0)
    assert torch.equal(torch.rand(1), before)  # the global RNG is untouched by a call
    second = a(image, m, box, points)
    again = b(image, m, box, points)
    for k in first:
        assert torch.equal(first[k], again[k])
    assert not torch.equal(first["masks"], second["masks"])  # the draw advances per call
    c = PromptAugment(seed=5)
    c.load_state_dict(a.state_dict())
    c2, a3 = c(image, m, box, points), a(image, m, box, points)
    assert torch.equal(c2["image"], a3["image"]) and torch.equal(c2["boxes"], a3["boxes"])
    fixed = PromptAugment(seed=9)
    x, y = fixed(image, m, seed=11), fixed(image, m, seed=11)
    assert torch.equal(x["image"], y["image"]) and fixed.calls == 0


def test_missing_inputs_give_none_and_empty_prompts_pass(batch):
    image = batch[0]
    out = PromptAugment()(image, boxes=torch.zeros(8, 0, 4), points=torch.zeros(8, 0, 2))
    assert out["masks"] is None and out["boxes"].shape == (8, 0, 4)
    assert out["image"].shape == image.shape


@pytest.mark.parametrize("kwargs, match", [
    ({"image": torch.zeros(2, 1, 8, 8)}, "B, 3, H, W"),                       # grey image
    ({"image": torch.zeros(2, 3, 8, 8, dtype=torch.uint8)}, "float"),         # uint8 image
    ({"masks": torch.zeros(3, 1, 8, 8)}, "B = 2"),                            # batch differs
    ({"masks": torch.zeros(2, 1, 9, 8)}, "same size"),                        # size differs
    ({"boxes": torch.zeros(2, 4)}, "B, N, 4"),                                # no N axis
    ({"boxes": torch.tensor([[[5.0, 0, 1, 4]]] * 2)}, "x1 >= x0"),            # inverted box
    ({"points": torch.zeros(2, 3, 3)}, "B, N, 2"),                            # xyz points
])
def test_bad_inputs_raise(kwargs, match):
    args = {"image": torch.zeros(2, 3, 8, 8), **kwargs}
    with pytest.raises(RodentsegError, match=match):
        PromptAugment()(**args)


@pytest.mark.parametrize("options, match", [
    ({"rotate": 10}, "unknown augment option"),  # not a field: the known ones are listed
    ({"hflip": 1.5}, r"\[0, 1\]"),               # probability above 1
    ({"scale": (1.2, 0.8)}, "lo <= hi"),          # reversed range
    ({"hue": 0.7}, "hue"),                        # beyond half the colour wheel
])
def test_bad_config_raises(options, match):
    with pytest.raises(RodentsegError, match=match):
        PromptAugment(options)


def test_config_from_yaml_lists():
    cfg = PromptAugmentConfig.from_dict({"scale": [0.5, 2.0], "blur_sigma": [0.2, 0.4]})
    assert cfg.scale == (0.5, 2.0) and cfg.hflip == 0.5
