"""Promptable annotation with SAM-family models: one-shot and zero-shot video, images, review.

The public entry points::

    from rodentseg.annotate import load_video_model
    model = load_video_model("sam2.1-tiny", device="auto")   # or facebook/EdgeTAM, a directory
    with model.start("mice.mp4") as session:                  # a VideoSession
        session.add_prompt(0, obj_id=1, points=[[320, 240]], labels=[1])
        for frame_idx, obj_ids, masks in session.propagate(0, "both"):
            ...
        for _ in session.correct(120, obj_id=1, mask=fixed_mask):
            ...

See :mod:`rodentseg.annotate.session` for how propagation, corrections and memory work. Names
are imported on first use, so ``rodentseg --help`` does not pay for torch and transformers.
"""

from importlib import import_module

_EXPORTS = {
    "DEFAULT_DETECTOR": "hub", "DEFAULT_VIDEO_MODEL": "hub", "HUB_MODELS": "hub",
    "VideoModel": "adapter", "load_image_model": "adapter", "load_video_model": "adapter",
    "FrameSource": "frames", "Prompt": "prompts", "TrackedObject": "session",
    "VideoSession": "session", "MaskStore": "store", "ObjectMask": "store",
    "ImagePredictor": "image", "AutomaticMaskGenerator": "amg", "ReviewRanker": "review",
    "annotate_video": "oneshot", "zero_shot_video": "zeroshot",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"rodentseg.annotate.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'rodentseg.annotate' has no attribute {name!r}")
