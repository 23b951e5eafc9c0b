"""``rodentseg track``: instance masks with shuffled ids in, the result layout of ``segment`` out."""

import csv
import json

import numpy as np
import pytest
from PIL import Image
from track_scenes import IdentityScore, detect, render

from rodentseg.cli import main
from rodentseg.io.masks import CocoWriter, iter_label_pngs
from rodentseg.io.results import TRACK_COLUMNS
from rodentseg.track.readouts import SPEED_COLUMNS
from rodentseg.types import FrameMasks
from tests.conftest import write_video

H, W, T = 96, 160, 40
t = np.arange(T, dtype=float)
PATHS = np.stack([np.stack([20 + 3 * t, 44 + 0 * t], 1), np.stack([140 - 3 * t, 52 + 0 * t], 1)])


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Label PNGs with ids shuffled per frame, the COCO JSON of the same, the video, the truth."""
    root = tmp_path_factory.mktemp("scene")
    rng = np.random.default_rng(0)
    (root / "pngs").mkdir()
    gts, frames = [], []
    with CocoWriter(root / "detections.json", W, H) as coco:
        for gt, frame in render(PATHS, H, W, colours=[(30, 30, 30), (90, 60, 40)]):
            masks, scores = detect(gt, rng)
            ids = rng.permutation(np.arange(1, len(masks) + 1) + rng.integers(0, 5))
            fm = FrameMasks(gt.frame_idx, ids, masks, scores)
            Image.fromarray(fm.to_label_image()).save(root / "pngs" / f"{gt.frame_idx:06d}.png")
            coco.add(fm)
            gts.append(gt)
            frames.append(frame)
    write_video(root / "clip.mp4", np.stack(frames))
    return root, gts


def identity_accuracy(result, gts):
    score = IdentityScore()
    for gt, pred in zip(gts, iter_label_pngs(result / "masks")):
        score.update(gt, pred)
    return score


@pytest.mark.parametrize("source", ["pngs", "detections.json"])
def test_track_writes_the_segment_layout_with_stable_ids(scene, tmp_path, source):
    root, gts = scene
    rc = main(["track", str(root / source), "--out", str(tmp_path), "--video",
               str(root / "clip.mp4"), "--animals", "2", "--px-per-cm", "4", "--quiet"])
    assert rc == 0
    res = tmp_path / "clip"
    for name in ("masks.json", "tracks.csv", "overlay.mp4", "run.json", "summary.csv",
                 "swaps.csv", "heatmap_1.png", "heatmap_2.png", "tracks.dlc.csv",
                 "tracks.sleap.h5"):
        assert (res / name).is_file(), name
    assert len(list((res / "masks").glob("*.png"))) == T
    assert not list(tmp_path.glob(".*partial*"))  # no partial folder left
    with (res / "tracks.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == TRACK_COLUMNS + SPEED_COLUMNS
    assert {r["track_id"] for r in rows} == {"1", "2"} and len(rows) == 2 * T
    speeds = [float(r["speed_px_s"]) for r in rows if r["speed_px_s"]]
    assert np.median(speeds) == pytest.approx(3 * 30, rel=0.1)  # 3 px/frame at 30 fps
    score = identity_accuracy(res, gts)
    assert score.accuracy == 1.0 and score.switches == 0
    run = json.loads((res / "run.json").read_text())
    assert run["command"] == "track" and run["options"]["animals"] == 2 and run["fps"] == 30


def test_rerun_is_skipped_and_other_options_need_overwrite(scene, tmp_path, capsys):
    root, _ = scene
    args = ["track", str(root / "pngs"), "--out", str(tmp_path), "--no-overlay", "--quiet"]
    assert main(args) == 0
    first = (tmp_path / "pngs" / "run.json").read_text()
    assert main(args) == 0 and (tmp_path / "pngs" / "run.json").read_text() == first
    assert main(args + ["--animals", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "pngs" / "run.json").read_text() == first  # the old result is intact
    assert main(args + ["--animals", "2", "--overwrite"]) == 0
    assert json.loads((tmp_path / "pngs" / "run.json").read_text())["options"]["animals"] == 2


def test_bad_inputs_are_clear_errors(scene, tmp_path, capsys):
    root, _ = scene
    assert main(["track", str(tmp_path / "nothing"), "--out", str(tmp_path)]) == 2
    assert "expected a folder of instance PNGs" in capsys.readouterr().err
    small = tmp_path / "small"
    small.mkdir()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(small / "000000.png")
    assert main(["track", str(small), "--out", str(tmp_path / "o"), "--video",
                 str(root / "clip.mp4"), "--quiet"]) == 2
    assert "expected the masks of this video" in capsys.readouterr().err
    assert not (tmp_path / "o" / "clip").exists()
    # the result would replace its own input
    assert main(["track", str(root / "pngs"), "--out", str(root), "--quiet"]) == 2
    assert "would replace the input" in capsys.readouterr().err
