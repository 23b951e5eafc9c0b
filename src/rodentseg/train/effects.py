"""Image effects for what the training sets still do not show (issue 19, part 3), on batches of
composed scenes: coat inversion, bedding-like floors, shadow halos and reflections.

:class:`~rodentseg.train.augment.CopyPasteAugment` applies each to a share of its images given by
an ``augment`` key (``p_invert``, ``p_bedding``, ``p_halo``, ``p_reflection``; 0 by default), in
that order, after the animals are pasted and before the photometric jitter; the labels never
change (a shadow, a bedding flake and a reflection are not animals). The ranges below are the
effects' own; the functions take the generator of the augmentation, so a seed gives the same
batches. Shapes: ``img`` (n, 1, H, W) float luma in [0, 1], ``lab`` (n, 1, H, W) float in {0, 1}.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.enhance import invert
from kornia.filters import gaussian_blur2d
from kornia.geometry.transform import translate, warp_affine

#: Bedding flake sizes in pixels (each image gets each size with probability 1/2, at least one).
FLAKE_PX = (2, 4, 8, 16)
#: Bedding contrast per flake size (luma units), shadow darkening, reflection opacity.
BEDDING_STRENGTH = (0.04, 0.25)
HALO_STRENGTH = (0.15, 0.5)
REFLECTION_OPACITY = (0.12, 0.45)


def _rand(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def invert_luma(img: torch.Tensor) -> torch.Tensor:
    """``1 - img``: a black mouse on a white floor becomes a white mouse on a black floor (and a
    white mouse on dark bedding a black one on light bedding). Any shape, values in [0, 1]."""
    return invert(img, torch.tensor(1.0))


def bedding(img: torch.Tensor, lab: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Bedding-like texture on the floor: pellets and flakes of several sizes (:data:`FLAKE_PX`),
    each size darker or lighter than the floor, drawn under the animals (labelled pixels are
    unchanged).

    A flake field is Gaussian noise on a grid of ``size`` px cells (stretched up to 3x along
    one axis for flakes), upsampled bicubically and passed through a steep sigmoid above a random
    threshold: blobs of about that size covering 5-50% of the floor.
    """
    n, _, h, w = img.shape
    tex = torch.zeros_like(img)
    sizes = torch.rand(n, len(FLAKE_PX), generator=g) < 0.5
    sizes[torch.arange(n), torch.randint(0, len(FLAKE_PX), (n,), generator=g)] = True
    for k, px in enumerate(FLAKE_PX):
        stretch = 1 + 2 * float(torch.rand(1, generator=g))
        ch, cw = (px, px * stretch) if torch.rand(1, generator=g) < 0.5 else (px * stretch, px)
        noise = torch.randn(n, 1, math.ceil(h / ch) + 1, math.ceil(w / cw) + 1, generator=g)
        field = F.interpolate(noise, size=(h, w), mode="bicubic", align_corners=False)
        thr = _rand(g, n, 0.0, 1.3)[:, None, None, None]
        blobs = torch.sigmoid((field - thr) * 8)
        amp = _rand(g, n, *BEDDING_STRENGTH) * torch.where(torch.rand(n, generator=g) < 0.5,
                                                            -1.0, 1.0) * sizes[:, k]
        tex = tex + amp[:, None, None, None] * blobs
    return (img + tex * (1 - lab)).clamp(0, 1)


def shadow_halo(img: torch.Tensor, lab: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A soft dark halo around the animals (their shadow under lamps or infrared lights), not
    labelled: the labels grown by 1-6 px, shifted by up to 8 px in a random direction (the
    light's side), blurred with sigma 2-8 px and darkening the floor by 15-50% at most; pixels
    of the animals themselves are unchanged. The halo is built at a quarter of the resolution
    (it is smooth) and upsampled."""
    n, _, h, w = img.shape
    r = int(torch.randint(1, 7, (1,), generator=g))
    grown = F.max_pool2d(lab, 2 * r + 1, 1, r)
    small = F.avg_pool2d(grown, 4, ceil_mode=True)
    ang, dist = _rand(g, n, 0, 2 * math.pi), _rand(g, n, 0, 8) / 4
    shifted = translate(small, torch.stack([dist * torch.cos(ang), dist * torch.sin(ang)], -1))
    sigma = _rand(g, n, 2, 8) / 4
    halo = gaussian_blur2d(shifted, (13, 13), torch.stack([sigma, sigma], -1),
                           border_type="constant")
    halo = F.interpolate(halo, size=(h, w), mode="bilinear", align_corners=False)
    shade = _rand(g, n, *HALO_STRENGTH)[:, None, None, None] * halo.clamp(0, 1) * (1 - lab)
    return img * (1 - shade)


def mirror_lines(lab: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A random mirror (a wall) next to each image's animals: an axis-aligned line 0-12 px beyond
    one side of their bounding box.

    Returns:
        axis: (n,) long, 0 = a vertical line ``x = pos``, 1 = a horizontal line ``y = pos``.
        pos: (n,) float pixels (NaN for an image without animals).
    """
    n, _, h, w = lab.shape
    axis = torch.randint(0, 2, (n,), generator=g)
    side = torch.rand(n, generator=g) < 0.5
    gap = _rand(g, n, 0, 12)
    pos = torch.full((n,), float("nan"))
    for i in range(n):
        on = lab[i, 0].amax(0 if axis[i] == 0 else 1) > 0  # columns (x) or rows (y) with animal
        if on.any():
            idx = torch.nonzero(on)[:, 0].float()
            pos[i] = idx.max() + 0.5 + gap[i] if side[i] else idx.min() - 0.5 - gap[i]
    return axis, pos


def reflection(img: torch.Tensor, lab: torch.Tensor, g: torch.Generator,
               axis: torch.Tensor | None = None, pos: torch.Tensor | None = None) -> torch.Tensor:
    """A faint mirrored copy of the animals beyond a wall next to them (acrylic and glossy walls
    reflect the animal; the ``sleap-homecage`` mid view shows one), not labelled: the image is
    mirrored about the line (:func:`mirror_lines` unless ``axis`` and ``pos`` are given), blurred
    a little (sigma 0.5-2 px) and blended in where the mirrored animals fall, at an opacity of
    12-45%; the animals' own pixels are unchanged."""
    n, _, h, w = img.shape
    if axis is None or pos is None:
        axis, pos = mirror_lines(lab, g)
    ok = torch.isfinite(pos)
    p = torch.where(ok, pos, torch.zeros_like(pos))
    m = torch.zeros(n, 2, 3)
    vertical = axis == 0
    m[:, 0, 0] = torch.where(vertical, -1.0, 1.0)
    m[:, 1, 1] = torch.where(vertical, 1.0, -1.0)
    m[:, 0, 2] = torch.where(vertical, 2 * p, 0.0)  # x' = 2 pos - x (align_corners: px centres)
    m[:, 1, 2] = torch.where(vertical, 0.0, 2 * p)
    both = warp_affine(torch.cat([img, lab], 1), m, (h, w), align_corners=True)
    sigma = _rand(g, n, 0.5, 2.0)
    both = gaussian_blur2d(both, (9, 9), torch.stack([sigma, sigma], -1))
    mirrored, ghost = both[:, :1], both[:, 1:].clamp(0, 1)
    a = _rand(g, n, *REFLECTION_OPACITY)[:, None, None, None] * ok[:, None, None, None]
    blend = a * ghost * (1 - lab)
    return img * (1 - blend) + mirrored * blend
