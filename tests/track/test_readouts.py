"""finalize(): speeds, summary, heatmaps, swaps.csv and the exports, on a case small enough to
compute by hand; the exports are read back with movement's own loaders."""

import csv

import numpy as np
import pytest
from PIL import Image

from rodentseg.io.results import TRACK_COLUMNS, ResultWriter
from rodentseg.track.events import SWAP_COLUMNS, TrackEvent
from rodentseg.track.readouts import SPEED_COLUMNS, SUMMARY_COLUMNS, finalize
from rodentseg.types import FrameMasks

H, W, FPS, PX_PER_CM = 30, 40, 10.0, 2.0

# track 1: centroid (10,10) -> (13,14) -> (13,14), unseen for 7 frames, then (20,14) at frame 10;
# track 2: seen once, at frame 1.
PATH_1 = {0: (10, 10), 1: (13, 14), 2: (13, 14), 10: (20, 14)}
PATH_2 = {1: (30, 20)}


def square(x, y):
    m = np.zeros((H, W), bool)
    m[y - 1:y + 2, x - 1:x + 2] = True  # 3x3, centroid exactly (x, y)
    return m


@pytest.fixture
def folder(tmp_path):
    w = ResultWriter(tmp_path, W, H, FPS, overlay=False)
    for f in range(11):
        ids, masks = [], []
        for tid, path in ((1, PATH_1), (2, PATH_2)):
            if f in path:
                ids.append(tid)
                masks.append(square(*path[f]))
        w.write(FrameMasks(f, np.array(ids), np.array(masks, bool).reshape(-1, H, W),
                           np.full(len(ids), 0.8)))
    w.close()
    return tmp_path


def read(path):
    with path.open() as f:
        return list(csv.DictReader(f))


def test_speed_columns_follow_the_unchanged_track_columns(folder):
    before = [r[:11] for r in csv.reader((folder / "tracks.csv").open())]
    finalize(folder, FPS, W, H, PX_PER_CM, n_frames=12)
    after = list(csv.reader((folder / "tracks.csv").open()))
    assert after[0] == TRACK_COLUMNS + SPEED_COLUMNS
    assert [r[:11] for r in after] == before
    rows = read(folder / "tracks.csv")
    one = [r for r in rows if r["track_id"] == "1"]
    # 5 px in 0.1 s; standing still; an 8-frame gap (> max_gap 5) is not counted as movement
    assert [r["speed_px_s"] for r in one] == ["", "50.0", "0.0", ""]
    assert [float(r["distance_px"]) for r in one] == [0, 5, 5, 5]
    assert [r["speed_cm_s"] for r in one] == ["", "25.0", "0.0", ""]
    assert float(one[-1]["distance_cm"]) == 2.5
    assert not list(folder.glob(".*tmp*"))


def test_summary_matches_hand_computed_values(folder):
    finalize(folder, FPS, W, H, PX_PER_CM, n_frames=12)
    rows = {r["track_id"]: r for r in read(folder / "summary.csv")}
    assert list(rows["1"]) == SUMMARY_COLUMNS
    one, two = rows["1"], rows["2"]
    assert (int(one["frames"]), int(one["first_frame"]), int(one["last_frame"])) == (4, 0, 10)
    assert float(one["visible_s"]) == pytest.approx(0.4)
    assert float(one["mean_area_px"]) == 9
    assert float(one["distance_px"]) == 5
    assert float(one["mean_speed_px_s"]) == pytest.approx(25)  # 5 px over two 0.1 s steps
    assert float(one["max_speed_px_s"]) == pytest.approx(50)
    assert float(one["distance_cm"]) == 2.5
    assert float(one["mean_speed_cm_s"]) == pytest.approx(12.5)
    assert float(one["max_speed_cm_s"]) == pytest.approx(25)
    assert float(one["heatmap_max_s"]) == pytest.approx(0.3)  # 3 frames in cell (1, 1)
    assert two["mean_speed_px_s"] == "" and float(two["distance_px"]) == 0


def test_heatmap_marks_where_the_animal_was(folder):
    finalize(folder, FPS, W, H, cell_px=10)
    img = np.asarray(Image.open(folder / "heatmap_1.png"))
    assert img.shape == (H, W, 3)
    assert img[5, 5].sum() == 0  # cell (0, 0): never there
    most, once = img[15, 15].astype(int), img[15, 25].astype(int)  # 3 frames vs 1 frame
    assert most.sum() > once.sum() > 0


def test_without_scale_cm_columns_are_empty(folder):
    finalize(folder, FPS, W, H)
    rows = read(folder / "tracks.csv")
    assert all(r["speed_cm_s"] == "" and r["distance_cm"] == "" for r in rows)


def test_swaps_csv_lists_events(folder):
    events = [TrackEvent(7, "relink", 1, 2, 0.12345, 7, 7),
              TrackEvent(3, "merge", 1, 2, float("nan"), 3, 6)]
    finalize(folder, FPS, W, H, events=events)
    rows = list(csv.reader((folder / "swaps.csv").open()))
    assert rows[0] == SWAP_COLUMNS
    assert rows[1] == ["3", "merge", "1", "2", "", "3", "6"]
    assert rows[2] == ["7", "relink", "1", "2", "0.1235", "7", "7"]


def test_dlc_export_loads_in_movement(folder):
    load_poses = pytest.importorskip("movement.io.load_poses")
    finalize(folder, FPS, W, H, n_frames=12)
    ds = load_poses.from_dlc_file(folder / "tracks.dlc.csv", fps=FPS)
    pos = ds.position.transpose("time", "space", "keypoints", "individuals").values
    assert pos.shape == (12, 2, 1, 2)
    assert list(ds.individuals.values) == ["track_1", "track_2"]
    assert list(ds.keypoints.values) == ["centroid"]
    assert pos[1, :, 0, 0].tolist() == [13, 14] and pos[1, :, 0, 1].tolist() == [30, 20]
    assert np.isnan(pos[5]).all() and np.isnan(pos[11]).all()
    assert float(ds.confidence.values[10, 0, 0]) == pytest.approx(0.8)


def test_sleap_export_loads_in_movement(folder):
    load_poses = pytest.importorskip("movement.io.load_poses")
    h5py = pytest.importorskip("h5py")
    finalize(folder, FPS, W, H, n_frames=12)
    ds = load_poses.from_sleap_file(folder / "tracks.sleap.h5", fps=FPS)
    pos = ds.position.transpose("time", "space", "keypoints", "individuals").values
    assert pos.shape == (12, 2, 1, 2)
    assert list(ds.individuals.values) == ["track_1", "track_2"]
    assert pos[10, :, 0, 0].tolist() == [20, 14]
    assert np.isnan(pos[3, :, 0, 0]).all()
    with h5py.File(folder / "tracks.sleap.h5") as f:
        occ = f["track_occupancy"][:]
    assert occ.shape == (12, 2) and occ[:, 0].tolist() == [1, 1, 1] + [0] * 7 + [1, 0]


def test_rejects_a_table_in_another_layout(tmp_path):
    (tmp_path / "tracks.csv").write_text("frame,x,y\n0,1,2\n")
    with pytest.raises(ValueError, match="columns"):
        finalize(tmp_path, FPS, W, H)
    assert (tmp_path / "tracks.csv").read_text() == "frame,x,y\n0,1,2\n"
