"""`rodentseg annotate` one-shot end to end: layout identical to segment's, review.csv, resume,
prompt parsing, bad input."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from rodentseg.annotate.cli import parse_objects
from rodentseg.annotate.prompts import parse_box, parse_points
from rodentseg.annotate.review import REVIEW_COLUMNS, ReviewRanker
from rodentseg.annotate.store import ObjectMask
from rodentseg.cli import main
from rodentseg.errors import RodentsegError
from rodentseg.io.masks import iter_coco_frames
from rodentseg.io.results import TRACK_COLUMNS
from rodentseg.io.video import probe

LAYOUT = ["masks", "masks.json", "overlay.mp4", "review.csv", "run.json", "tracks.csv"]


@pytest.fixture(scope="module")
def result(sam2_video_dir, clip12, tmp_path_factory):
    out = tmp_path_factory.mktemp("annot")
    assert main(["annotate", str(clip12), "--out", str(out), "--model", str(sam2_video_dir),
                 "--points", "4:253,221,1;240,215,1", "--box", "4:400,300,470,360",
                 "--device", "cpu", "--check", "--quiet"]) == 0
    return out / clip12.stem


def test_layout_is_segments(result):
    assert sorted(p.name for p in result.iterdir()) == LAYOUT
    assert sorted(p.name for p in (result / "masks").iterdir()) == [f"{i:06d}.png"
                                                                    for i in range(12)]
    assert not list(result.parent.glob(".*partial*"))
    assert probe(result / "overlay.mp4").frame_count == 12


def test_every_frame_written_once_both_objects(result):
    rows = list(csv.DictReader((result / "tracks.csv").open()))
    assert list(rows[0]) == TRACK_COLUMNS
    frames = [int(r["frame_idx"]) for r in rows]
    assert frames == sorted(frames) and set(frames) == set(range(12))
    assert {(int(r["frame_idx"]), r["track_id"]) for r in rows} == {
        (t, k) for t in range(12) for k in ("1", "2")}
    coco = list(iter_coco_frames(result / "masks.json"))
    assert [fm.frame_idx for fm in coco] == list(range(12))
    for fm in coco:
        label = np.asarray(Image.open(result / "masks" / f"{fm.frame_idx:06d}.png"))
        assert (fm.to_label_image() == label).all()


def test_run_json_and_review(result, sam2_video_dir):
    run = json.loads((result / "run.json").read_text())
    assert run["command"] == "annotate" and run["mode"] == "one-shot"
    assert run["frame_count"] == 12 and len(run["video_sha256"]) == 64
    assert [p["obj_id"] for p in run["prompts"]] == [1, 2]
    assert run["prompts"][0]["points"]["4"][1] == [1, 1]
    assert run["consistency_checked"] > 0
    rows = list(csv.DictReader((result / "review.csv").open()))
    assert list(rows[0]) == REVIEW_COLUMNS and len(rows) == 12
    unc = [float(r["uncertainty"]) for r in rows]
    assert unc == sorted(unc, reverse=True) and [int(r["rank"]) for r in rows] == list(range(1, 13))
    assert rows[-1]["frame_idx"] == "4" and rows[-1]["reason"] == "prompted"
    assert any(r["fb_iou"] != "" for r in rows)


def test_rerun_skips_and_changed_prompts_need_overwrite(result, sam2_video_dir, clip12, capsys):
    args = ["annotate", str(clip12), "--out", str(result.parent), "--model", str(sam2_video_dir),
            "--device", "cpu"]
    before = (result / "run.json").read_text()
    assert main(args + ["--points", "4:253,221,1;240,215,1", "--box", "4:400,300,470,360",
                        "--check"]) == 0
    assert "already done" in capsys.readouterr().out
    assert main(args + ["--points", "4:10,10,1"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (result / "run.json").read_text() == before  # the finished result is untouched


def test_mask_correction_from_png(sam2_video_dir, clip12, tmp_path):
    fix = np.zeros((480, 640), np.uint8)
    fix[200:240, 230:280] = 1
    Image.fromarray(fix).save(tmp_path / "fix.png")
    assert main(["annotate", str(clip12), "--out", str(tmp_path / "o"), "--model",
                 str(sam2_video_dir), "--points", "1=2:253,221,1", "--mask",
                 f"1=8:{tmp_path / 'fix.png'}", "--device", "cpu", "--quiet",
                 "--no-overlay"]) == 0
    label = np.asarray(Image.open(tmp_path / "o" / clip12.stem / "masks" / "000008.png"))
    assert np.array_equal(label == 1, fix == 1)  # the correction is the mask of frame 8


@pytest.mark.parametrize("args,match", [
    (["--points", "4:900,10,1"], "outside the 640x480 frame"),  # x beyond the width
    (["--points", "40:10,10,1"], "outside the video"),  # 12 frames
    (["--points", "4:10,10,2"], "labels must be"),  # label 2
    (["--box", "4:10,10,5"], "FRAME:x0,y0,x1,y1"),  # 3 numbers
    (["--points", "x=4:10,10,1"], "object id before '='"),
    ([], "give prompts"),  # neither prompts nor text
])
def test_bad_prompts_leave_nothing(sam2_video_dir, clip12, tmp_path, capsys, args, match):
    code = main(["annotate", str(clip12), "--out", str(tmp_path), "--model", str(sam2_video_dir),
                 "--device", "cpu", "--quiet", *args])
    assert code == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / clip12.stem).exists() and not list(tmp_path.glob(".*partial*"))


def test_parse_prompts():
    pts = parse_points("0:10,20,1;30,40,0;5:1.5,2.5")
    assert list(pts) == [0, 5]
    assert pts[0][0].tolist() == [[10, 20], [30, 40]] and pts[0][1].tolist() == [1, 0]
    assert pts[5][1].tolist() == [1]  # label defaults to 1
    assert parse_box("3:1,2,3,4;9:5,6,7,8")[9].tolist() == [5, 6, 7, 8]
    objs = parse_objects([("points", "0:1,1,1"), ("box", "0:0,0,5,5"), ("box", "1=3:0,0,9,9")],
                         480, 640)
    assert [o.obj_id for o in objs] == [1, 2]  # the third prompt joins object 1
    assert sorted(objs[0].frames) == [0, 3] and objs[1].frames == [0]
    with pytest.raises(RodentsegError, match="start with the frame"):
        parse_points("10,20,1")


def test_review_cues():
    r = ReviewRanker(fps=10)
    m = np.zeros((40, 40), bool)
    m[10:20, 10:20] = True
    moved = np.roll(m, 12, axis=1)
    r.update(0, {1: ObjectMask(m, prompted=True)})
    r.update(1, {1: ObjectMask(m, score=0.9)})  # steady
    r.update(2, {1: ObjectMask(moved, score=0.9)})  # jumps 12 px = 1.2 body lengths
    r.update(3, {1: ObjectMask(moved, score=0.9), 2: ObjectMask(moved, score=0.9)})  # overlap
    r.update(4, {1: ObjectMask(np.zeros_like(m)), 2: ObjectMask(moved)})  # object 1 lost
    rows = {row[1]: row for row in r.ranked()}
    assert rows[2][4] == "jump" and rows[3][4] == "overlap" and rows[4][4] == "lost"
    assert rows[0][4] == "prompted" and rows[0][3] == 0.0
    assert rows[1][3] == pytest.approx(0.1)  # only 1 - score
    assert [row[1] for row in r.ranked()][:3] == [2, 3, 4]  # uncertainty 1.0, earliest first
