"""evaluate_folders / the ``evaluate`` command: inputs, outputs, frame pairing and errors."""

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rodentseg.errors import RodentsegError
from rodentseg.evaluate import add_evaluate_parser, evaluate_folders, run_evaluate
from rodentseg.evaluate.accumulator import ObjectScore
from rodentseg.evaluate.cli import main
from rodentseg.evaluate.report import (
    FALSE_POSITIVE,
    GT_LINE,
    MISSED,
    WorstFrames,
    crop_box,
    jsonable,
    render_panels,
)
from rodentseg.io.masks import CocoWriter, write_label_png
from rodentseg.types import FrameMasks

OPENFIELD = Path("/work/shared/data/openfield-m4s1")
H, W = 48, 64


def rect_frame(idx, *objects):
    masks = np.zeros((len(objects), H, W), bool)
    for k, (_, (y0, y1, x0, x1)) in enumerate(objects):
        masks[k, y0:y1, x0:x1] = True
    return FrameMasks(idx, [o for o, _ in objects], masks)


@pytest.fixture
def data(tmp_path):
    """GT: label PNGs for frames 0-3 (frame 3 has no prediction). PRED: a COCO JSON with other
    ids, frames 0-2 and 9 (frame 9 has no ground truth)."""
    gt_dir = tmp_path / "gt"
    gt_dir.mkdir()
    for i in range(4):
        write_label_png(gt_dir / f"{i:06d}.png",
                        rect_frame(i, (1, (5, 15, 5 + i, 20 + i)), (2, (30, 40, 40, 60))))
    with CocoWriter(tmp_path / "pred.json", W, H) as w:
        w.add(rect_frame(0, (8, (5, 15, 5, 20)), (4, (30, 40, 40, 60))))  # perfect
        w.add(rect_frame(1, (8, (5, 15, 6, 21))))  # object 2 missed
        w.add(rect_frame(2, (8, (5, 15, 7, 22)), (4, (30, 40, 40, 60)), (5, (0, 3, 0, 3))))
        w.add(rect_frame(9, (8, (0, 5, 0, 5))))
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        Image.fromarray(np.full((H, W, 3), 40 * i, np.uint8)).save(frames / f"img{i:04d}.png")
    kp = tmp_path / "kp.csv"
    kp.write_text("frame,bodypart,x,y\n0,nose,10,10\n1,nose,45,35\n3,nose,45,35\n")
    return tmp_path


def test_cli_end_to_end(data, capsys):
    out = data / "out"
    code = main(["evaluate", str(data / "pred.json"), str(data / "gt"), "--out", str(out),
                 "--frames", str(data / "frames"), "--keypoints", str(data / "kp.csv")])
    assert code == 0
    assert "4 frames (1 only in GT" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    assert m["frames"] == {"evaluated": 4, "gt_only_empty_prediction": 1,
                           "pred_only_ignored": 1, "pred_only_frames": [9]}
    # 8 GT object-frames: frame 1 misses object 2, frame 3 misses both
    assert m["objects"] == {"gt_instances": 8, "matched": 5, "missed": 3, "false_positives": 1}
    assert m["iou"]["mean"] == pytest.approx(5 / 8)
    assert m["davis"]["J"]["mean"] == pytest.approx(5 / 8)
    with (out / "per_frame.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {"frame_idx", "obj_id", "iou", "j", "f"} <= set(rows[0])
    assert [(r["frame_idx"], r["obj_id"], r["pred_id"], r["status"]) for r in rows] == [
        ("0", "1", "8", "matched"), ("0", "2", "4", "matched"),
        ("1", "1", "8", "matched"), ("1", "2", "0", "missed"),
        ("2", "1", "8", "matched"), ("2", "2", "4", "matched"), ("2", "0", "5", "false_positive"),
        ("3", "1", "0", "missed"), ("3", "2", "0", "missed")]
    assert Image.open(out / "per_frame.png").format == "PNG"
    sheets = sorted(out.glob("worst_*.png"))
    assert [s.name for s in sheets] == ["worst_01.png"]  # 3 imperfect frames, 4 per sheet
    # no frames given: the error panel alone (no empty frame panel), under a 30 px caption
    assert Image.open(sheets[0]).height > 3 * 30
    # keypoints: frame 0 point in object 1, frame 1 point in object 2 only in GT, frame 3 none
    assert m["keypoints"]["gt"]["inside_any_count"] == 3
    assert m["keypoints"]["pred"]["inside_any_count"] == 1


def test_run_evaluate_from_namespace(data):
    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers())
    args = parser.parse_args(["evaluate", str(data / "gt"), str(data / "gt"), "--out",
                              str(data / "o"), "--worst", "0", "--boundary-tol", "2"])
    assert args.func is run_evaluate and run_evaluate(args) == 0
    m = json.loads((data / "o" / "metrics.json").read_text())
    assert m["davis"]["J&F"]["mean"] == 1.0 and m["boundary_tol_px"] == [2.0]
    assert not list((data / "o").glob("worst_*.png"))


