"""Shared fixtures of the training tests."""

import pytest
from PIL import Image

from tests.conftest import OPENFIELD


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
