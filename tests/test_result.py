"""rodentseg.load_result: a result folder as DataFrames, lazy masks and a movement dataset."""

import numpy as np
import pytest
from PIL import Image

import rodentseg
from rodentseg.cli import main
from rodentseg.errors import RodentsegError

T, H, W = 12, 60, 80


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A ``rodentseg track`` result of two squares walking right (ids 1 and 2)."""
    root = tmp_path_factory.mktemp("res")
    (root / "masks").mkdir()
    for t in range(T):
        label = np.zeros((H, W), np.uint8)
        label[5:15, 5 + 2 * t:15 + 2 * t] = 1
        label[40:50, 5 + 3 * t:15 + 3 * t] = 2
        Image.fromarray(label).save(root / "masks" / f"{t:06d}.png")
    assert main(["track", str(root / "masks"), "--out", str(root / "out"), "--name", "walk",
                 "--fps", "10", "--animals", "2", "--no-overlay", "--quiet"]) == 0
    return rodentseg.load_result(root / "out" / "walk")


def test_tables_and_ids(result):
    assert result.n_frames == T and result.fps == 10 and (result.width, result.height) == (W, H)
    assert result.track_ids == [1, 2]
    df = result.tracks
    assert len(df) == 2 * T and {"frame_idx", "track_id", "cx", "cy", "speed_px_s"} <= set(df)
    speeds = df.groupby("track_id").speed_px_s.median()
    assert sorted(speeds.round(1).tolist()) == [20.0, 30.0]  # 2 and 3 px per frame at 10 fps
    assert len(result.summary) == 2
    assert "12 frames" in repr(result)


def test_masks_are_read_on_demand(result):
    masks = result.masks
    assert len(masks) == T
    fm = masks[3]
    assert fm.frame_idx == 3 and fm.masks.shape[1:] == (H, W) and len(fm.obj_ids) == 2
    assert masks[-1].frame_idx == T - 1
    assert [m.frame_idx for m in masks[2:5]] == [2, 3, 4]
    assert sum(1 for _ in masks) == T
    with pytest.raises(IndexError):
        masks[T]


def test_to_movement(result):
    pytest.importorskip("movement")
    ds = result.to_movement()
    assert ds.position.sizes["individuals"] == 2 and ds.position.sizes["time"] == T
    nc = result.folder / "tracks.nc"
    moved = nc.rename(nc.with_suffix(".bak"))  # without tracks.nc: the SLEAP file
    try:
        ds2 = result.to_movement()
    finally:
        moved.rename(nc)
    assert ds2.position.sizes["individuals"] == 2
    np.testing.assert_allclose(ds2.position.values, ds.position.values, atol=0.01)


def test_not_a_result(tmp_path):
    with pytest.raises(RodentsegError, match="expected a rodentseg result folder"):
        rodentseg.load_result(tmp_path)
