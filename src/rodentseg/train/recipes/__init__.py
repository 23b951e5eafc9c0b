"""The fine-tuning recipes; importing this package registers them in
:data:`rodentseg.train.recipe.RECIPES`:

- ``segformer`` (:mod:`.segformer`): SegFormer, full fine-tune.
- ``dinov3-lora`` (:mod:`.dinov3_lora`): DINOv3 ViT + LoRA adapters + MLP head.
- ``sam2-decoder`` (:mod:`.sam2_decoder`): SAM 2 prompt encoder + mask decoder on cached
  image embeddings.

Presets: ``configs/segformer.yaml``, ``configs/dinov3-lora.yaml``, ``configs/sam2-decoder.yaml``.
"""

from rodentseg.train.recipes import dinov3_lora, sam2_decoder, segformer

__all__ = ["dinov3_lora", "sam2_decoder", "segformer"]
