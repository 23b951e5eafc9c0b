"""Shared fixtures of the training tests: real openfield frames, small synthetic setups."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import OPENFIELD, write_video


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """Eight real openfield frames and masks at 160x120 (a quarter of the size)."""
    if not OPENFIELD.exists():
        pytest.skip(f"test data {OPENFIELD} not present")
    root = tmp_path_factory.mktemp("of")
    (root / "frames").mkdir()
    (root / "masks").mkdir()
    for i in range(0, 116, 15):
        name = f"img{i:04d}.png"
        Image.open(OPENFIELD / "frames" / name).convert("L").resize((160, 120)).save(
            root / "frames" / name)
        Image.open(OPENFIELD / "masks" / name).resize((160, 120), Image.NEAREST).save(
            root / "masks" / name)
    return root


def ellipse_labels(n: int, hw: tuple[int, int], length: float, animals: int = 1,
                   seed: int = 0) -> np.ndarray:
    """(n, H, W) uint8 instance masks: ``animals`` ellipses of ``length`` x ``length / 2`` px
    (ids 1, 2, ...) at random places and angles, apart from each other."""
    rng = np.random.default_rng(seed)
    h, w = hw
    ys, xs = np.mgrid[0:h, 0:w]
    out = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        for k in range(animals):
            cx = (k + 0.5) * w / animals + rng.uniform(-0.1, 0.1) * w / animals
            cy = rng.uniform(0.35, 0.65) * h
            a = rng.uniform(0, np.pi)
            u = (xs - cx) * np.cos(a) + (ys - cy) * np.sin(a)
            v = -(xs - cx) * np.sin(a) + (ys - cy) * np.cos(a)
            out[t][(u / (length / 2)) ** 2 + (v / (length / 4)) ** 2 <= 1] = k + 1
    return out


def scene(labels: np.ndarray, floor: int, fur: int, colour: bool = False) -> np.ndarray:
    """Frames for ``labels``: a ``floor`` grey floor with a gentle gradient, animals of ``fur``
    grey; (n, H, W) uint8, or (n, H, W, 3) with a tint when ``colour``."""
    n, h, w = labels.shape
    grad = np.linspace(-8, 8, w)[None, None, :]
    img = np.clip(np.where(labels > 0, fur, floor + grad), 0, 255).astype(np.uint8)
    if colour:
        img = np.stack([img, np.clip(img * 0.9, 0, 255).astype(np.uint8), img], -1)
    return img


def write_labels_part(part: Path, data_root: Path, source: str, frames: np.ndarray,
                      labels: np.ndarray) -> Path:
    """A ``labels`` dataset as ``rodentseg autolabel --sources-root`` writes it: the frames as
    a video ``data_root/source``, ``part/masks/NNNNNN.png`` and ``part/sources.csv``."""
    video = data_root / source
    video.parent.mkdir(parents=True, exist_ok=True)
    write_video(video, frames)
    (part / "masks").mkdir(parents=True)
    rows = ["frame,source,frame_idx"]
    for t, lab in enumerate(labels):
        Image.fromarray(lab).save(part / "masks" / f"{t:06d}.png")
        rows.append(f"{t:06d}.png,{source},{t}")
    (part / "sources.csv").write_text("\n".join(rows) + "\n")
    return part


@pytest.fixture(scope="session")
def setups(tmp_path_factory):
    """Three small synthetic setups, as the label sets of ``data/labels`` are kept:

    - ``dark-open``: a frames/ + masks/ folder (``root/dark-open``), 10 grey 96x128 frames of
      a dark animal 40 px long on a light floor;
    - ``labels/bright-cage/part-a`` and ``part-b``: 6 colour 120x160 frames each of bright
      animals 80 px long on a dark floor (two in ``part-b``), videos under ``root/data``;
    - ``labels/empty-box``: 8 grey 48x64 frames of an empty arena (empty masks).

    Returns:
        The root (``root/data`` is the data root of the labels' sources).
    """
    root = tmp_path_factory.mktemp("setups")
    data = root / "data"
    of = ellipse_labels(10, (96, 128), 40, seed=1)
    (root / "dark-open" / "frames").mkdir(parents=True)
    (root / "dark-open" / "masks").mkdir()
    for t, (img, lab) in enumerate(zip(scene(of, 200, 40), of)):
        Image.fromarray(img).save(root / "dark-open" / "frames" / f"img{t:04d}.png")
        Image.fromarray(lab).save(root / "dark-open" / "masks" / f"img{t:04d}.png")
    for part, animals in (("part-a", 1), ("part-b", 2)):
        lab = ellipse_labels(6, (120, 160), 80 if animals == 1 else 60, animals, seed=2)
        write_labels_part(root / "labels" / "bright-cage" / part, data,
                          f"bright-cage/{part}.mp4", scene(lab, 30, 220, colour=True), lab)
    empty = np.zeros((8, 48, 64), np.uint8)
    frames = scene(empty, 90, 90)
    frames[:, 10:20, 5:60] = 140  # a bar across the box
    write_labels_part(root / "labels" / "empty-box", data, "empty-box/box.mp4", frames, empty)
    return root
