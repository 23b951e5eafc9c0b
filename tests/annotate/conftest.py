"""Tiny random SAM-family models, saved with save_pretrained, and short real clips.

Every model here is built from a small config with random weights, written to a temporary
folder with ``save_pretrained`` and loaded back by the same loaders users call
(``load_video_model(dir)``), so the tests exercise the real from_pretrained path. Sizes follow
NOTES-transformers.md (Hiera widths 8/16/32/64 with one global block, hidden sizes 128,
memory encoder output 64, Grounding DINO with 2 decoder layers and BERT's special token ids).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import TRACKTOR_VIDEO, write_video

S = 128  # model input side of the tiny SAM 2 / EdgeTAM models


def _hiera_vision(s: int = S) -> dict:
    return dict(
        model_type="sam2_vision_model",
        backbone_config=dict(
            model_type="sam2_hiera_det_model", image_size=[s, s], hidden_size=8,
            blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[8, 16, 32, 64],
            num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 4],
            global_attention_blocks=[3], window_positional_embedding_background_size=[2, 2]),
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        fpn_hidden_size=128)


_HEADS = dict(
    prompt_encoder_config=dict(hidden_size=128, image_size=S, patch_size=16),
    mask_decoder_config=dict(hidden_size=128, mlp_dim=256, num_hidden_layers=1,
                             iou_head_hidden_dim=64),
)
_MEMORY = dict(memory_attention_hidden_size=128, memory_attention_num_layers=1,
               memory_encoder_hidden_size=128, mask_downsampler_embed_dim=128,
               memory_fuser_embed_dim=128, memory_fuser_intermediate_dim=256)


def tiny_sam2_video_config():
    from transformers import Sam2VideoConfig

    return Sam2VideoConfig(vision_config=_hiera_vision(), image_size=S, **_HEADS, **_MEMORY,
                           memory_attention_feed_forward_hidden_size=256,
                           memory_attention_rope_feat_sizes=[S // 16, S // 16])


def tiny_edgetam_video_config():
    from transformers import EdgeTamVideoConfig

    return EdgeTamVideoConfig(
        vision_config=_hiera_vision(), image_size=S, **_HEADS, **_MEMORY,
        memory_attention_mlp_hidden_size=256, memory_attention_rope_feat_sizes=[S // 16, S // 16],
        memory_attention_rope_k_sizes=[4, 4], perceiver_resampler_num_latents=16,
        perceiver_resampler_num_latents_2d=16, perceiver_resampler_num_layers=1)


def tiny_sam3_tracker_video_config():
    from transformers import Sam3TrackerVideoConfig

    s = 112  # 8 x 8 patches of 14 px
    return Sam3TrackerVideoConfig(
        vision_config=dict(
            model_type="sam3_vision_model", fpn_hidden_size=128,
            backbone_config=dict(model_type="sam3_vit_model", hidden_size=64,
                                 intermediate_size=128, num_hidden_layers=2,
                                 num_attention_heads=2, image_size=s, patch_size=14,
                                 window_size=4, global_attn_indexes=[1],
                                 pretrain_image_size=56)),
        image_size=s, **_MEMORY, memory_attention_feed_forward_hidden_size=256,
        prompt_encoder_config=dict(hidden_size=128, image_size=s, patch_size=14),
        mask_decoder_config=_HEADS["mask_decoder_config"])


def tiny_sam2_image_config():
    from transformers import Sam2Config

    return Sam2Config(vision_config=_hiera_vision(), **_HEADS)


def tiny_sam_config():
    from transformers import SamConfig

    return SamConfig(
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           mlp_dim=64, image_size=S, patch_size=16, output_channels=32,
                           window_size=4, global_attn_indexes=[1], num_pos_feats=16),
        prompt_encoder_config=dict(hidden_size=32, image_size=S, patch_size=16,
                                   image_embedding_size=S // 16),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_hidden_layers=1,
                                 iou_head_hidden_dim=32))


def _save(model_cls, config, path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    head = getattr(getattr(model, "mask_decoder", None), "pred_obj_score_head", None)
    if head is not None:
        # A random object-score head says "no object" about half the time, and every mask of
        # such a frame is then empty: mask-level assertions would pass vacuously. With this
        # output bias the random model reports the object present, as a trained one does.
        with torch.no_grad():
            head.proj_out.bias.fill_(5.0)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def sam2_video_dir(tmp_path_factory) -> Path:
    from transformers import Sam2VideoModel

    return _save(Sam2VideoModel, tiny_sam2_video_config(),
                 tmp_path_factory.mktemp("models") / "tiny-sam2-video")


@pytest.fixture(scope="session")
def edgetam_video_dir(tmp_path_factory) -> Path:
    from transformers import EdgeTamVideoModel

    return _save(EdgeTamVideoModel, tiny_edgetam_video_config(),
                 tmp_path_factory.mktemp("models") / "tiny-edgetam-video")


@pytest.fixture(scope="session")
def sam3_tracker_dir(tmp_path_factory) -> Path:
    from transformers import Sam3TrackerVideoModel

    return _save(Sam3TrackerVideoModel, tiny_sam3_tracker_video_config(),
                 tmp_path_factory.mktemp("models") / "tiny-sam3-tracker-video")


@pytest.fixture(scope="session")
def sam2_image_dir(tmp_path_factory) -> Path:
    from transformers import Sam2Model

    return _save(Sam2Model, tiny_sam2_image_config(),
                 tmp_path_factory.mktemp("models") / "tiny-sam2")


@pytest.fixture(scope="session")
def sam_image_dir(tmp_path_factory) -> Path:
    """Tiny SAM v1 with its (PIL) processor saved next to it, as released checkpoints have."""
    from transformers import SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    path = _save(SamModel, tiny_sam_config(), tmp_path_factory.mktemp("models") / "tiny-sam")
    ip = SamImageProcessorPil(size={"longest_edge": S}, pad_size={"height": S, "width": S},
                              mask_size={"longest_edge": S // 4},
                              mask_pad_size={"height": S // 4, "width": S // 4})
    SamProcessor(image_processor=ip).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def gdino_dir(tmp_path_factory) -> Path:
    """Tiny Grounding DINO + a BERT tokenizer whose vocabulary has BERT's special ids."""
    from transformers import (
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
    )
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    path = tmp_path_factory.mktemp("models") / "tiny-grounding-dino"
    path.mkdir(exist_ok=True)
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]",
                                                                   "[MASK]"]
    vocab += [f"[unused{i}]" for i in range(100, 100 + 1012 - len(vocab))]
    vocab += ["."] + [f"[unusedb{i}]" for i in range(1029 - 1013)] + ["?", "mouse", "rat"]
    assert (vocab[101], vocab[102], vocab[1012], vocab[1029]) == ("[CLS]", "[SEP]", ".", "?")
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    config = GroundingDinoConfig(
        backbone_config=dict(model_type="swin", embed_dim=16, depths=[1, 1, 1, 1],
                             num_heads=[1, 1, 1, 1], window_size=4, image_size=64,
                             out_indices=[2, 3, 4]),
        text_config=dict(model_type="bert", vocab_size=len(vocab), hidden_size=32,
                         num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20, max_text_len=32)
    _save(GroundingDinoForObjectDetection, config, path)
    ip = GroundingDinoImageProcessorPil(size={"shortest_edge": 128, "longest_edge": 160})
    GroundingDinoProcessor(image_processor=ip,
                           tokenizer=BertTokenizer(str(path / "vocab.txt"))).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def clip12(tmp_path_factory) -> Path:
    """The first 12 frames of the tracktor mouse video (640x480, one dark mouse)."""
    if not TRACKTOR_VIDEO.exists():
        pytest.skip(f"test data {TRACKTOR_VIDEO} not present")
    from rodentseg.io.video import read_frames

    _, frames = next(read_frames(TRACKTOR_VIDEO, 12))
    return write_video(tmp_path_factory.mktemp("clips") / "tracktor12.mp4", frames)


@pytest.fixture(scope="session")
def clip12_frames(clip12) -> np.ndarray:
    from rodentseg.io.video import read_frames

    return next(read_frames(clip12, 12))[1]


@pytest.fixture(scope="session")
def sam2_video(sam2_video_dir):
    from rodentseg.annotate import load_video_model

    return load_video_model(str(sam2_video_dir), "cpu")
