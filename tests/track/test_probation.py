"""Which tracks are animals without a known count: specks dropped, fragments merged, animals
kept, frames handed on in order with bounded delay."""

import numpy as np
import pytest

from rodentseg.track.events import TrackEvent
from rodentseg.track.probation import Probation
from rodentseg.types import FrameMasks

H, W = 120, 200
T = 60


def disc(cx, cy, r):
    ys, xs = np.mgrid[:H, :W]
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def bar(y, x0, x1):
    m = np.zeros((H, W), bool)
    m[y:y + 2, x0:x1] = True
    return m


A = disc(50, 60, 12)  # an animal for the whole video: 441 px
B = disc(150, 60, 12)  # a second animal from frame 5 on
SPECK = disc(100, 10, 4)  # 49 px, far from both, frames 10-12
TAIL = bar(60, 66, 80)  # 28 px, 4 px right of A's box, frames 20-21: a cut-off tail tip
SHADOW = disc(50, 84, 6)  # 113 px (26% of A), 4 px below A, frames 30-31: too big to be A's


def scene():
    """The tracker's output, frame by frame: ``{tracker id: mask}``."""
    for f in range(T):
        objs = {1: A}
        if f >= 5:
            objs[4] = B
        if 10 <= f <= 12:
            objs[2] = SPECK
        if 20 <= f <= 21:
            objs[3] = TAIL
        if 30 <= f <= 31:
            objs[5] = SHADOW
        yield frame_masks(f, objs)


def frame_masks(f, objs, score=0.9):
    ids = sorted(objs)
    masks = np.stack([objs[i] for i in ids]) if ids else np.zeros((0, H, W), bool)
    return FrameMasks(f, np.array(ids), masks, np.full(len(ids), score, np.float32))


def run(frames, **kw):
    """Push every frame, then flush; returns the output and the most frames ever held."""
    p = Probation(**kw)
    out, held = [], 0
    for fm in frames:
        out += p.push(fm, np.full((H, W, 3), fm.frame_idx, np.uint8))
        held = max(held, fm.frame_idx + 1 - len(out))
    return p, out + p.flush(), held


def test_speck_dropped_fragment_merged_second_animal_kept():
    p, out, held = run(scene())
    assert [fm.frame_idx for fm, _ in out] == list(range(T))  # every frame, in order
    assert all(frame[0, 0, 0] == fm.frame_idx for fm, frame in out)  # pixels travel along
    assert 0 < held <= 30  # frames wait for decisions, never more than the probation
    by_frame = {fm.frame_idx: fm for fm, _ in out}
    assert by_frame[0].obj_ids.tolist() == [1] and by_frame[5].obj_ids.tolist() == [1, 2]
    assert {tuple(fm.obj_ids) for fm, _ in out} == {(1,), (1, 2)}  # two animals, ids 1, 2
    assert (by_frame[7].masks[1] == B).all()  # the second animal from its first frame
    for f in (10, 11, 12):  # the speck is gone
        assert not by_frame[f].masks.any(0)[SPECK].any()
    for f in (20, 21):  # the tail tip is the animal's
        assert (by_frame[f].masks[0] == (A | TAIL)).all()
    for f in (30, 31):  # the blob below is no tail tip: dropped, the animal untouched
        assert (by_frame[f].masks[0] == A).all() and not by_frame[f].masks.any(0)[SHADOW].any()
    assert (p.animals, p.rejected, p.merged, p.dropped) == (2, 3, 2, 5)


def test_merged_fragment_score_is_the_mean_over_the_union():
    frames = [frame_masks(f, {1: A}) for f in range(20)]
    frames[3] = FrameMasks(3, np.array([1, 2]), np.stack([A, TAIL]),
                           np.array([0.9, 0.6], np.float32))
    _, out, _ = run(frames)
    fm = out[3][0]
    area_a, area_t = A.sum(), TAIL.sum()
    assert fm.scores[0] == pytest.approx((0.9 * area_a + 0.6 * area_t) / (area_a + area_t))


@pytest.mark.parametrize("found_every,length,n_frames,animal", [
    (1, 30, None, True),  # seen on every frame: an animal
    (3, 30, None, False),  # seen on a third of its frames (10 of 30, need 15): a flicker
    (2, 30, None, True),  # seen on every other frame (15 of 30): enough
    (1, 30, 8, True),  # an 8-frame video: the probation is cut to 8 frames, 4 needed
])
def test_found_on_half_of_the_probation(found_every, length, n_frames, animal):
    frames = [frame_masks(f, {1: A} if f % found_every == 0 else {})
              for f in range(n_frames or 60)]
    p, out, _ = run(frames, probation=length, n_frames=n_frames)
    assert p.animals == int(animal)
    assert any(len(fm) for fm, _ in out) == animal


def test_small_persistent_blob_is_no_animal():
    frames = [frame_masks(f, {1: A, 2: SPECK}) for f in range(60)]  # 49 px < 0.25 * 441 px
    p, out, _ = run(frames)
    assert p.animals == 1 and all(fm.obj_ids.tolist() == [1] for fm, _ in out)
    assert p.dropped == 60  # judged again on each window, never an animal
    p, out, _ = run(frames, min_area_ratio=0.1)  # a smaller ratio keeps it
    assert p.animals == 2


def test_a_track_that_fails_its_first_window_is_judged_again():
    frames = [frame_masks(f, {1: B} if f % 5 == 0 or f >= 40 else {}) for f in range(100)]
    p, out, _ = run(frames)
    by_frame = {fm.frame_idx: fm for fm, _ in out}
    assert p.animals == 1 and not len(by_frame[0]) and len(by_frame[50]) == 1


def test_ids_count_animals_in_order_of_confirmation():
    frames = [frame_masks(f, {7: A, **({9: B} if f >= 10 else {})}) for f in range(60)]
    p, out, _ = run(frames)
    assert p.ids == {7: 1, 9: 2} and out[-1][0].obj_ids.tolist() == [1, 2]


def test_probation_zero_keeps_every_track_at_once():
    p, out, held = run(scene(), probation=0)
    assert held == 0 and p.animals == 5 and p.merged == p.dropped == 0
    assert out[10][0].obj_ids.tolist() == [1, 2, 3]  # the speck as the tracker gave it


def test_events_keep_animals_only_in_their_ids():
    p, _, _ = run(scene())
    events = [TrackEvent(40, "uncertain", 1, 4, 0.1, 40, 40),  # the two animals
              TrackEvent(11, "uncertain", 1, 2, 0.2, 11, 11),  # the animal and the speck
              TrackEvent(50, "relink", 4, 0, float("nan"), 50, 50)]  # no competitor
    kept = p.events(events)
    assert [(e.track_a, e.track_b, e.frame_idx) for e in kept] == [(1, 2, 40), (2, 0, 50)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_found"):
        Probation(min_found=0)
    with pytest.raises(ValueError, match="probation"):
        Probation(probation=-1)
