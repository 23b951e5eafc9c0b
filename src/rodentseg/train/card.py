"""The model card written next to trained weights (``MODEL_CARD.md``)."""

from __future__ import annotations

import hashlib
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
- Command: `rodentseg train {command}` (rodentseg {version}).
- Data: {data}
- Split: {split}
- Augmentation: copy-paste of the labelled mice (0-3 per image; scale {scale[0]}-{scale[1]}, any
  rotation, flips, fur brightness) onto the real frames, onto {background},
  and onto synthetic arenas (dark rings, boxes, floor lines); half of the pasted scenes get a
  dark surround outside a large circle with most mice placed against it (a dark mouse touching
  a dark arena wall); {effects}contrast, brightness, gamma, blur and noise. Loss: BCE + soft
  Dice at full resolution{thin}.
- {start}{steps} steps of batch {batch}, AdamW lr {lr} (warm-up {warmup}, cosine), seed
  {seed}{finish}; {train_time:.0f} s on {hardware}.

## Scores (measured)
- Validation ({n_val} held-out frames, full resolution): mean IoU **{miou:.4f}**, lowest frame
  IoU {min_iou:.4f}, DAVIS J&F {jf}.{per_setup}
{extra}
## Limitations
- {seen}
- The thin tail is the least certain part (the tip may be cut); touching animals are split by
  a straight cut (see `rodentseg.track.instances`).
"""


#: Where each known setup's frames come from and their licence (``../shared/data/README.md``).
SOURCES = {
    "openfield-m4s1": "DeepLabCut example `openfield-Pranav-2018-10-30`, session m4s1 "
                      "(LGPL-3.0, DeepLabCut repository)",
    "tracktor-mice": "tracktor example `mouse_video.mp4` (MIT, vivekhsridhar/tracktor)",
    "bsoid-clips": "B-SOiD example clips (GPL-3.0, YttriLab/B-SOID)",
    "dannce-cylinder": "DANNCE demo `mouse_cylinder` videos (MIT, spoonsso/dannce)",
    "vame-bottomup": "VAME test sample `cropped_video.mp4` (GPL-3.0, EthoML/VAME)",
    "sleap-homecage": "SLEAP test videos `minimal_{back,mid,side,top}.mp4` "
                      "(BSD-3-Clause-Clear, talmolab/sleap)",
    "eztrack-chamber": "ezTrack practice video `Freezing_calibration.wmv` (GPL-3.0, "
                       "denisecailab/ezTrack)",
    "maushaus": "AmadeusGPT `dummy_maushaus.mp4` (Apache-2.0, "
                "AdaptiveMotorControlLab/AmadeusGPT)",
    "resident-intruder": "`demo_two_mice.mp4` (MIT, Andrianarivelo/DLC_post_processing)",
    "cage-2mice-colour": "SAM2-LongVideo `notebooks/videos/mice` frames (Apache-2.0 "
                         "repository; the footage's origin is not stated; "
                         "Saijun-Wang/SAM2-LongVideo)",
}

_OPENFIELD_ONLY = ("`openfield-m4s1`, 116 frames (640x480, grey) of one black mouse in a white "
                   "open field\n  from the DeepLabCut example `openfield-Pranav-2018-10-30` "
                   "(LGPL-3.0, DeepLabCut repository),\n  with silver masks (automatic, checked "
                   "by eye; see that folder's README).")


def _data(train: dict[str, int], val: dict[str, int]) -> str:
    """The card's data line: the openfield session alone, or one bullet per setup."""
    if set(train) | set(val) == {"openfield-m4s1"}:
        return _OPENFIELD_ONLY
    lines = [f"{len(set(train) | set(val))} setups (frames trained on / held out), masks from "
             "`rodentseg autolabel`, reviewed (see `data/labels/<setup>/README.md`) or silver:"]
    for k in sorted(set(train) | set(val)):
        source = SOURCES.get(k, "source and licence not recorded in rodentseg.train.card.SOURCES")
        lines.append(f"  - `{k}` ({train.get(k, 0)} / {val.get(k, 0)}): {source}")
    return "\n".join(lines)


