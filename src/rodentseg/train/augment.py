"""Copy-paste augmentation for rodent segmentation, as batched torch ops.

Each training image is a canvas-sized scene (:mod:`rodentseg.train.canvas`: the frames' own
size when they have one, e.g. 384x512 for many setups), one of: a real labelled frame under a
random similarity transform that keeps its animals in view (an empty-arena frame: anywhere);
an empty arena of the same videos (per-pixel median of each video's frames with the animals
masked out, Barnich-style background estimate) with 0-3 rodents pasted in; or a synthetic arena
(floor gradient, dark rings such as circular arena walls, boxes, thin lines) with 0-3 rodents
pasted in. Real frames, backgrounds and pasted rodents draw each setup equally often, whatever
its number of frames (balanced sampling). Half of the pasted scenes get a dark surround outside
a large circle (a round arena's wall), and most rodents pasted into them are put against it: a
dark animal touching a dark wall is where a model trained on one open field fails first.
``p_real_wall`` gives real frames the same surround (the filmed rodent's label is cut where the
wall covers it), so that phases trained on frames as filmed keep it. Pasted rodents are the
labelled animals cut out by their masks, rotated, scaled, flipped and re-lit (some inverted,
``p_invert_animal``; some put touching or overlapping the one before, ``p_touch``), so the sets
yield multi-animal, touching and occluding examples at many sizes (copy-paste augmentation,
Ghiasi et al. 2021, "Simple Copy-Paste is a Strong Data Augmentation Method for Instance
Segmentation"). Then the effects of :mod:`rodentseg.train.effects` (coat inversion, bedding,
shadow halos, reflections; each off by default) and photometric jitter (contrast, brightness,
gamma, blur, noise). With every new key at its default, one set of frames of one size gives the
batches it gave before these were added, except for its empty-arena background, which no longer
takes in the animals (a per-video median with the animals masked out instead of one median of
all frames).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch
import torch.nn.functional as F

from rodentseg.errors import RodentsegError
from rodentseg.train import effects
from rodentseg.train.canvas import animal_lengths, resolve_canvas, video_backgrounds
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
    # the training canvas (rodentseg.train.canvas); fixed for a run (not in a finish phase)
    canvas: tuple[int, int] | None = None  # (H, W); None: the frames' size if one, else 384x512
    animal_length: tuple[float, float] | None = None  # (lo, hi) body length px; None: as filmed
    # what the sets do not show (rodentseg.train.effects), each a share of the images
    p_invert: float = 0.0  # whole image's luma inverted: black-on-white -> white-on-black
    p_invert_animal: float = 0.0  # share of pasted rodents inverted (white among black ones)
    p_touch: float = 0.0  # share of pasted rodents put touching/overlapping the previous one
    p_bedding: float = 0.0  # bedding-like pellets and flakes on the floor
    p_halo: float = 0.0  # a blurred dark halo (shadow) around the animals, not labelled
    p_reflection: float = 0.0  # a faint mirrored copy of the animals beyond a wall, not labelled

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("p_") and not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise RodentsegError(f"augment.{f.name} is a probability in [0, 1]; got {v!r}")
        if self.canvas is not None and (len(self.canvas) != 2 or min(self.canvas) < 32):
            raise RodentsegError(f"augment.canvas must be [H, W] pixels, each >= 32; got "
                                 f"{self.canvas!r}")
        if self.animal_length is not None and (len(self.animal_length) != 2
                                               or not 0 < self.animal_length[0]
                                               <= self.animal_length[1]):
            raise RodentsegError(f"augment.animal_length must be [lo, hi] pixels with 0 < lo <= "
                                 f"hi; got {self.animal_length!r}")


def _affine(scale: torch.Tensor, ang: torch.Tensor, flip: torch.Tensor, src_c: torch.Tensor,
            dst_c: torch.Tensor, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> torch.Tensor:
    """``affine_grid`` thetas (n, 2, 3) that move ``src_c`` (normalised xy in the input) to
    ``dst_c`` (normalised xy in the output), rotate by ``ang`` (radians), mirror where ``flip``
    is -1 and magnify by ``scale``; input and output may differ in size (pixels keep their
    size, times ``scale``)."""
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    # pixel-space matrix output->input, then conjugated into normalised coordinates
    a = torch.stack([torch.stack([cos * flip, -sin], -1), torch.stack([sin * flip, cos], -1)], -2)
    d_in = torch.tensor([in_hw[1] / 2.0, in_hw[0] / 2.0])
    d_out = torch.tensor([out_hw[1] / 2.0, out_hw[0] / 2.0])
    a = a * d_out[None, None, :] / d_in[None, :, None]
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
    """Draws augmented (image, label) batches from labelled frames of one or many setups.

    Args:
        data: the labelled frames (training split only): one :class:`LabelledFrames`, or one per
            setup and frame size as :func:`rodentseg.train.canvas.training_groups` prepares them
            (each at the scale it trains at).
        cfg: transform ranges.
        seed: seed of the generator; the same seed gives the same batches.
        canvas: (H, W) of the batches; default ``cfg.canvas``, else the frames' size when they
            all have one, else :data:`rodentseg.train.canvas.DEFAULT_CANVAS`.

    Raises:
        RodentsegError: no frames, or no frame with an animal to paste.
    """

    def __init__(self, data: LabelledFrames | Sequence[LabelledFrames],
                 cfg: AugmentConfig | None = None, seed: int = 0,
                 canvas: tuple[int, int] | None = None):
        self.cfg = cfg or AugmentConfig()
        self.g = torch.Generator().manual_seed(seed)
        groups = [data] if isinstance(data, LabelledFrames) else [d for d in data if len(d.frames)]
        if not groups:
            raise RodentsegError("expected at least one labelled frame to draw batches from")
        self.h, self.w = canvas or resolve_canvas([d.frames.shape[1:] for d in groups],
                                                  self.cfg.canvas)
        # pixel row and column of every canvas pixel, (H, W) float each
        self.ys, self.xs = torch.meshgrid(torch.arange(self.h).float(),
                                          torch.arange(self.w).float(), indexing="ij")
        setups = list(dict.fromkeys(d.setup for d in groups))
        self.groups, group_of, centroid, has_animal, setup_of = [], [], [], [], []
        self.backgrounds: list[torch.Tensor] = []
        bg_setup = []
        for k, d in enumerate(groups):
            frames = torch.from_numpy(d.frames)[:, None]  # uint8, converted per batch
            masks = torch.from_numpy(d.masks)[:, None]
            self.groups.append((frames, masks, self._soft_edges(masks), d))
            group_of += [(k, i) for i in range(len(frames))]
            centroid.append(self._centroids(masks))
            has_animal.append(masks.flatten(1).any(1))
            setup_of += [setups.index(d.setup)] * len(frames)
            for bg in video_backgrounds(d):
                self.backgrounds.append(torch.from_numpy(bg)[None, None])
                bg_setup.append(setups.index(d.setup))
        self.group_of = torch.tensor(group_of)  # global frame index -> (group, index in it)
        self.centroid = torch.cat(centroid)  # normalised xy in its own frame
        self.has_animal = torch.cat(has_animal)
        setup_of = torch.tensor(setup_of)
        pools = [torch.nonzero(setup_of == s)[:, 0] for s in range(len(setups))]
        self.frame_pools = pools  # real frames: a setup, then one of its frames
        self.animal_pools = [p[self.has_animal[p]] for p in pools if self.has_animal[p].any()]
        if not self.animal_pools:
            raise RodentsegError("none of the training frames has a labelled animal; add "
                                 "frames with animals (empty arenas only teach what is not one)")
        bg_setup = torch.tensor(bg_setup)
        self.bg_pools = [torch.nonzero(bg_setup == s)[:, 0] for s in range(len(setups))]
        self._lengths: torch.Tensor | None = None

    @staticmethod
    def _soft_edges(masks: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """(n, 1, H, W) uint8 ninths: 9 x the 3x3 mean of each mask (the pasted animals' soft
        cut-out edges; ``k / 9`` in float32 equals ``avg_pool2d``'s mean exactly)."""
        return torch.cat([torch.round(F.avg_pool2d(masks[i:i + chunk].float(), 3, 1, 1) * 9)
                          .to(torch.uint8) for i in range(0, len(masks), chunk)])

    @staticmethod
    def _centroids(masks: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """(n, 2) normalised xy centroid of each (n, 1, H, W) mask ((-1, -1) when empty)."""
        h, w = masks.shape[-2:]
        ys, xs = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        out = []
        for i in range(0, len(masks), chunk):
            m = masks[i:i + chunk].float()
            area = m.sum((1, 2, 3)).clamp(min=1)
            cx = (m[:, 0] * xs).sum((1, 2)) / area
            cy = (m[:, 0] * ys).sum((1, 2)) / area
            out.append(torch.stack([cx / (w / 2) - 1, cy / (h / 2) - 1], -1))
        return torch.cat(out)

    @property
    def lengths(self) -> torch.Tensor:
        """(N,) body length of each frame's animals, pixels at training scale (NaN: none);
        measured here when the frames came without them."""
        if self._lengths is None:
            out = []
            for _, masks, _, d in self.groups:
                if d.lengths is not None:
                    out.append(torch.as_tensor(d.lengths, dtype=torch.float32))
                else:
                    out.append(torch.tensor([float(np.median(x)) if (x := animal_lengths(
                        m.numpy().astype(np.int32))) else float("nan") for m in masks[:, 0]]))
            self._lengths = torch.cat(out)
        return self._lengths

    def _rand(self, n: int, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=self.g)

    def _pick(self, n: int, pools: list[torch.Tensor]) -> torch.Tensor:
        """(n,) indices: a pool (a setup) uniformly, then one of its members uniformly."""
        if len(pools) == 1:
            return pools[0][torch.randint(0, len(pools[0]), (n,), generator=self.g)]
        which = torch.randint(0, len(pools), (n,), generator=self.g)
        u = torch.rand(n, generator=self.g)
        sizes = torch.tensor([len(p) for p in pools])[which]
        j = (u * sizes).long().clamp(max=sizes - 1)
        return torch.stack([pools[k][i] for k, i in zip(which.tolist(), j.tolist())])

    def _similarity(self, n: int, dst: torch.Tensor | None = None):
        """Random destination (normalised canvas xy, unless given), angle and mirror flip."""
        if dst is None:
            dst = self._rand(2 * n, -0.9, 0.9).view(n, 2)
        ang = torch.rand(n, generator=self.g) * 2 * math.pi
        flip = torch.where(torch.rand(n, generator=self.g) < 0.5, -1.0, 1.0)
        return dst, ang, flip

    def _sample(self, src: list[torch.Tensor], src_c, dst, scale, ang, flip,
                padding: str) -> list[torch.Tensor]:
        """Warp same-sized (n, 1, h, w) float sources onto (n, 1, H, W) canvases."""
        theta = _affine(scale, ang, flip, src_c, dst, src[0].shape[-2:], (self.h, self.w))
        grid = F.affine_grid(theta, [len(theta), 1, self.h, self.w], align_corners=False)
        return [F.grid_sample(s, grid, padding_mode=padding, align_corners=False) for s in src]

    def _warp(self, what: tuple[str, ...], scale: torch.Tensor, idx: torch.Tensor,
              padding: str, dst: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Frames ``idx`` (global) on the canvas, their animals' centroid at ``dst`` (random when
        None; a frame without animals is placed by a random point); ``what`` of ``frames``
        (luma in [0, 1]), ``masks`` ({0, 1}), ``alpha`` (the mask's 3x3 mean: soft edges)."""
        n = len(idx)
        dst, ang, flip = self._similarity(n, dst)
        src_c = self.centroid[idx]
        empty = ~self.has_animal[idx]
        if empty.any():
            src_c = src_c.clone()
            src_c[empty] = self._rand(2 * int(empty.sum()), -1, 1).view(-1, 2)
        out = [torch.empty(n, 1, self.h, self.w) for _ in what]
        where = self.group_of[idx]
        for k in dict.fromkeys(where[:, 0].tolist()):
            sel = torch.nonzero(where[:, 0] == k)[:, 0]
            frames, masks, ninths, _ = self.groups[k]
            loc = where[sel, 1]
            src = []
            for name in what:
                if name == "frames":
                    src.append(frames[loc].float() / 255.0)
                elif name == "masks":
                    src.append(masks[loc].float())
                else:
                    src.append(ninths[loc].float() / 9)
            for o, x in zip(out, self._sample(src, src_c[sel], dst[sel], scale[sel], ang[sel],
                                             flip[sel], padding)):
                o[sel] = x
        return out

    def _backgrounds(self, n: int) -> torch.Tensor:
        """(n, 1, H, W) empty arenas: a setup, then one of its videos' backgrounds; one of the
        canvas's size is used whole (mirrored half of the time), another is cut out and placed
        by a random similarity transform (reflected at its borders)."""
        which = self._pick(n, [p for p in self.bg_pools if len(p)]) if len(
            self.backgrounds) > 1 else torch.zeros(n, dtype=torch.long)
        flip = torch.rand(n, generator=self.g) < 0.5
        out = torch.empty(n, 1, self.h, self.w)
        for k in dict.fromkeys(which.tolist()):
            sel = torch.nonzero(which == k)[:, 0]
            bg = self.backgrounds[k].expand(len(sel), -1, -1, -1)
            if bg.shape[-2:] == (self.h, self.w):
                out[sel] = torch.where(flip[sel, None, None, None], bg.flip(-1), bg)
            else:
                dst, ang, mirror = self._similarity(len(sel))
                src_c = self._rand(2 * len(sel), -1, 1).view(-1, 2)
                out[sel] = self._sample([bg], src_c, dst, torch.ones(len(sel)), ang, mirror,
                                        "reflection")[0]
        return out

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
            images: (B, 1, H, W) float32 luma in [0, 1], H x W the canvas.
            labels: (B, 1, H, W) float32, 1 = rodent.
        """
        c, g = self.cfg, self.g
        mode = torch.rand(batch, generator=g)
        real = mode < c.p_real
        synth = ~real & (mode >= 1 - c.p_synthetic)  # real frames first if the two add up > 1
        img = torch.empty(batch, 1, self.h, self.w)
        lab = torch.zeros(batch, 1, self.h, self.w)
        # where each image's last animal is (canvas px) and its body length: for p_touch
        anchor = torch.full((batch, 2), float("nan"))
        anchor_len = torch.full((batch,), float("nan"))
        if real.any():
            idx = self._pick(int(real.sum()), self.frame_pools)
            scale = self._rand(len(idx), *c.real_scale)
            dst = self._rand(2 * len(idx), -0.9, 0.9).view(len(idx), 2)
            img[real], warped = self._warp(("frames", "masks"), scale, idx, "reflection", dst)
            lab[real] = (warped > 0.5).float()
            if c.p_touch:
                anchor[real] = self._to_px(dst)
                anchor_len[real] = self.lengths[idx] * scale
        if synth.any():
            img[synth] = self._synthetic(int(synth.sum()))
        median = ~real & ~synth
        if median.any():
            img[median] = self._backgrounds(int(median.sum()))
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
            idx = self._pick(len(sel), self.animal_pools)
            scale = torch.exp(self._rand(len(sel), math.log(c.scale[0]), math.log(c.scale[1])))
            dst = self._rand(2 * len(sel), -0.9, 0.9).view(len(sel), 2)
            at_wall = walled[sel] & (torch.rand(len(sel), generator=g) < c.p_at_wall)
            if at_wall.any():
                dst[at_wall] = self._at_wall(circles[sel][at_wall], scale[at_wall])
            if c.p_touch:  # next to the image's previous animal, touching or overlapping it
                length = self.lengths[idx] * scale
                near = (torch.rand(len(sel), generator=g) < c.p_touch) & anchor_len[sel].isfinite()
                if near.any():
                    dst[near] = self._touching(anchor[sel][near], anchor_len[sel][near],
                                               length[near])
                anchor[sel], anchor_len[sel] = self._to_px(dst), length
            fur, alpha = self._warp(("frames", "alpha"), scale, idx, "zeros", dst)
            fur = (fur * self._rand(len(sel), *c.fur_gain)[:, None, None, None]).clamp(0, 1)
            if c.p_invert_animal:  # a white rodent among black ones, or the other way round
                inv = torch.rand(len(sel), generator=g) < c.p_invert_animal
                fur[inv] = effects.invert_luma(fur[inv])
            img[sel] = img[sel] * (1 - alpha) + fur * alpha
            lab[sel] = torch.maximum(lab[sel], (alpha > 0.5).float())
        img = self._effects(img, lab)
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

    def _effects(self, img: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        """:mod:`rodentseg.train.effects` on their shares of the batch, in order (each drawn
        only when its probability is set, so configs without them get the same batches)."""
        steps = [(self.cfg.p_invert, lambda x, y: effects.invert_luma(x)),
                 (self.cfg.p_bedding, lambda x, y: effects.bedding(x, y, self.g)),
                 (self.cfg.p_halo, lambda x, y: effects.shadow_halo(x, y, self.g)),
                 (self.cfg.p_reflection, lambda x, y: effects.reflection(x, y, self.g))]
        for p, effect in steps:
            if p:
                sel = torch.rand(len(img), generator=self.g) < p
                if sel.any():
                    img[sel] = effect(img[sel], lab[sel])
        return img

    def _to_px(self, xy: torch.Tensor) -> torch.Tensor:
        """Normalised canvas xy (n, 2) -> pixels."""
        return (xy + 1) * torch.tensor([self.w / 2, self.h / 2])

    def _touching(self, anchor: torch.Tensor, anchor_len: torch.Tensor,
                  length: torch.Tensor) -> torch.Tensor:
        """Normalised destinations 0.2-0.5 mean body lengths from ``anchor`` (pixels) in a
        random direction: two bodies that far apart touch or overlap (a mouse's body is about
        half as wide as it is long)."""
        n = len(anchor)
        ang = self._rand(n, 0, 2 * math.pi)
        d = self._rand(n, 0.2, 0.5) * (anchor_len + length) / 2
        x = (anchor[:, 0] + d * torch.cos(ang)).clamp(0, self.w - 1)
        y = (anchor[:, 1] + d * torch.sin(ang)).clamp(0, self.h - 1)
        return torch.stack([x / (self.w / 2) - 1, y / (self.h / 2) - 1], -1)
