"""Copy-paste augmentation for rodent segmentation, as batched torch ops.

Each training image is one of: a real labelled frame under a random similarity transform;
the session's empty background (per-pixel median of the frames, Barnich-style background
estimate) with 0-3 rodents pasted in; or a synthetic arena (floor gradient, dark rings such as
circular arena walls, boxes, thin lines) with 0-3 rodents pasted in. Half of the pasted scenes
get a dark surround outside a large circle (a round arena's wall), and most rodents pasted into
them are put against it: a dark animal touching a dark wall is where a model trained on one open
field fails first. ``p_real_wall`` gives real frames the same surround (the filmed rodent's
label is cut where the wall covers it), so that phases trained on frames as filmed keep it.
Pasted rodents are the labelled animals cut out by their masks, rotated, scaled, flipped and
re-lit, so one session yields multi-animal, touching and occluding examples at many sizes
(copy-paste augmentation, Ghiasi et al. 2021, "Simple Copy-Paste is a Strong Data Augmentation
Method for Instance Segmentation"). Photometric jitter (contrast, brightness, gamma, blur,
noise) follows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from rodentseg.train.data import LabelledFrames


@dataclass
class AugmentConfig:
    """Ranges of the random transforms (see the module docstring)."""

    p_real: float = 0.35  # share of real frames; the rest are split between median bg and synthetic
    p_synthetic: float = 0.35
    scale: tuple[float, float] = (0.3, 1.3)  # linear size of a pasted rodent vs. the source
    real_scale: tuple[float, float] = (0.5, 1.3)
    max_paste: int = 3
    contrast: tuple[float, float] = (0.6, 1.4)
    brightness: float = 0.15
    log_gamma: float = 0.4
    blur_sigma: float = 1.5
    noise: float = 0.03
    fur_gain: tuple[float, float] = (0.6, 1.4)
    p_wall: float = 0.5  # share of pasted scenes given a dark arena wall
    p_at_wall: float = 0.7  # chance that a rodent pasted into such a scene is put at the wall
    p_real_wall: float = 0.0  # share of real frames given the same dark surround (labels cut)


def _affine(n: int, scale: torch.Tensor, src_c: torch.Tensor, dst_c: torch.Tensor, h: int, w: int,
            g: torch.Generator) -> torch.Tensor:
    """``affine_grid`` thetas (n, 2, 3) that move ``src_c`` to ``dst_c`` (normalised xy), rotate
    by a uniform angle, flip half of the time and magnify by ``scale``."""
    ang = torch.rand(n, generator=g) * 2 * math.pi
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    # pixel-space matrix output->input, then conjugated into normalised coordinates
    a = torch.stack([torch.stack([cos * flip, -sin], -1), torch.stack([sin * flip, cos], -1)], -2)
    d = torch.tensor([w / 2.0, h / 2.0])
    a = a * d[None, None, :] / d[None, :, None]
    t = src_c - (a @ dst_c[..., None])[..., 0]
    return torch.cat([a, t[..., None]], -1)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-sample separable Gaussian blur of (B, 1, H, W); sigma (B,) in pixels (0 = none)."""
    r = 4
    k = torch.arange(-r, r + 1, dtype=x.dtype)
    ker = torch.exp(-(k[None] ** 2) / (2 * sigma.clamp(min=1e-3)[:, None] ** 2))
    ker = ker / ker.sum(1, keepdim=True)
    b, _, h, w = x.shape
    y = x.view(1, b, h, w)
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), ker[:, None, None, :], groups=b)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), ker[:, None, :, None], groups=b)
    return y.view(b, 1, h, w)


