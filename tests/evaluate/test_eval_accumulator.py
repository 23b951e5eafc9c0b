"""SegmentationMetrics (update/compute) on small frames whose scores are worked out by hand.

Video-level J/F statistics follow davis2017/evaluation.py: per object, db_statistics over all
frames, then the mean over objects; J&F mean = (J mean + F mean) / 2.
"""

import math

import numpy as np
import pytest

from rodentseg.errors import RodentsegError
from rodentseg.evaluate import SegmentationMetrics
from rodentseg.types import FrameMasks


def frame(idx, *objects, shape=(8, 8)):
    """FrameMasks from (obj_id, (y0, y1, x0, x1)) rectangles (end-exclusive)."""
    masks = np.zeros((len(objects), *shape), bool)
    for k, (_, (y0, y1, x0, x1)) in enumerate(objects):
        masks[k, y0:y1, x0:x1] = True
    return FrameMasks(idx, np.array([o for o, _ in objects], np.int64), masks)


A = (0, 2, 0, 2)  # 4 px, top-left
A_WIDE = (0, 2, 0, 3)  # 6 px, contains A -> IoU 4/6
B = (5, 8, 5, 8)  # 9 px, bottom-right corner (touches the border)


def test_perfect_frame():
    m = SegmentationMetrics()
    rows = m.update(frame(0, (1, A), (2, B)), frame(0, (1, A), (2, B)))
    assert [(r.obj_id, r.pred_id, r.status, r.iou, r.j, r.f) for r in rows] == [
        (1, 1, "matched", 1.0, 1.0, 1.0), (2, 2, "matched", 1.0, 1.0, 1.0)]
    out = m.compute()
    assert out["iou"]["mean"] == 1.0 and out["davis"]["J&F"]["mean"] == 1.0
    assert out["semantic"]["miou"] == 1.0


def test_ids_differ_hungarian_pairs_by_iou():
    # prediction ids 7 and 9 are swapped relative to position: matched by IoU, not by id
    m = SegmentationMetrics()
    rows = m.update(frame(0, (9, A_WIDE), (7, B)), frame(0, (1, A), (2, B)))
    assert [(r.obj_id, r.pred_id) for r in rows] == [(1, 9), (2, 7)]
    assert rows[0].iou == pytest.approx(4 / 6) and rows[1].iou == 1.0


def test_match_by_id_counts_identity_swaps():
    m = SegmentationMetrics(match="id")
    rows = m.update(frame(0, (2, A), (1, B)), frame(0, (1, A), (2, B)))
    assert [(r.status, r.j) for r in rows] == [("matched", 0.0), ("matched", 0.0)]


def test_missed_false_positive_and_empty_frames():
    m = SegmentationMetrics(boundary_tol=1)
    # frame 0: GT object 1 has no prediction -> missed, J = F = 0
    rows = m.update(frame(0), frame(0, (1, A)))
    assert [(r.status, r.pred_id, r.iou, r.j, r.f, r.gt_area) for r in rows] == [
        ("missed", 0, 0.0, 0.0, 0.0, 4)]
    # frame 1: a prediction with no GT object -> false positive (obj_id 0), J = F = 0
    rows = m.update(frame(1, (3, B)), frame(1))
    assert [(r.obj_id, r.pred_id, r.status, r.j, r.f, r.pred_area) for r in rows] == [
        (0, 3, "false_positive", 0.0, 0.0, 9)]
    # frame 2: nothing on either side: no row, the frame scores J = F = 1, IoU undefined
    assert m.update(frame(2), frame(2)) == []
    t = m.frame_table()
    assert t["frame_idx"].tolist() == [0, 1, 2]
    assert t["j"].tolist() == [0.0, 0.0, 1.0] and math.isnan(t["iou"][2])
    out = m.compute()
    assert out["objects"] == {"gt_instances": 1, "matched": 0, "missed": 1, "false_positives": 1}
    assert out["iou"]["mean"] == 0.0
    # DAVIS: object 1 over the 3 frames is [0, 1, 1] (absent and unpredicted = 1)
    assert out["davis"]["J"]["mean"] == pytest.approx(2 / 3)


def test_davis_statistics_over_frames():
    # object 1: J = 1, 1, 4/6, 4/6 over 4 frames; F = 1 throughout (within 1 px)
    m = SegmentationMetrics(boundary_tol=1)
    for i, box in enumerate([A, A, A_WIDE, A_WIDE]):
        m.update(frame(i, (5, box)), frame(i, (1, A)))
    d = m.compute()["davis"]
    # mean (1 + 1 + 2/3 + 2/3) / 4; recall: all > .5; decay: bins [0,1] and [2,3] (4 frames)
    assert d["J"]["mean"] == pytest.approx(5 / 6)
    assert d["J"]["recall"] == 1.0
    assert d["J"]["decay"] == pytest.approx(1 - 2 / 3)
    assert d["F"] == {"mean": 1.0, "recall": 1.0, "decay": 0.0}
    assert d["J&F"]["mean"] == pytest.approx((5 / 6 + 1) / 2)
    assert d["per_object"]["1"]["J"]["mean"] == pytest.approx(5 / 6)


def test_per_class_iou_by_hand():
    # 8x8 frame, GT = A (4 px), prediction = A_WIDE (6 px)
    # animal: inter 4, union 6; background: inter 64 - 6 = 58, union 64 - 4 = 60
    m = SegmentationMetrics()
    m.update(frame(0, (1, A_WIDE)), frame(0, (1, A)))
    s = m.compute()["semantic"]
    assert s["per_class_iou"] == {"0": pytest.approx(58 / 60), "1": pytest.approx(4 / 6)}
    assert s["miou"] == pytest.approx((58 / 60 + 4 / 6) / 2)


def test_semantic_classes_by_hand():
    # class 1 perfect (4 px), class 2 predicted where there is none (9 px), class 3 missed
    m = SegmentationMetrics(semantic=True)
    m.update(frame(0, (1, A), (2, B)), frame(0, (1, A), (3, (3, 4, 3, 5))))
    s = m.compute()["semantic"]["per_class_iou"]
    # background: foreground union = 4 + 9 + 2 = 15, intersection 4 -> (64-15) / (64-4)
    assert s == {"0": pytest.approx(49 / 60), "1": 1.0, "2": 0.0, "3": 0.0}


def test_gt_object_with_empty_mask_scores_like_davis():
    # an annotation with an empty mask and no prediction: IoU undefined, J = 1, F = 1
    gt = FrameMasks(0, [1], np.zeros((1, 5, 5), bool))
    rows = SegmentationMetrics().update(frame(0, shape=(5, 5)), gt)
    assert math.isnan(rows[0].iou) and rows[0].j == 1.0 and rows[0].f == 1.0


def test_errors():
    m = SegmentationMetrics()
    with pytest.raises(RodentsegError, match="same size"):
        m.update(frame(0, (1, A), shape=(8, 9)), frame(0, (1, A)))
    m.update(frame(0), frame(0))
    with pytest.raises(ValueError, match="already"):
        m.update(frame(0), frame(0))
    with pytest.raises(RodentsegError, match="match"):
        SegmentationMetrics(match="name")
