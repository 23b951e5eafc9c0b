"""The ``labels`` layout: masks/ + sources.csv (as `rodentseg autolabel` writes them), the frames
decoded from their sources under a data root; and the committed label folders of data/labels."""

import csv

import numpy as np
import pytest
from PIL import Image

from rodentseg.errors import RodentsegError
from rodentseg.train.datasets import detect_format, load_dataset
from tests.conftest import DATA, REPO
from tests.train.test_datasets import decoded, small_video


def labels_folder(root, rows, sizes=(32, 48)):
    """``rows``: (frame name, source, frame index); a mask for each, its square at the index."""
    (root / "masks").mkdir(parents=True)
    with (root / "sources.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["frame", "source", "frame_idx"])
        w.writerows(rows)
    for name, _, idx in rows:
        lab = np.zeros(sizes, np.uint8)
        lab[8:20, 2 + 2 * idx:14 + 2 * idx] = 1
        Image.fromarray(lab).save(root / "masks" / f"{name.rsplit('.', 1)[0]}.png")
    return root


def test_frames_come_from_sources_relative_to_the_data_root(tmp_path):
    data = tmp_path / "data"
    (data / "setup").mkdir(parents=True)
    a = small_video(data / "setup" / "a.mp4")
    b = small_video(data / "setup" / "b.mp4", n=6)
    root = labels_folder(tmp_path / "labels" / "setup" / "part",
                         [("a_000000007.png", "setup/a.mp4", 7),
                          ("b_000000002.png", "setup/b.mp4", 2),
                          ("a_000000003.png", "setup/a.mp4", 3)])
    assert detect_format(root) == "labels"
    ds = load_dataset(root, data_root=data)
    # grouped by source (the video a frame belongs to), in time order within it
    assert ds.names == ["a_000000003", "a_000000007", "b_000000002"]
    assert ds.videos == ["a", "a", "b"]
    np.testing.assert_array_equal(ds[1]["image"], decoded(a)[7])
    np.testing.assert_array_equal(ds[2]["image"], decoded(b)[2])
    assert ds[1]["mask"][14, 2 + 2 * 7 + 5] == 1  # the mask of frame 7 lies on its square
    assert ds[1]["image"][14, 2 + 2 * 7 + 5].min() > 150


def test_a_frame_dropped_at_review_is_skipped(tmp_path):
    video = small_video(tmp_path / "clip.mp4")
    root = labels_folder(tmp_path / "l", [("x.png", str(video), 1), ("y.png", str(video), 4)])
    (root / "masks" / "x.png").unlink()  # a person dropped it: its row may stay
    assert load_dataset(root).names == ["y"]


@pytest.mark.parametrize("rows,match", [
    ([("x.png", "missing.mp4", 0)], "source .*missing.mp4 .* does not exist; pass data_root="),
    ([("x.png", "{video}", 40)], "x.png is frame 40, outside the 12 frames"),
])
def test_errors_name_the_fix(tmp_path, rows, match):
    video = small_video(tmp_path / "clip.mp4")
    rows = [(n, s.format(video=video), i) for n, s, i in rows]
    with pytest.raises(RodentsegError, match=match):
        load_dataset(labels_folder(tmp_path / "l", rows))


def test_a_table_without_its_columns_is_refused(tmp_path):
    root = tmp_path / "l"
    (root / "masks").mkdir(parents=True)
    (root / "sources.csv").write_text("name,path\nx.png,a.mp4\n")
    with pytest.raises(RodentsegError, match="expected a header frame,source,frame_idx"):
        load_dataset(root)


LABELS = REPO / "data" / "labels"


@pytest.mark.skipif(not DATA.exists(), reason=f"test data {DATA} not present")
@pytest.mark.parametrize("part", sorted(p.parent.relative_to(LABELS).as_posix()
                                        for p in LABELS.rglob("sources.csv")))
def test_committed_labels_open_and_fit_their_frames(part):
    # every committed label folder: its sources exist, every mask has its frame's size, and
    # ids are small integers (0 = background)
    ds = load_dataset(LABELS / part, data_root=DATA)
    assert len(ds) >= 1
    item = ds[len(ds) // 2]
    assert item["image"].shape[:2] == item["mask"].shape
    assert 0 <= item["mask"].min() and item["mask"].max() <= 4
