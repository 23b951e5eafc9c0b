"""Augmentation that moves prompts with the image, on kornia (``kornia.augmentation``).

:class:`PromptAugment` applies left-right and up-down flips, a rotation + scale (+ optional
shift) (``RandomAffine``), colour jitter (``ColorJitter``) and a Gaussian blur
(``RandomGaussianBlur``) to a batch of images and, with the same random draw per sample, to
its masks, box prompts and point prompts (``kornia.augmentation.AugmentationSequential`` with
``data_keys`` input / mask / bbox_xyxy / keypoints). Colour jitter and blur change the image
only. torchvision is not usable here (see the project notes), hence kornia.

Coordinate frames (x = column, y = row, pixels):

- points: pixel centres at whole numbers (as DeepLabCut / SLEAP store keypoints and as
  :mod:`rodentseg.evaluate.keypoints` reads them). This is kornia's keypoint frame: a
  left-right flip maps ``x -> W - 1 - x``. Points are not clipped: one moved out of the frame
  keeps its coordinates (outside ``[-0.5, W - 0.5)``), for the caller to drop.
- boxes: ``xyxy`` with x1/y1 exclusive, i.e. pixel edges: the box of mask pixels ``xs, ys`` is
  ``[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]`` (as ``tracks.csv``). kornia's boxes
  are inclusive ``xyxy_plus`` corners in the pixel-centre frame, so edges are shifted by -0.5
  into kornia's frame and back by +0.5; a box is transformed as its 4 corners and the result is
  their enclosing box, clipped to ``[0, W] x [0, H]``. Flips are exact (``x0' = W - x1``). After
  a rotation the box encloses the rotated box, which contains the rotated mask; the mask,
  resampled by nearest neighbour, keeps pixels whose centres fall inside it, so the box of the
  transformed mask lies inside the transformed box to within half a pixel.
- masks: resampled by nearest neighbour, dtype kept (bool, float or integer ids); pixels that
  come from outside the frame are 0 (background). The image is resampled bilinearly with
  zero (black) padding.

Seeding: kornia draws its parameters from torch's global RNG. Each call runs inside
``torch.random.fork_rng`` seeded with ``SeedSequence([seed, calls]).generate_state(1)``, where
``calls`` counts the calls made so far, so the global RNG is left untouched, the output depends
only on ``(seed, calls)``, and :meth:`PromptAugment.state_dict` / :meth:`load_state_dict`
(``{"seed", "calls"}``) resume a run exactly. Copies in several DataLoader workers would
repeat each other's draws: augment in the main process (the batch is augmented at once), or
pass ``seed=`` per call (e.g. derived from the step).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import kornia.augmentation as K
import numpy as np
import torch

from rodentseg.errors import RodentsegError


@dataclass
class PromptAugmentConfig:
    """Probabilities and ranges of :class:`PromptAugment` (a step with probability 0 is left out).

    Attributes:
        hflip, vflip: probability of a left-right / up-down flip.
        affine: probability of the rotation + scale step.
        degrees: rotation angle uniform in ``[-degrees, degrees]`` (degrees, about the centre).
        scale: zoom factor uniform in ``(lo, hi)``, ``0 < lo <= hi`` (> 1 magnifies).
        translate: shift uniform in ``[-t, t]`` x width / height (fraction, 0 = none).
        jitter: probability of colour jitter.
        brightness, contrast, saturation: factors uniform in ``[1 - v, 1 + v]``, ``0 <= v <= 1``.
        hue: hue shift uniform in ``[-v, v]`` (fraction of the colour wheel, ``0 <= v <= 0.5``).
        blur: probability of a Gaussian blur.
        blur_sigma: blur sigma uniform in ``(lo, hi)`` pixels; kernel ``2 * ceil(3 * hi) + 1``.
    """

    hflip: float = 0.5
    vflip: float = 0.5
    affine: float = 0.8
    degrees: float = 180.0
    scale: tuple[float, float] = (0.8, 1.25)
    translate: float = 0.0
    jitter: float = 0.8
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0
    blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.1, 1.5)

    def __post_init__(self) -> None:
        self.scale, self.blur_sigma = tuple(self.scale), tuple(self.blur_sigma)
        probs = {k: getattr(self, k) for k in ("hflip", "vflip", "affine", "jitter", "blur")}
        bad = {k: v for k, v in probs.items() if not 0 <= v <= 1}
        if bad:
            raise RodentsegError(f"augment probabilities must be in [0, 1]; got {bad}")
        for key, lo_min in (("scale", 0.0), ("blur_sigma", 0.0)):
            v = getattr(self, key)
            if len(v) != 2 or not lo_min < v[0] <= v[1]:
                raise RodentsegError(f"augment {key} must be (lo, hi) with 0 < lo <= hi; got {v}")
        ranges = {"degrees": (self.degrees, 0, 360), "translate": (self.translate, 0, 1),
                  "brightness": (self.brightness, 0, 1), "contrast": (self.contrast, 0, 1),
                  "saturation": (self.saturation, 0, 1), "hue": (self.hue, 0, 0.5)}
        for key, (v, lo, hi) in ranges.items():
            if not lo <= v <= hi:
                raise RodentsegError(f"augment {key} must be in [{lo}, {hi}]; got {v}")

    @classmethod
    def from_dict(cls, options: dict | None) -> PromptAugmentConfig:
        """A config from a YAML ``augment:`` mapping; missing keys keep their defaults.

        Raises:
            RodentsegError: an unknown key (the known ones are listed) or a bad value.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options or {}) - set(known))
        if unknown:
            raise RodentsegError(f"unknown augment option(s) {unknown}; known: {known}")
        return cls(**(options or {}))


