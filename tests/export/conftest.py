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
    from transformers import Sam2Model

    from tests.annotate.conftest import tiny_sam2_image_config

    cfg = tiny_sam2_image_config()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("models") / "tiny-sam2"
    Sam2Model(cfg).eval().save_pretrained(path)
    return path
