"""Augmentation for what the sets do not show (rodentseg.train.effects and the paste options):
coat inversion, inverted pasted animals, touching animals, bedding, shadow halos, reflections."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from rodentseg.train import effects
from rodentseg.train.augment import AugmentConfig, CopyPasteAugment
from rodentseg.train.data import LabelledFrames
from tests.train.conftest import ellipse_labels, scene

#: no photometric change, so an effect's own change is what differs between two batches
AS_IS = {"contrast": (1.0, 1.0), "brightness": 0.0, "log_gamma": 0.0, "blur_sigma": 0.0,
         "noise": 0.0}


@pytest.fixture(scope="module")
def dark_on_light():
    """Six 96x128 frames of one dark animal (40 px long) on a light floor."""
    lab = ellipse_labels(6, (96, 128), 40, seed=3)
    return LabelledFrames([f"f{i}" for i in range(6)], scene(lab, 200, 40), lab > 0,
                          ["v"] * 6, "s", np.full(6, 40.0, np.float32))


def _pair(data, key, seed=0, n=8, **cfg):
    """Two batches of the same seed: without and with ``key`` = 1."""
    a = CopyPasteAugment(data, AugmentConfig(**(AS_IS | cfg)), seed=seed)(n)
    b = CopyPasteAugment(data, AugmentConfig(**(AS_IS | cfg | {key: 1.0})), seed=seed)(n)
    return a, b


def _square(h=80, w=100, floor=0.8):
    img = torch.full((1, 1, h, w), floor)
    lab = torch.zeros(1, 1, h, w)
    lab[..., 30:50, 20:40] = 1
    return torch.where(lab > 0, torch.tensor(0.15), img), lab


# ---- each effect, through the batches

@pytest.mark.parametrize("key", ["p_invert", "p_bedding", "p_halo", "p_reflection"])
def test_effects_change_images_not_labels(dark_on_light, key):
    (img0, lab0), (img1, lab1) = _pair(dark_on_light, key, p_real=0.5, p_synthetic=0.0)
    assert torch.equal(lab0, lab1)  # a shadow, a flake, a reflection are not animals
    assert not torch.equal(img0, img1)
    if key != "p_invert":  # the animals' own pixels are untouched
        assert torch.equal(img0[lab0 > 0], img1[lab1 > 0])


def test_coat_inversion_turns_black_on_white_into_white_on_black(dark_on_light):
    (img0, lab), (img1, _) = _pair(dark_on_light, "p_invert", p_real=1.0, max_paste=0)
    assert torch.allclose(img1, 1 - img0, atol=2e-4)  # the whole luma, inverted
    for i in range(len(img1)):
        assert img1[i][lab[i] > 0].mean() > img1[i][lab[i] == 0].mean() + 0.4  # white animal


def test_inverted_paste_is_a_white_animal_on_the_floor(dark_on_light):
    (img0, lab0), (img1, lab1) = _pair(dark_on_light, "p_invert_animal", p_real=0.0,
                                       p_synthetic=0.0, p_wall=0.0, fur_gain=(1.0, 1.0))
    assert torch.equal(lab0, lab1) and lab1.sum() > 0
    inner = torch.nn.functional.avg_pool2d(lab1, 5, 1, 2) > 0.99  # away from soft edges
    assert img0[inner].mean() < 0.25 and img1[inner].mean() > 0.75


def test_touching_pastes_meet_the_animal_before(dark_on_light):
    def merged(p_touch):
        aug = CopyPasteAugment(dark_on_light, AugmentConfig(
            **(AS_IS | {"p_real": 0.0, "p_synthetic": 1.0, "p_wall": 0.0, "max_paste": 2,
                        "scale": (1.0, 1.0), "p_touch": p_touch})), seed=5)
        _, lab = aug(48)
        one = dark_on_light.masks[0].sum()  # one animal's area
        two = [lab[i, 0].numpy() > 0 for i in range(48) if lab[i].sum() > 1.5 * one]
        return np.mean([ndimage.label(m)[1] == 1 for m in two]), len(two)

    touching, n = merged(1.0)
    apart, _ = merged(0.0)
    assert n >= 10 and touching >= 0.8 and apart <= 0.5, (touching, apart, n)


def test_touching_destinations_are_within_half_a_body_length(dark_on_light):
    aug = CopyPasteAugment(dark_on_light, AugmentConfig(canvas=(384, 512)), seed=0)
    anchor = torch.tensor([[256.0, 192.0]] * 200)
    dst = aug._to_px(aug._touching(anchor, torch.full((200,), 40.0), torch.full((200,), 60.0)))
    d = (dst - anchor).norm(dim=1)
    assert d.min() >= 0.2 * 50 - 1e-3 and d.max() <= 0.5 * 50 + 1e-3


# ---- the effect functions on a known scene

def test_bedding_covers_the_floor_at_several_scales_under_the_animal():
    img, lab = _square(160, 200)
    g = torch.Generator().manual_seed(0)
    out = torch.cat([effects.bedding(img, lab, g) for _ in range(6)])
    assert torch.equal(out[lab.expand_as(out) > 0], img[lab > 0].repeat(6))
    tex = (out - img)[:, 0]
    floor = lab[0, 0] == 0
    assert tex[:, floor].std() > 0.03  # the floor is no longer flat
    coarse = torch.nn.functional.avg_pool2d(tex[:, None], 9, 1, 4)[:, 0]
    assert coarse[:, floor].std() > 0.01 and (tex - coarse)[:, floor].std() > 0.01  # big + small


def test_shadow_halo_darkens_the_floor_next_to_the_animal_only():
    img, lab = _square()
    out = effects.shadow_halo(img, lab, torch.Generator().manual_seed(1))
    assert torch.equal(out[lab > 0], img[lab > 0])
    near = (torch.nn.functional.max_pool2d(lab, 7, 1, 3) > 0) & (lab == 0)
    far = torch.nn.functional.max_pool2d(lab, 81, 1, 40) == 0
    assert (out[near] < img[near] - 0.01).float().mean() > 0.5  # a dark ring around it
    assert torch.allclose(out[far], img[far], atol=1e-3)  # nothing far away
    assert (out <= img + 1e-6).all()  # a shadow only darkens


def test_reflection_is_a_faint_mirror_image_beyond_the_wall():
    img, lab = _square()  # animal in columns 20..39
    g = torch.Generator().manual_seed(2)
    out = effects.reflection(img, lab, g, axis=torch.tensor([0]), pos=torch.tensor([44.5]))
    assert torch.equal(out[lab > 0], img[lab > 0])
    mirror = out[0, 0, 34:46, 52:66]  # columns 2 x 44.5 - (20..39) = 50..69, inner part
    assert (mirror < 0.8 - 0.05).all() and (mirror > 0.15 + 0.2).all()  # faint: between
    changed = (out - img).abs()[0, 0] > 0.02
    assert not changed[:, :45].any()  # only beyond the wall
    assert not changed[:, 75:].any() and not changed[:20].any()


def test_mirror_lines_sit_just_outside_the_animals():
    lab = torch.zeros(200, 1, 80, 100)
    lab[..., 30:50, 20:40] = 1
    lab[0] = 0  # an image without animals gets no mirror
    axis, pos = effects.mirror_lines(lab, torch.Generator().manual_seed(0))
    assert torch.isnan(pos[0]) and torch.isfinite(pos[1:]).all()
    v, h = pos[1:][axis[1:] == 0], pos[1:][axis[1:] == 1]
    assert (((v >= 39.5) & (v <= 51.5)) | ((v <= 19.5) & (v >= 7.5))).all()
    assert (((h >= 49.5) & (h <= 61.5)) | ((h <= 29.5) & (h >= 17.5))).all()
    assert len(v) and len(h)


def test_invert_luma():
    x = torch.tensor([0.0, 0.25, 1.0])
    assert torch.allclose(effects.invert_luma(x), torch.tensor([1.0, 0.75, 0.0]))
