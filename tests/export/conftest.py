"""Real frames for parity checks and a tiny random SAM 2 image model (save_pretrained)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import OPENFIELD


@pytest.fixture(scope="session")
def openfield_frames() -> np.ndarray:
    """8 real openfield frames, (8, 480, 640, 3) uint8 (every 14th of the 116)."""
    frames = sorted((OPENFIELD / "frames").glob("*.png"))
    if not frames:
        pytest.skip(f"test data {OPENFIELD / 'frames'} not present")
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in frames[::14][:8]])


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """The tests export into their own ONNX cache (never ~/.cache), shared by the session."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RODENTSEG_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def openfield_folder(tmp_path_factory) -> Path:
    """A 6-frame "video": a folder of real openfield PNGs (read_frames reads image folders)."""
    frames = sorted((OPENFIELD / "frames").glob("*.png"))[:6]
    if not frames:
        pytest.skip(f"test data {OPENFIELD / 'frames'} not present")
    folder = tmp_path_factory.mktemp("clips") / "openfield6"
    folder.mkdir()
    for p in frames:
        (folder / p.name).write_bytes(p.read_bytes())
    return folder


@pytest.fixture(scope="session")
def sam2_dir(tmp_path_factory) -> Path:
    """A random SAM 2 image model at 128 px (Hiera 8/16/32/64, hidden 128), saved to disk."""
    from transformers import Sam2Config, Sam2Model

    s = 128
    vision = dict(
        model_type="sam2_vision_model",
        backbone_config=dict(
            model_type="sam2_hiera_det_model", image_size=[s, s], hidden_size=8,
            blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[8, 16, 32, 64],
            num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[4, 4, 4, 4],
            global_attention_blocks=[3], window_positional_embedding_background_size=[2, 2]),
        backbone_channel_list=[64, 32, 16, 8],
        backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
        fpn_hidden_size=128)
    cfg = Sam2Config(vision_config=vision,
                     prompt_encoder_config=dict(hidden_size=128, image_size=s, patch_size=16),
                     mask_decoder_config=dict(hidden_size=128, mlp_dim=256, num_hidden_layers=1,
                                              iou_head_hidden_dim=64))
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-sam2"
    Sam2Model(cfg).eval().save_pretrained(path)
    return path
