"""The model card written next to trained weights (``MODEL_CARD.md``)."""

from __future__ import annotations

from pathlib import Path

from safetensors.torch import load_file

from rodentseg import __version__
from rodentseg.models.segmenter import Preprocessing

CARD = """# {name}

The embedded default model of rodentseg: binary rodent segmentation of grey or colour video
frames (the model reads luma), trained from scratch by this project's own training code.

## Architecture
- `SegformerForSemanticSegmentation` from `transformers` (MiT encoder, all-MLP decoder; Xie et
  al. 2021), hidden sizes {hidden}, depths {depths}, decoder {decoder}, {params:,} parameters
  ({size_mb:.1f} MB safetensors, float32).
- Input: the frame's luma at full resolution, normalised `(luma - {mean}) / {std}`, folded
  space-to-depth by {s2d} into {channels} channels (no pixel dropped). The decoder gives {labels}
  channels at 1/{up} of the frame: 1 coarse logit (upsampled bilinearly) and {sub} unfolded
  depth-to-space (pixel shuffle) to 1/{fold} of the frame ({ctx} channels), where two 3x3
  convolutions ({ctx} + {fold_px} -> {hid} -> {fold_px}) refine them together with the input
  pixels folded by {fold}; unfolded to full resolution and added to the coarse logit, that is
  the rodent logit. Threshold {thr}. These settings are stored in `config.json`
  under `rodentseg`.

## Training
- Command: `rodentseg train --config configs/scratch-tiny.yaml` (rodentseg {version}).
- Data: `openfield-m4s1`, 116 frames (640x480, grey) of one black mouse in a white open field
  from the DeepLabCut example `openfield-Pranav-2018-10-30` (LGPL-3.0, DeepLabCut repository),
  with silver masks (automatic, checked by eye; see that folder's README).
- Split: by time; the first {n_train} frames train, the last {n_val} (`{val_first}` to
  `{val_last}`) are never trained on and only scored.
- Augmentation: copy-paste of the labelled mice (0-3 per image; scale {scale[0]}-{scale[1]}, any
  rotation, flips, fur brightness) onto the real frames, onto the session's empty background,
  and onto synthetic arenas (dark rings, boxes, floor lines); half of the pasted scenes get a
  dark surround outside a large circle with most mice placed against it (a dark mouse touching
  a dark arena wall); contrast, brightness, gamma, blur and noise. Loss: BCE + soft Dice at
  full resolution{thin}.
- {steps} steps of batch {batch}, AdamW lr {lr} (warm-up {warmup}, cosine), seed {seed}{finish};
  {train_time:.0f} s on {hardware}.

## Scores (measured)
- Validation ({n_val} held-out frames, full resolution): mean IoU **{miou:.4f}**, lowest frame
  IoU {min_iou:.4f}, DAVIS J&F {jf}.
{extra}
## Limitations
- One session of one dark mouse on a light floor: light animals on dark floors, bedding,
  nests and strong occluders were never seen.
- The thin tail is the least certain part (the tip may be cut); touching animals are split by
  a straight cut (see `rodentseg.track.instances`).
"""


def write_model_card(model_dir: Path, cfg, scores: dict, net_cfg, hardware: str,
                     augment, extra: str = "", thin_weight: float = 0.0) -> Path:
    """Write ``model_dir/MODEL_CARD.md`` from the run's config and measured scores.

    Args:
        model_dir: the folder with ``config.json`` and ``model.safetensors``.
        cfg: the :class:`~rodentseg.train.config.RunConfig` of the run.
        scores: what :func:`~rodentseg.train.loop.train` returned.
        net_cfg: the model's ``SegformerConfig`` (with its ``rodentseg`` block).
        hardware: where it trained, e.g. ``"2 CPU cores"``.
        augment: the run's :class:`~rodentseg.train.augment.AugmentConfig`.
        extra: more measured lines (markdown bullet list), e.g. from benchmarks.
        thin_weight: the loss's extra weight on thin mask parts (0 = none).
    """
    pre = Preprocessing.from_dict(net_cfg.rodentseg)
    weights = model_dir / "model.safetensors"
    params = sum(t.numel() for t in load_file(weights).values())
    val = scores["val_frames"]
    text = CARD.format(
        name=cfg.name, hidden=net_cfg.hidden_sizes, depths=net_cfg.depths,
        decoder=net_cfg.decoder_hidden_size, params=params, size_mb=weights.stat().st_size / 1e6,
        mean=pre.mean, std=pre.std, s2d=pre.space_to_depth,
        channels=net_cfg.num_channels, labels=net_cfg.num_labels, up=pre.upscale,
        sub=net_cfg.num_labels - 1, fold=pre.refine_fold,
        ctx=pre.refine_channels, fold_px=pre.refine_fold**2, hid=pre.refine_hidden,
        thr=pre.threshold, version=__version__,
        n_train=scores["train_frames"], n_val=len(val), val_first=val[0], val_last=val[-1],
        scale=augment.scale, steps=cfg.steps, batch=cfg.batch_size, lr=cfg.lr,
        warmup=cfg.warmup, seed=cfg.seed, train_time=scores["train_time_s"], hardware=hardware,
        miou=scores["val_miou"], min_iou=scores["val_min_iou"],
        jf=f"{scores['val_jf']:.4f}" if "val_jf" in scores else "not measured", extra=extra,
        finish=_finish(cfg.finish),
        thin=(f", BCE weight 1 + {thin_weight:g} on the mask parts narrower than 7 px (the "
              "tail; `thin_parts`)" if thin_weight else ""))
    path = model_dir / "MODEL_CARD.md"
    path.write_text(text)
    return path


def _finish(phases) -> str:
    """The card's words for the run's finish phases (empty without any); a phase whose
    ``augment`` sets every key of the previous phase's is described by what it adds or changes."""
    words, previous = [], None
    for phase in phases:
        if phase.steps:
            aug = phase.augment
            if not aug:
                batches = " with the run's own augmentation"
            elif previous is not None and previous.keys() <= aug.keys():
                extra = ", ".join(f"{k} {v}" for k, v in aug.items() if previous.get(k) != v)
                batches = " with the previous phase's augmentation" + (
                    f" and {extra}" if extra else "")
            else:
                batches = " with " + ", ".join(f"{k} {v}" for k, v in aug.items())
            words.append(f"; then a finish phase of {phase.steps} steps restarting at lr "
                         f"{phase.lr} (warm-up {phase.warmup}, cosine){batches}")
            previous = aug
    return "".join(words)
