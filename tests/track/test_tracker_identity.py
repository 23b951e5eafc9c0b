"""Relinking shuffled ids: ground-truth tracks, ids shuffled per frame, animals that touch,
cross, merge into one blob, vanish and come back; scored by identity accuracy and switches."""

import math

import numpy as np
import pytest
from track_scenes import IdentityScore, detect, ellipse, render

from rodentseg.evaluate.identity import IdentityMetrics
from rodentseg.track.events import EventLog
from rodentseg.track.kalman import CentroidKalman
from rodentseg.track.tracker import Tracker

H, W = 160, 240
T = 80
t = np.arange(T, dtype=float)
# two animals head-on along nearly the same line: they touch, overlap and pass
CROSS_2 = np.stack([np.stack([30 + 2.5 * t, 80 + 0 * t], 1),
                    np.stack([210 - 2.5 * t, 86 + 0 * t], 1)])
# an X crossing plus a third animal walking up through the crossing point
CROSS_3 = np.stack([np.stack([30 + 2.5 * t, 40 + 1.0 * t], 1),
                    np.stack([210 - 2.5 * t, 40 + 1.0 * t], 1),
                    np.stack([120 + 0 * t, 150 - 1.2 * t], 1)])


def track_scene(paths, n_animals, merge, seed=0, colours=None, use_frame=False):
    rng = np.random.default_rng(seed)
    tracker = Tracker(n_animals=n_animals)
    score, metrics = IdentityScore(), IdentityMetrics()
    merged_frames = 0
    for gt, frame in render(paths, H, W, colours):
        masks, scores = detect(gt, rng, merge)
        merged_frames += len(masks) < len(gt)
        fm = tracker.update(gt.frame_idx, masks, scores, frame=frame if use_frame else None)
        if n_animals:
            assert len(fm) <= n_animals and set(fm.obj_ids) <= set(range(1, n_animals + 1))
        score.update(gt, fm)
        metrics.update(gt, fm)
    return tracker, score, metrics.compute(), merged_frames


@pytest.mark.parametrize("paths", [CROSS_2, CROSS_3], ids=["two-head-on", "three-x-crossing"])
@pytest.mark.parametrize("n_animals", [None, "known"])
def test_shuffled_instance_masks_keep_their_identity(paths, n_animals):
    n = len(paths) if n_animals else None
    _, score, mm, _ = track_scene(paths, n, merge=False, seed=1)
    assert score.accuracy == 1.0 and score.switches == 0
    assert mm["num_switches"] == 0 and mm["idf1"] == pytest.approx(1.0)


@pytest.mark.parametrize("paths", [CROSS_2, CROSS_3], ids=["two-head-on", "three-x-crossing"])
def test_known_count_holds_identities_through_merged_blobs(paths):
    tracker, score, mm, merged = track_scene(paths, len(paths), merge=True, seed=2)
    assert merged >= 5  # the animals really were one blob for a while
    assert mm["num_switches"] == 0
    assert score.accuracy >= 0.95  # a mostly covered animal inside a blob may count as lost
    kinds = {e.kind for e in tracker.events}
    assert {"merge", "relink"} <= kinds
    merge = next(e for e in tracker.events if e.kind == "merge")
    assert 25 <= merge.first_frame <= 45  # the paths meet near frame 36


def test_unknown_count_does_not_swap_after_a_merge():
    _, _, mm, merged = track_scene(CROSS_2, None, merge=True, seed=3)
    assert merged >= 5
    assert mm["num_switches"] == 0  # the blob gets one id, the other animal comes back as itself


def test_appearance_decides_where_motion_cannot():
    """A dark and a light animal vanish for 3 frames and come back each slightly nearer the
    other's old place: motion alone swaps them, their colours keep them apart."""
    a_old, b_old, a_new, b_new = (60, 60), (140, 60), (104, 25), (96, 95)
    paths = np.full((2, 20, 2), np.nan)
    paths[0, :10], paths[1, :10] = a_old, b_old
    paths[0, 13:], paths[1, 13:] = a_new, b_new
    colours = [(30, 30, 30), (200, 160, 120)]
    for use_frame in (True, False):
        tracker, score, _, _ = track_scene(paths, 2, merge=False, colours=colours,
                                           use_frame=use_frame)
        assert (score.accuracy == 1.0) == use_frame
    relink = [e for e in tracker.events if e.kind == "relink"]
    assert relink and relink[0].frame_idx == 13


def test_known_count_ignores_extra_specks():
    tracker = Tracker(n_animals=2)
    rng = np.random.default_rng(0)
    for f in range(30):
        a = ellipse(H, W, (40 + 2 * f, 50), (1, 0))
        b = ellipse(H, W, (200 - 2 * f, 120), (-1, 0))
        speck = np.zeros((H, W), bool)
        speck[rng.integers(0, H), rng.integers(0, W)] = True
        masks = np.stack([speck, a, b])[rng.permutation(3)] if f else np.stack([a, b])
        fm = tracker.update(f, masks, np.ones(len(masks)))
        assert fm.obj_ids.tolist() == [1, 2]
        assert sorted(m.sum() for m in fm.masks) == sorted([a.sum(), b.sum()])


def test_kalman_predicts_constant_velocity_across_gaps():
    kf = CentroidKalman(np.array([0.0, 0.0]))
    for k in range(1, 20):
        kf.predict(1)
        kf.update(np.array([3.0 * k, -1.0 * k]))
    assert kf.velocity == pytest.approx([3, -1], abs=0.05)
    kf.predict(4)  # four frames with no mask
    assert kf.position == pytest.approx([3 * 23, -23], abs=0.5)


def test_tracker_uses_the_frame_gap_in_its_prediction():
    tracker = Tracker(n_animals=1)
    for f in range(0, 20, 2):  # masks every second frame, moving 4 px per frame index step
        tracker.update(f, ellipse(H, W, (20 + 2 * f, 80), (1, 0))[None], np.ones(1))
    assert tracker.predicted_centroids()[0] == pytest.approx([20 + 2 * 19, 80], abs=1.0)


def test_event_log_joins_consecutive_frames_and_stays_bounded():
    log = EventLog(max_events=3)
    for f in (5, 6, 7):
        log.note(f, "uncertain", 2, 1, margin=0.3 - 0.1 * (f == 6))
        log.end_frame(f)
    ev = log.events()
    assert len(ev) == 1 and (ev[0].first_frame, ev[0].last_frame) == (5, 7)
    assert ev[0].frame_idx == 6 and math.isclose(ev[0].cost_margin, 0.2)
    for f in range(10, 30, 2):  # ten separate events
        log.note(f, "relink", 1, 0)
        log.end_frame(f)
        log.end_frame(f + 1)
    assert len(log.events()) == 3 and log.dropped == 8