def _split(cfg, scores: dict) -> str:
    val = scores["val_frames"]
    by = getattr(cfg.split, "by", "frame")
    if by == "setup":
        return (f"leave setups out: every frame of {', '.join(cfg.split.holdout)} "
                f"({len(val)} frames) is held out, never trained on and only scored.")
    if by == "video":
        return f"by video; {len(val)} frames of held-out videos are never trained on."
    return (f"by time; the first {scores['train_frames']} frames train, the last {len(val)} "
            f"(`{val[0]}` to `{val[-1]}`) are never trained on and only scored"
            + (", per video." if len(scores.get("train_setups", {})) > 1 else "."))


def _effects(augment) -> str:
    words = [w for key, w in (("p_invert", "coat inversion"),
                              ("p_invert_animal", "inverted pasted mice"),
                              ("p_touch", "mice pasted touching and overlapping"),
                              ("p_bedding", "bedding-like floor textures"),
                              ("p_halo", "shadow halos"), ("p_reflection", "wall reflections"))
             if getattr(augment, key, 0)]
    return ", ".join(words) + "; " if words else ""


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
    train_setups = scores.get("train_setups", {})
    one = set(train_setups) | set(scores.get("val_setups", {})) <= {"openfield-m4s1"}
    text = CARD.format(
        name=cfg.name, hidden=net_cfg.hidden_sizes, depths=net_cfg.depths,
        decoder=net_cfg.decoder_hidden_size, params=params, size_mb=weights.stat().st_size / 1e6,
        mean=pre.mean, std=pre.std, s2d=pre.space_to_depth,
        channels=net_cfg.num_channels, labels=net_cfg.num_labels, up=pre.upscale,
        sub=net_cfg.num_labels - 1, fold=pre.refine_fold,
        ctx=pre.refine_channels, fold_px=pre.refine_fold**2, hid=pre.refine_hidden,
        thr=pre.threshold, version=__version__,
        n_val=len(val), data=_data(train_setups, scores.get("val_setups", {})),
        command=("--config configs/scratch-tiny.yaml" if one else "with the run's "
                 "`config.yaml`"),
        background="the session's empty background" if one else "each video's empty arena",
        split=_split(cfg, scores), effects=_effects(augment), seen=_seen(scores),
        per_setup=_per_setup(scores.get("val_miou_by_setup", {})),
        scale=augment.scale, steps=cfg.steps, batch=cfg.batch_size, lr=cfg.lr,
        warmup=cfg.warmup, seed=cfg.seed, train_time=scores["train_time_s"], hardware=hardware,
        miou=scores["val_miou"], min_iou=scores["val_min_iou"],
        jf=f"{scores['val_jf']:.4f}" if "val_jf" in scores else "not measured", extra=extra,
        finish=_finish(cfg.finish), start=_start(cfg),
        thin=(f", BCE weight 1 + {thin_weight:g} on the mask parts narrower than 7 px (the "
              "tail; `thin_parts`)" if thin_weight else ""))
    path = model_dir / "MODEL_CARD.md"
    path.write_text(text)
    return path


def _start(cfg) -> str:
    """The card's words for where the weights started: nothing (random) or the ``init`` folder
    with the sha256 of its weights."""
    if not getattr(cfg, "init", ""):
        return ""
    file = Path(cfg.init)
    file = file / "model.safetensors" if file.is_dir() else file
    digest = hashlib.sha256(file.read_bytes()).hexdigest()[:12]
    return f"starting from the weights of `{cfg.init}` (sha256 `{digest}...`), "


def _per_setup(by_setup: dict[str, float]) -> str:
    if len(by_setup) < 2:
        return ""
    return "\n- Mean IoU per validation setup: " + ", ".join(
        f"`{k}` {v:.4f}" for k, v in by_setup.items()) + "."


def _seen(scores: dict) -> str:
    if set(scores.get("train_setups", {})) <= {"openfield-m4s1"}:
        return ("One session of one dark mouse on a light floor: light animals on dark floors, "
                "bedding,\n  nests and strong occluders were never seen.")
    return ("Trained on the setups listed above only: rats, mazes, huddles and views unlike "
            "them were\n  never seen; the validation above scores setups it trained on unless "
            "the split holds setups out.")


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