def test_keypoints_only(data):
    r = evaluate_folders(data / "gt", None, data / "k", keypoints=data / "kp.csv")
    assert r["keypoints"]["pred"]["inside_any_count"] == 3 and "gt" not in r["keypoints"]
    assert not (data / "k" / "per_frame.csv").exists()


def test_video_background(data):
    from rodentseg.io.video import VideoWriter

    try:
        with VideoWriter(data / "v.mp4", W, H, fps=10) as vw:
            for i in range(4):
                vw.write(np.full((H, W, 3), 60 * i, np.uint8))
    except Exception as e:  # an FFmpeg build without libx264
        pytest.skip(f"cannot write a test video: {e}")
    r = evaluate_folders(data / "pred.json", data / "gt", data / "v", video=data / "v.mp4")
    assert len(r["outputs"]["contact_sheets"]) == 1


@pytest.mark.parametrize("argv,message", [
    (["evaluate", "missing", "gt", "--out", "o"], "does not exist"),  # no PRED
    (["evaluate", "gt", "--out", "o"], "nothing to evaluate"),  # no GT and no keypoints
    (["evaluate", "gt", "gt", "--out", "o", "--boundary-tol", "2.5"], "whole number"),
    (["evaluate", "kp.csv", "gt", "--out", "o"], "is a .csv file"),
])
def test_bad_input_exits_2_with_a_message(data, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(data)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_duplicate_frame_index_is_an_error(tmp_path):
    # two images whose file names give the same frame index
    coco = {"images": [{"id": 1, "file_name": "img0002.png", "width": 4, "height": 4},
                       {"id": 2, "file_name": "cam2_0002.png", "width": 4, "height": 4}],
            "annotations": []}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    with pytest.raises(RodentsegError, match="increasing order"):
        evaluate_folders(tmp_path / "c.json", tmp_path / "c.json", tmp_path / "o")


def test_worst_frames_keeps_the_lowest():
    w = WorstFrames(2)
    for i, score in enumerate([0.9, 0.2, 1.0, 0.5, 0.7]):
        row = ObjectScore(i, 1, 1, "matched", score, score, score, 1, 1, 1, 1)
        w.offer(rect_frame(i), rect_frame(i), [row])
    assert [(round(s, 2), g.frame_idx) for s, _, g, _ in w.items()] == [(0.2, 1), (0.5, 3)]


def test_jsonable():
    assert jsonable({"a": float("nan"), 1: [np.float32(0.5), np.int64(3)]}) == {
        "a": None, "1": [0.5, 3]}


@pytest.mark.skipif(not OPENFIELD.is_dir(), reason="openfield-m4s1 data not present")
def test_openfield_png_against_coco(tmp_path):
    # the same silver masks as PNGs and as COCO (ids from instance_id, frames from file names)
    r = evaluate_folders(OPENFIELD / "masks.json", OPENFIELD / "masks", tmp_path, worst=0,
                         keypoints=OPENFIELD / "keypoints.csv")
    assert r["frames"]["evaluated"] == 116 and r["davis"]["J&F"]["mean"] == 1.0
    assert r["keypoints"]["pred"]["inside_right_count"] == 450


def test_error_panel_colours_crop_and_keypoints():
    gt_m = np.zeros((1, 100, 120), bool)
    gt_m[0, 40:60, 50:70] = True
    pred_m = np.zeros((1, 100, 120), bool)
    pred_m[0, 40:60, 55:75] = True  # 5 px to the right: 5 columns missed, 5 false positive
    gt, pred = FrameMasks(0, np.array([1]), gt_m), FrameMasks(0, np.array([3]), pred_m)
    box = crop_box(gt, pred, pad=0.25, min_side=10)
    assert box == (44, 34, 81, 66)  # the union 50-75 x 40-60, grown by 6 px (25% of 25)
    rgb = np.full((100, 120, 3), 10, np.uint8)
    both = render_panels(rgb, pred, gt, [], keypoints=np.array([[60.0, 50.0]]), box=box)
    assert both.shape == (32, 2 * 37 + 4, 3)
    err = render_panels(None, pred, gt, [], box=box)
    assert err.shape == (32, 37, 3)  # no frame: no frame panel
    at = lambda x, y: tuple(err[y - box[1], x - box[0]])  # noqa: E731
    assert at(52, 50) == MISSED and at(72, 50) == FALSE_POSITIVE and at(50, 40) == GT_LINE
    assert at(60, 50) not in (MISSED, FALSE_POSITIVE)  # both: tinted by the object's colour
    kp = both[50 - box[1], 37 + 4 + 60 - box[0]]
    assert tuple(kp) == (255, 255, 255)  # the keypoint's dot
