"""Shared fixtures: real data from ../shared/data, short clips cut from it, tiny models."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__import__("os").environ.get("RODENTSEG_DATA", REPO.parent / "shared" / "data"))
TRACKTOR_VIDEO = DATA / "tracktor-mice" / "mouse_video.mp4"
OPENFIELD = DATA / "openfield-m4s1"

torch.set_num_threads(min(2, torch.get_num_threads()))


def needs(path: Path):
    """Skip a test when a data file of ../shared/data is absent."""
    return pytest.mark.skipif(not path.exists(), reason=f"test data {path} not present")


def write_video(path: Path, frames: np.ndarray, fps: int = 30, codec: str = "libx264",
                pix_fmt: str = "yuv420p") -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames (or (T, H, W) grey) with PyAV."""
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = pix_fmt
        for f in frames:
            fmt = "gray" if f.ndim == 2 else "rgb24"
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=fmt)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="session")
def tracktor_clip(tmp_path_factory) -> Path:
    """The first 40 frames of the tracktor mouse video (640x480, 30 fps, one dark mouse)."""
    if not TRACKTOR_VIDEO.exists():
        pytest.skip(f"test data {TRACKTOR_VIDEO} not present")
    from rodentseg.io.video import read_frames

    frames = []
    for _, batch in read_frames(TRACKTOR_VIDEO, 8):
        frames.append(batch)
        if sum(len(b) for b in frames) >= 40:
            break
        # read_frames checks the whole file only when exhausted; stopping early is fine
    frames = np.concatenate(frames)[:40]
    return write_video(tmp_path_factory.mktemp("clips") / "tracktor40.mp4", frames)


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised rodentseg-tiny, saved as training saves it."""
    from rodentseg.models.segmenter import RodentSegNet, save_segmenter, tiny_config

    torch.manual_seed(0)
    return save_segmenter(RodentSegNet(tiny_config()), tmp_path_factory.mktemp("models") / "random-tiny")


@pytest.fixture(scope="session")
def default_model():
    """The embedded default model on CPU."""
    from rodentseg.models import load_model

    return load_model("rodentseg-tiny", "cpu")
