"""Issue 4 acceptance on real data: the default model's output on openfield-m4s1 (its frames
folder read as a video) scored against the silver masks and the human keypoints."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from rodentseg.cli import main
from tests.conftest import OPENFIELD, needs


@needs(OPENFIELD)
def test_segment_eval_on_openfield(tmp_path, capsys):
    out = tmp_path / "runs"
    code = main(["segment", str(OPENFIELD / "frames"), "--out", str(out), "--animals", "1",
                 "--quiet", "--no-overlay", "--eval", str(OPENFIELD / "masks"),
                 "--keypoints", str(OPENFIELD / "keypoints.csv")])
    assert code == 0, capsys.readouterr().err
    result = out / "frames"
    ev = result / "eval"
    for name in ("metrics.json", "per_frame.csv", "per_frame.png"):
        assert (ev / name).is_file(), name
    assert list(ev.glob("worst_*.png")), "no contact sheet of the worst frames"
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["frames"]["evaluated"] == 116
    assert 0.7 < metrics["iou"]["mean"] <= 1  # training frames included: not the card's score
    rows = list(csv.DictReader((ev / "per_frame.csv").open()))
    assert {"frame_idx", "obj_id", "iou", "j", "f"} <= set(rows[0])

    # second computation of keypoint containment, straight from the label PNGs
    names = sorted(p.name for p in (OPENFIELD / "frames").glob("*.png"))
    frame_of = {n: i for i, n in enumerate(names)}
    inside = total = 0
    labels = {}
    for r in csv.DictReader((OPENFIELD / "keypoints.csv").open()):
        i = frame_of[r["frame"]]
        if i not in labels:
            labels[i] = np.asarray(Image.open(result / "masks" / f"{i:06d}.png"))
        x, y = int(np.floor(float(r["x"]) + 0.5)), int(np.floor(float(r["y"]) + 0.5))
        total += 1
        inside += bool(labels[i][y, x] > 0)
    kp = metrics["keypoints"]["pred"]
    assert kp["points"] == total == 464
    assert kp["inside_any_count"] == inside
    assert kp["inside_any"] == pytest.approx(inside / total)