def _check(name: str, x: torch.Tensor | None, ndim: int, last: int | None, b: int) -> None:
    if x is None:
        return
    if not isinstance(x, torch.Tensor) or x.ndim != ndim or x.shape[0] != b or (
            last is not None and x.shape[-1] != last):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        want = {"masks": "(B, K, H, W)", "boxes": "(B, N, 4) xyxy", "points": "(B, N, 2) xy"}
        raise RodentsegError(f"{name} must be a tensor {want[name]} with B = {b} like the image; "
                             f"got {shape}")


class PromptAugment:
    """Random flips, rotation/scale, colour jitter and blur, applied alike to image and prompts.

    Args:
        config: a :class:`PromptAugmentConfig`, a dict of its fields, or None for defaults.
        seed: base seed of the per-call draws (see the module docstring).

    Raises:
        RodentsegError: unknown config keys or bad values.
    """

    def __init__(self, config: PromptAugmentConfig | dict | None = None, seed: int = 0):
        if not isinstance(config, PromptAugmentConfig):
            config = PromptAugmentConfig.from_dict(config)
        self.config, self.seed, self.calls = config, int(seed), 0
        c = config
        steps = []
        if c.hflip:
            steps.append(K.RandomHorizontalFlip(p=c.hflip))
        if c.vflip:
            steps.append(K.RandomVerticalFlip(p=c.vflip))
        if c.affine:
            steps.append(K.RandomAffine(degrees=c.degrees, scale=c.scale, p=c.affine,
                                        translate=(c.translate, c.translate) if c.translate
                                        else None))
        if c.jitter and (c.brightness or c.contrast or c.saturation or c.hue):
            steps.append(K.ColorJitter(c.brightness, c.contrast, c.saturation, c.hue, p=c.jitter))
        if c.blur:
            k = 2 * int(np.ceil(3 * c.blur_sigma[1])) + 1
            steps.append(K.RandomGaussianBlur((k, k), c.blur_sigma, p=c.blur))
        self._seq = K.AugmentationSequential(*steps, data_keys=["input"]) if steps else None

    def __call__(self, image: torch.Tensor, masks: torch.Tensor | None = None,
                 boxes: torch.Tensor | None = None, points: torch.Tensor | None = None,
                 *, seed: int | None = None) -> dict[str, torch.Tensor | None]:
        """Transform a batch and its prompts with one random draw per sample.

        Args:
            image: (B, 3, H, W) float in [0, 1], RGB.
            masks: (B, K, H, W) bool, float or integer (K masks or one id map per sample).
            boxes: (B, N, 4) float ``x0, y0, x1, y1`` pixels, x1/y1 exclusive.
            points: (B, N, 2) float ``x, y`` pixels, pixel centres at whole numbers.
            seed: use this seed for the draw instead of ``(self.seed, self.calls)``; the call
                counter is then not advanced.

        Returns:
            ``{"image", "masks", "boxes", "points"}`` with the inputs' shapes (None where the
            input was None): image float in [0, 1], masks in their dtype, boxes and points in
            the image's float dtype, in the frames of the module docstring.

        Raises:
            RodentsegError: a tensor of the wrong shape, a batch size that differs from the
                image's, an image that is not float, or a box with x1 < x0 or y1 < y0.
        """
        if not (isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[1] == 3
                and image.is_floating_point()):
            got = (f"{image.dtype} {tuple(image.shape)}" if isinstance(image, torch.Tensor)
                   else type(image).__name__)
            raise RodentsegError(f"image must be a float tensor (B, 3, H, W) in [0, 1]; got {got}")
        b, _, h, w = image.shape
        _check("masks", masks, 4, None, b)
        _check("boxes", boxes, 3, 4, b)
        _check("points", points, 3, 2, b)
        if masks is not None and masks.shape[-2:] != (h, w):
            raise RodentsegError(f"masks are {tuple(masks.shape[-2:])} (H, W) but the image is "
                                 f"{(h, w)}; expected the same size")
        if boxes is not None and ((boxes[..., 2] < boxes[..., 0]).any()
                                  or (boxes[..., 3] < boxes[..., 1]).any()):
            raise RodentsegError("boxes must be x0, y0, x1, y1 with x1 >= x0 and y1 >= y0")
        out = {"image": image, "masks": masks, "boxes": boxes, "points": points}
        if self._seq is None:
            return out
        names, args = ["image"], [image]
        keys = ["input"]
        for name, key, x in (("masks", "mask", masks), ("boxes", "bbox_xyxy", boxes),
                             ("points", "keypoints", points)):
            if x is not None and x.numel():
                if name != "masks":
                    x = x.to(image.dtype) - (0.5 if name == "boxes" else 0.0)
                names.append(name)
                args.append(x)
                keys.append(key)
        draw = seed if seed is not None else int(
            np.random.SeedSequence([self.seed, self.calls]).generate_state(1)[0])
        devices = [image.device] if image.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(draw)
            res = self._seq(*args, data_keys=keys)
        if seed is None:
            self.calls += 1
        res = res if isinstance(res, list) else [res]
        out.update(zip(names, res))
        out["image"] = out["image"].clamp(0, 1)
        if boxes is not None and boxes.numel():
            bx = out["boxes"] + 0.5
            bx[..., 0::2] = bx[..., 0::2].clamp(0, w)
            bx[..., 1::2] = bx[..., 1::2].clamp(0, h)
            out["boxes"] = bx
        return out

    def state_dict(self) -> dict:
        """``{"seed": int, "calls": int}``: all the random state (restored by load_state_dict)."""
        return {"seed": self.seed, "calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        """Resume the sequence of draws from :meth:`state_dict`."""
        self.seed, self.calls = int(state["seed"]), int(state["calls"])
