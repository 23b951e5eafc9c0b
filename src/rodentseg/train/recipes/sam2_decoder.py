"""Recipe ``sam2-decoder``: SAM 2's prompt encoder and mask decoder trained on cached embeddings.

- Model: transformers ``Sam2Model`` (Ravi et al., "SAM 2: Segment Anything in Images and
  Videos", 2024) as :class:`rodentseg.models.finetuned.Sam2PromptNet`. The image encoder is
  frozen and run once per frame in ``setup`` (under ``no_grad``, on the GPU when there is one);
  its embeddings are kept in memory (``cache_dtype``; 16.8 MB per frame in float32 for
  sam2.1-hiera-tiny at 1024 px). Trained: the prompt encoder and the mask decoder, except
  the decoder's two high-resolution projections ``conv_s0`` / ``conv_s1`` (transformers applies
  them inside ``get_image_embeddings``, so their outputs are what is cached: 5x smaller than
  the raw FPN maps), the object-score head (no absent-object examples here) and the mask-prompt
  embedding (no mask prompts).
- Augmentation: cached embeddings cannot be augmented, so ``augment:`` must be empty; the
  prompts are randomised instead. Each batch element is one animal of one training frame, with
  probability ``p_box`` a box prompt, its mask's box with Gaussian noise on each edge of
  standard deviation ``box_noise`` x the box side, at most ``box_noise_max_px`` pixels (SAM's
  training recipe: 10 %, 20 px), else 1..``max_points`` points: the first inside the animal,
  each further one inside (label 1) or outside it (label 0) with equal chance, uniformly over
  those pixels.
- Loss (:func:`rodentseg.train.losses.sam_loss`): focal + Dice + IoU-prediction MSE, 20 : 1 : 1
  (Kirillov et al. 2023), on the low-resolution logits upsampled bilinearly to the frame's full
  resolution; a single-point prompt gets 3 candidate masks and only the best is trained.
- Evaluation (``predict``): the standard SAM evaluation with ground-truth boxes: every animal
  of the item's mask gives its box (xyxy, x1/y1 exclusive), without noise; the result is the
  union (pixel-wise maximum) of their probabilities. ``rodentseg segment --model runs/<name>``
  takes its boxes from ``rodentseg-tiny`` instead (:class:`Sam2BoxSegmenter`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rodentseg.errors import RodentsegError
from rodentseg.models.finetuned import (
    FinetunedSettings,
    Sam2PromptNet,
    as_rgb_frames,
    sam2_box_probs,
    save_finetuned,
)
from rodentseg.train.losses import sam_loss
from rodentseg.train.recipe import register
from rodentseg.train.recipes.segformer import RANDOM_HINT, FrameSampler, parse_options

TRAINED = ("prompt_encoder.", "mask_decoder.")
FROZEN_IN_TRAINED = ("mask_decoder.conv_s0.", "mask_decoder.conv_s1.",
                     "mask_decoder.pred_obj_score_head.", "prompt_encoder.mask_embed.")
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class Sam2DecoderOptions:
    """``model:`` options of ``sam2-decoder``.

    Attributes:
        pretrained: short name (``sam2.1-tiny``), hub id or directory of a SAM 2 checkpoint,
            or None for random weights.
        config: ``Sam2Config`` arguments, only with ``pretrained: null`` (default: the
            sam2.1-hiera-tiny architecture).
        p_box: probability that a batch is prompted with boxes rather than points.
        box_noise, box_noise_max_px: box edge noise, std as a fraction of the box side, capped
            in pixels.
        max_points: most points in a point prompt.
        cache_dtype: ``float32``, ``float16`` or ``bfloat16`` storage of the embeddings.
        cache_device: where the encoder runs in ``setup``: ``auto`` (CUDA if present), ``cpu``,
            ``cuda[:N]``.
        detector: the segmenter whose boxes prompt SAM 2 in ``rodentseg segment``.
        threshold: probability above which a pixel is rodent at inference.
    """

    pretrained: str | None = "facebook/sam2.1-hiera-tiny"
    config: dict = field(default_factory=dict)
    p_box: float = 0.5
    box_noise: float = 0.1
    box_noise_max_px: float = 20.0
    max_points: int = 3
    cache_dtype: str = "float32"
    cache_device: str = "auto"
    detector: str = "rodentseg-tiny"
    threshold: float = 0.5


def instance_boxes(mask: np.ndarray) -> np.ndarray:
    """(K, 4) float32 xyxy pixel boxes (x1/y1 exclusive) of the ids > 0 of an (H, W) id mask."""
    boxes = []
    for i in np.unique(mask[mask > 0]):
        ys, xs = np.nonzero(mask == i)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest() + str(image.shape)


@register("sam2-decoder")
class Sam2DecoderRecipe:
    """SAM 2 prompt encoder + mask decoder on cached image embeddings (module docstring)."""

    def __init__(self, model_options: dict | None, augment_options: dict | None, seed: int = 0):
        o = self.options = parse_options(Sam2DecoderOptions, model_options, "sam2-decoder")
        if augment_options:
            raise RodentsegError(
                "sam2-decoder trains on cached image embeddings, so images cannot be augmented; "
                f"expected an empty augment: mapping, got {sorted(augment_options)} (prompts are "
                "randomised instead: model.p_box, box_noise, max_points)")
        if not (0 <= o.p_box <= 1 and o.box_noise >= 0 and o.max_points >= 1):
            raise RodentsegError(f"expected 0 <= p_box <= 1, box_noise >= 0, max_points >= 1; got "
                                 f"{o.p_box}, {o.box_noise}, {o.max_points}")
        if o.cache_dtype not in _DTYPES:
            raise RodentsegError(f"model.cache_dtype must be one of {sorted(_DTYPES)}; got "
                                 f"{o.cache_dtype!r}")
        if o.config and o.pretrained is not None:
            raise RodentsegError("model.config applies to random weights only; set "
                                 "model.pretrained=null with it, or drop model.config")
        self.threshold, self.seed = float(o.threshold), seed
        self.settings = FinetunedSettings(recipe="sam2-decoder", threshold=self.threshold,
                                          detector=o.detector)
        self.net: Sam2PromptNet | None = None
        self.sampler: FrameSampler | None = None
        self.val_cache: dict[str, list[torch.Tensor]] = {}

    def _build(self) -> Sam2PromptNet:
        from transformers import Sam2Config, Sam2Model

        o = self.options
        if o.pretrained is None:
            sam = Sam2Model(Sam2Config(**o.config))
        else:
            from rodentseg.annotate import load_image_model

            try:
                sam = load_image_model(o.pretrained, "cpu").model
            except RodentsegError as e:
                raise RodentsegError(f"{e}; {RANDOM_HINT}") from None
            if not isinstance(sam, Sam2Model):
                raise RodentsegError(f"{o.pretrained!r} is a {type(sam).__name__}; sam2-decoder "
                                     "expects a SAM 2 checkpoint (e.g. facebook/sam2.1-hiera-tiny)")
        for name, p in sam.named_parameters():
            p.requires_grad = name.startswith(TRAINED) and not name.startswith(FROZEN_IN_TRAINED)
        return Sam2PromptNet(sam, self.settings)

    def _embed_all(self, items: list[dict], device: torch.device) -> list[list[torch.Tensor]]:
        out = []
        for it in items:  # one frame per encoder call: frames may differ in size
            emb = self.net.embed(as_rgb_frames(it["image"][None]))
            out.append([e[0].to("cpu", _DTYPES[self.options.cache_dtype]) for e in emb])
        return out

    def setup(self, train, val) -> None:
        """Build the model, cache the image embeddings of every training and validation frame.

        Raises:
            RodentsegError: no training frame with an animal, or the checkpoint fails to load.
        """
        from rodentseg.models import resolve_device

        self.net = self._build()
        dev = resolve_device(self.options.cache_device)
        self.net.to(dev).eval()
        items = [it for it in (train[i] for i in range(len(train))) if (it["mask"] > 0).any()]
        if not items:
            raise RodentsegError("sam2-decoder needs training frames with at least one animal; "
                                 "every training mask is empty")
        self.masks = [np.asarray(it["mask"]) for it in items]
        self.ids = [np.unique(m[m > 0]) for m in self.masks]
        self.cache = self._embed_all(items, dev)
        vals = [val[i] for i in range(len(val))]
        self.val_cache = dict(zip((_key(v["image"]) for v in vals), self._embed_all(vals, dev)))
        self.net.cpu().train()
        self.sampler = FrameSampler([m.shape for m in self.masks], self.seed)

    def build_model(self) -> nn.Module:
        """The :class:`Sam2PromptNet` built in ``setup`` (only decoder-side parameters train)."""
        if self.net is None:
            self.net = self._build()
        return self.net

    def _prompt(self, mask: np.ndarray, kind: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        rng = self.sampler.rng
        h, w = mask.shape
        if kind == "box":
            box = instance_boxes(mask.astype(np.int32))[0].astype(np.float64)
            side = np.array([box[2] - box[0], box[3] - box[1]] * 2)
            box += rng.normal(0, np.minimum(self.options.box_noise * side,
                                            self.options.box_noise_max_px))
            box = np.clip(box, 0, [w, h, w, h])
            box = np.array([min(box[0], box[2]), min(box[1], box[3]),
                            max(box[0], box[2]), max(box[1], box[3])])
            return box.astype(np.float32), np.zeros(0, np.int64)
        inside, outside = np.flatnonzero(mask), np.flatnonzero(~mask)
        labels = np.ones(k, np.int64)
        labels[1:] = rng.random(k - 1) < 0.5 if len(outside) else 1
        flat = np.where(labels == 1, rng.choice(inside, k),
                        rng.choice(outside if len(outside) else inside, k))
        pts = np.stack([flat % w, flat // w], 1).astype(np.float32)
        return pts, labels

    def batches(self, batch_size: int):
        """Endless batches: ``emb0..emb2`` (B, C, h, w) float32 cached embeddings, ``target``
        (B, H, W) float32 {0, 1} (one animal per element) and either ``boxes`` (B, 1, 4) or
        ``points`` (B, 1, N, 2) + ``labels`` (B, 1, N) int64, in model-input pixels."""
        if self.sampler is None:
            raise RodentsegError("call setup(train, val) before batches()")
        pre, o = self.net.pre, self.options
        while True:
            rng = self.sampler.rng
            idx = self.sampler.draw(batch_size)
            kind = "box" if rng.random() < o.p_box else "points"
            k = int(rng.integers(1, o.max_points + 1))
            targets, prompts, labels = [], [], []
            for i in idx:
                target = self.masks[i] == rng.choice(self.ids[i])
                p, lab = self._prompt(target, kind, k)
                targets.append(target)
                prompts.append(p)
                labels.append(lab)
            h, w = targets[0].shape
            batch = {f"emb{j}": torch.stack([self.cache[i][j] for i in idx]).float()
                     for j in range(3)}
            batch["target"] = torch.from_numpy(np.stack(targets)).float()
            if kind == "box":
                batch["boxes"] = pre.boxes(np.stack(prompts), h, w)[:, None]
            else:
                batch["points"] = pre.points(np.stack(prompts), h, w)[:, None]
                batch["labels"] = torch.from_numpy(np.stack(labels))[:, None]
            yield batch

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """SAM's 20 : 1 : 1 focal + Dice + IoU loss at the frames' full resolution."""
        points = batch.get("points")
        multimask = points is not None and points.shape[2] == 1
        logits, iou = model([batch["emb0"], batch["emb1"], batch["emb2"]], points=points,
                            labels=batch.get("labels"), boxes=batch.get("boxes"),
                            multimask_output=multimask)
        # the bilinear resize of Sam2ImageProcessor.post_process_masks, as Preprocessor does
        full = F.interpolate(logits[:, 0].float(), size=batch["target"].shape[-2:],
                             mode="bilinear", align_corners=False)
        return sam_loss(full, iou[:, 0].float(), batch["target"])["loss"]

    def predict(self, model: nn.Module, item: dict[str, Any]) -> np.ndarray:
        """(H, W) float32 union probability from the item's ground-truth boxes (docstring)."""
        net = getattr(model, "module", model)
        dev = next(net.parameters()).device
        image = as_rgb_frames(item["image"][None])
        was = net.training
        net.eval()
        try:
            with torch.inference_mode():
                emb = self.val_cache.get(_key(item["image"]))
                emb = ([e[None].to(dev, torch.float32) for e in emb] if emb is not None
                       else net.embed(image))
                return sam2_box_probs(net, emb, instance_boxes(np.asarray(item["mask"])),
                                      *image.shape[1:3])
        finally:
            net.train(was)

    def save(self, model: nn.Module, path: Path) -> None:
        """Write the whole ``Sam2Model`` (frozen encoder included) + settings."""
        save_finetuned(getattr(model, "module", model), path)

    def state_dict(self) -> dict:
        """The sampler's generator state (restored on resume)."""
        return {"rng": self.sampler.rng.bit_generator.state if self.sampler else None}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (after ``setup``)."""
        if self.sampler is not None and state.get("rng") is not None:
            self.sampler.rng.bit_generator.state = state["rng"]
