"""IDF1, ID switches and MOTA of mask tracks (rodentseg.evaluate.identity, via py-motmetrics),
checked against values worked out by hand."""

import numpy as np
import pytest

pytest.importorskip("motmetrics")

from rodentseg.evaluate.identity import IdentityMetrics, identity_metrics
from rodentseg.types import FrameMasks

H, W = 20, 40


def box(x0):
    m = np.zeros((H, W), bool)
    m[5:15, x0:x0 + 10] = True
    return m


def frame(f, ids, masks):
    return FrameMasks(f, np.array(ids), np.array(masks, bool).reshape(-1, H, W))


GT = [frame(f, [1, 2], [box(2), box(25)]) for f in range(4)]


def test_perfect_tracks():
    pred = [frame(f, [7, 9], [box(2), box(25)]) for f in range(4)]
    m = identity_metrics(GT, pred)
    assert m["idf1"] == 1.0 and m["num_switches"] == 0 and m["mota"] == 1.0
    assert m["motp"] == pytest.approx(0.0) and m["num_frames"] == 4


def test_one_swap_halfway():
    # ids exchanged from frame 2 on: every animal switches once (2 switches); the best global
    # mapping keeps 4 of the 8 ground-truth detections, so IDF1 = 2*4 / (8 + 8) = 0.5;
    # MOTA = 1 - 2 switches / 8 objects = 0.75
    pred = [frame(f, [7, 9] if f < 2 else [9, 7], [box(2), box(25)]) for f in range(4)]
    m = identity_metrics(GT, pred)
    assert m["num_switches"] == 2
    assert m["idf1"] == pytest.approx(0.5)
    assert m["mota"] == pytest.approx(0.75)


def test_low_iou_is_a_miss_and_a_false_positive():
    # prediction shifted by 6 of 10 columns: IoU 4/16 = 0.25 < 0.5
    pred = [frame(0, [7, 9], [box(8), box(25)])]
    m = identity_metrics(GT[:1], pred)
    assert (m["num_misses"], m["num_false_positives"], m["num_matches"]) == (1, 1, 1)
    lenient = IdentityMetrics(iou_threshold=0.2)
    lenient.update(GT[0], pred[0])
    assert lenient.compute()["num_matches"] == 2


def test_frames_missing_on_one_side_count_as_empty():
    pred = [frame(f, [7, 9], [box(2), box(25)]) for f in (0, 1, 3)]  # frame 2 not predicted
    m = identity_metrics(GT, pred)
    assert m["num_misses"] == 2 and m["num_switches"] == 0 and m["num_frames"] == 4


def test_mismatched_frames_are_rejected():
    m = IdentityMetrics()
    with pytest.raises(ValueError, match="differ"):
        m.update(GT[0], frame(1, [1], [box(2)]))


def test_an_empty_ground_truth_frame_makes_predictions_false_positives():
    m = IdentityMetrics()
    m.update(frame(0, [], []), frame(0, [7], [box(2)]))  # no animal in view, one predicted
    r = m.compute()
    assert (r["num_false_positives"], r["num_objects"], r["num_frames"]) == (1, 0, 1)