class CopyPasteAugment:
    """Draws augmented (image, label) batches from a set of labelled frames.

    Args:
        data: the labelled frames (training split only).
        cfg: transform ranges.
        seed: seed of the generator; the same seed gives the same batches.
    """

    def __init__(self, data: LabelledFrames, cfg: AugmentConfig | None = None, seed: int = 0):
        self.cfg = cfg or AugmentConfig()
        self.g = torch.Generator().manual_seed(seed)
        self.frames = torch.from_numpy(data.frames).float()[:, None] / 255.0
        self.masks = torch.from_numpy(data.masks).float()[:, None]
        _, _, self.h, self.w = self.frames.shape
        # the animal moves, the camera does not: the per-pixel median is the empty arena
        self.background = torch.from_numpy(np.median(data.frames, axis=0)).float()[None, None] / 255
        self.alpha = F.avg_pool2d(self.masks, 3, 1, 1)  # slightly soft cut-out edges
        # pixel row and column of every pixel, (H, W) float each
        self.ys, self.xs = torch.meshgrid(torch.arange(self.h).float(),
                                          torch.arange(self.w).float(), indexing="ij")
        area = self.masks.sum((1, 2, 3)).clamp(min=1)
        cx = (self.masks[:, 0] * self.xs).sum((1, 2)) / area
        cy = (self.masks[:, 0] * self.ys).sum((1, 2)) / area
        self.centroid = torch.stack([cx / (self.w / 2) - 1, cy / (self.h / 2) - 1], -1)  # normalised

    def _rand(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=self.g)

    def _warp(self, src: list[torch.Tensor], scale: torch.Tensor, idx: torch.Tensor,
              padding: str, dst: torch.Tensor | None = None) -> list[torch.Tensor]:
        n = len(idx)
        if dst is None:
            dst = self._rand(2 * n, -0.9, 0.9).view(n, 2)
        theta = _affine(n, scale, self.centroid[idx], dst, self.h, self.w, self.g)
        grid = F.affine_grid(theta, [n, 1, self.h, self.w], align_corners=False)
        return [F.grid_sample(s[idx], grid, padding_mode=padding, align_corners=False) for s in src]

    def _synthetic(self, n: int) -> torch.Tensor:
        h, w, g = self.h, self.w, self.g
        base = self._rand(n, 0.35, 0.95)[:, None, None, None]
        low = F.interpolate(torch.randn(n, 1, 4, 5, generator=g) * 0.08, size=(h, w),
                            mode="bicubic", align_corners=False)
        img = base + low
        ys, xs = self.ys, self.xs
        for i in range(n):
            if torch.rand(1, generator=g) < 0.7:  # circular arena wall: a dark annulus
                cx, cy = self._rand(1, 0.3 * w, 0.7 * w), self._rand(1, 0.3 * h, 0.7 * h)
                r_in = self._rand(1, 0.3 * h, 0.6 * w)
                r_out = r_in + self._rand(1, 0.1 * h, 0.6 * h)
                d = ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt()
                img[i, 0][(d > r_in) & (d <= r_out)] = self._rand(1, 0.08, 0.55)
                img[i, 0][d > r_out] = self._rand(1, 0.3, 1.0)
            for _ in range(int(torch.randint(0, 3, (1,), generator=g))):  # boxes, shelters
                x0, y0 = int(self._rand(1, 0, w)), int(self._rand(1, 0, h))
                bw, bh = int(self._rand(1, 10, w / 2)), int(self._rand(1, 10, h / 2))
                img[i, 0, y0:y0 + bh, x0:x0 + bw] = self._rand(1, 0.05, 0.95)
            for _ in range(int(torch.randint(0, 4, (1,), generator=g))):  # thin floor lines
                ang = self._rand(1, 0, math.pi)
                off = self._rand(1, -0.5 * w, 0.5 * w)
                dist = (xs - w / 2) * torch.sin(ang) - (ys - h / 2) * torch.cos(ang) - off
                width = self._rand(1, 0.5, 2.0)
                img[i, 0] -= self._rand(1, 0.05, 0.35) * (dist.abs() < width).float()
        return img.clamp(0, 1)

    def _walls(self, img: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        """Darken everything outside a large circle (the dark wall or surround of a round arena)
        and clear the labels there (a filmed rodent under the wall is gone), both (n, 1, H, W)
        in place; returns (n, 3) circles ``(cx, cy, r)`` in pixels."""
        n, h, w = len(img), self.h, self.w
        cx, cy = self._rand(n, -0.2 * w, 1.2 * w), self._rand(n, -0.2 * h, 1.2 * h)
        r = self._rand(n, 0.35 * h, 1.1 * w)
        circles = torch.stack([cx, cy, r], -1)
        inside = self._inside(circles)
        shade = self._rand(n, 0.08, 0.45)[:, None, None, None] + F.interpolate(
            torch.randn(n, 1, 3, 4, generator=self.g) * 0.04, size=(h, w), mode="bicubic",
            align_corners=False)
        img.copy_(torch.where(inside == 0, shade, img))
        lab.mul_(inside)
        return circles

    def _inside(self, circles: torch.Tensor) -> torch.Tensor:
        """(n, 1, H, W) float, 1 inside each circle ``(cx, cy, r)`` (pixels), 0 outside."""
        cx, cy, r = (circles[:, k, None, None] for k in range(3))
        return (((self.xs - cx) ** 2 + (self.ys - cy) ** 2).sqrt() <= r).float()[:, None]

    def _at_wall(self, circles: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Normalised destinations just inside each circle's edge, touching it (a rodent of
        ~60 px at scale 1 has its centroid 5-35 px from the edge)."""
        n = len(circles)
        ang = self._rand(n, 0, 2 * math.pi)
        d = circles[:, 2] - self._rand(n, 5, 35) * scale
        x = (circles[:, 0] + d * torch.cos(ang)).clamp(0, self.w - 1)
        y = (circles[:, 1] + d * torch.sin(ang)).clamp(0, self.h - 1)
        return torch.stack([x / (self.w / 2) - 1, y / (self.h / 2) - 1], -1)

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch.

        Returns:
            images: (B, 1, H, W) float32 luma in [0, 1].
            labels: (B, 1, H, W) float32, 1 = rodent.
        """
        c, g, n_src = self.cfg, self.g, len(self.frames)
        mode = torch.rand(batch, generator=g)
        real = mode < c.p_real
        synth = mode >= 1 - c.p_synthetic
        img = torch.empty(batch, 1, self.h, self.w)
        lab = torch.zeros(batch, 1, self.h, self.w)
        if real.any():
            idx = torch.randint(0, n_src, (int(real.sum()),), generator=g)
            scale = self._rand(len(idx), *c.real_scale)
            img[real], warped = self._warp([self.frames, self.masks], scale, idx, "reflection")
            lab[real] = (warped > 0.5).float()
        if synth.any():
            img[synth] = self._synthetic(int(synth.sum()))
        median = ~real & ~synth
        if median.any():
            bg = self.background.expand(int(median.sum()), -1, -1, -1)
            flip = torch.rand(len(bg), generator=g) < 0.5
            img[median] = torch.where(flip[:, None, None, None], bg.flip(-1), bg)
        # dark arena walls on pasted scenes: rodents touching a dark surround must stay rodents
        walled = ~real & (torch.rand(batch, generator=g) < c.p_wall)
        if c.p_real_wall:  # drawn only when asked for, so older configs get the same batches
            walled |= real & (torch.rand(batch, generator=g) < c.p_real_wall)
        circles = torch.zeros(batch, 3)
        if walled.any():
            sub_img, sub_lab = img[walled], lab[walled]
            circles[walled] = self._walls(sub_img, sub_lab)
            img[walled], lab[walled] = sub_img, sub_lab
        # paste 0..max_paste rodents (fewer on real frames, which already have one)
        n_paste = torch.randint(0, c.max_paste + 1, (batch,), generator=g)
        n_paste[real] = (n_paste[real] - 1).clamp(min=0)
        n_paste[walled & ~real] = n_paste[walled & ~real].clamp(min=1)
        for k in range(c.max_paste):
            sel = torch.nonzero(n_paste > k)[:, 0]
            if len(sel) == 0:
                break
            idx = torch.randint(0, n_src, (len(sel),), generator=g)
            scale = torch.exp(self._rand(len(sel), math.log(c.scale[0]), math.log(c.scale[1])))
            dst = self._rand(2 * len(sel), -0.9, 0.9).view(len(sel), 2)
            at_wall = walled[sel] & (torch.rand(len(sel), generator=g) < c.p_at_wall)
            if at_wall.any():
                dst[at_wall] = self._at_wall(circles[sel][at_wall], scale[at_wall])
            fur, alpha = self._warp([self.frames, self.alpha], scale, idx, "zeros", dst)
            fur = (fur * self._rand(len(sel), *c.fur_gain)[:, None, None, None]).clamp(0, 1)
            img[sel] = img[sel] * (1 - alpha) + fur * alpha
            lab[sel] = torch.maximum(lab[sel], (alpha > 0.5).float())
        # photometric jitter
        con = self._rand(batch, *c.contrast)[:, None, None, None]
        bri = self._rand(batch, -c.brightness, c.brightness)[:, None, None, None]
        gam = torch.exp(self._rand(batch, -c.log_gamma, c.log_gamma))[:, None, None, None]
        img = (((img - 0.5) * con + 0.5 + bri).clamp(1e-4, 1)) ** gam
        sigma = self._rand(batch, 0, c.blur_sigma) * (torch.rand(batch, generator=g) < 0.5)
        img = torch.where(sigma[:, None, None, None] > 0.2, _gaussian_blur(img, sigma), img)
        img = img + torch.randn(img.shape, generator=g) * self._rand(batch, 0, c.noise)[:, None,
                                                                                       None, None]
        return img.clamp(0, 1), lab
