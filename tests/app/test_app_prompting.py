"""Clicks to masks for the default model: on a real frame with the real model, and on small
probability maps built to pin down each rule."""

from __future__ import annotations

import numpy as np
import pytest

from rodentseg.app.prompting import (
    FramePrompt,
    masks_from_prompts,
    stability_from_prob,
)
from rodentseg.track.instances import split_instances
from tests.conftest import TRACKTOR_VIDEO, needs


@pytest.fixture(scope="module")
def frame0_prob(default_model):
    """Frame 0 of the tracktor video and the default model's probabilities on it."""
    from rodentseg.annotate.frames import FrameSource

    frame = FrameSource(TRACKTOR_VIDEO).frame(0)
    return frame, default_model.predict(frame[None])[0]


@pytest.fixture(scope="module")
def mouse(frame0_prob):
    """The model's mouse on frame 0: its mask and a pixel inside it near the centroid."""
    _, prob = frame0_prob
    m = split_instances(prob, 0.5, 1).masks[0]
    ys, xs = np.nonzero(m)
    k = np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2)
    return m, (int(xs[k]), int(ys[k]))


def discs(h=120, w=160, centres=((50, 60), (110, 60)), r=22):
    """A probability map of discs (1.0 inside, 0.02 outside) centred at (x, y)."""
    yy, xx = np.mgrid[:h, :w]
    prob = np.full((h, w), 0.02, np.float32)
    for cx, cy in centres:
        prob[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = 1.0
    return prob


@needs(TRACKTOR_VIDEO)
def test_point_on_the_mouse_selects_the_models_mouse(frame0_prob, mouse):
    _, prob = frame0_prob
    m, (x, y) = mouse
    masks, notes = masks_from_prompts(prob, {1: FramePrompt([(x, y)], [1])})
    assert notes == []
    assert np.array_equal(masks[1], m)  # exactly the model's animal, tail tip included
    assert 300 < m.sum() < 3000


@needs(TRACKTOR_VIDEO)
def test_point_near_the_mouse_snaps_far_point_selects_nothing(frame0_prob, mouse):
    _, prob = frame0_prob
    m, _ = mouse
    ys, xs = np.nonzero(m)
    near = (int(xs.max()) + 6, int(ys[xs.argmax()]))  # 6 px right of the mouse's edge
    masks, notes = masks_from_prompts(prob, {1: FramePrompt([near], [1])}, snap_px=10)
    assert np.array_equal(masks[1], m) and notes == []
    far = (int(xs.max()) + 60, int(ys[xs.argmax()]))
    masks, notes = masks_from_prompts(prob, {1: FramePrompt([far], [1])}, snap_px=10)
    assert not masks[1].any()
    assert "no animal within 10 px" in notes[0]


@needs(TRACKTOR_VIDEO)
def test_box_keeps_the_predicted_pixels_inside_it(frame0_prob, mouse):
    _, prob = frame0_prob
    m, (x, _) = mouse
    ys, xs = np.nonzero(m)
    whole = (xs.min() - 5, ys.min() - 5, xs.max() + 6, ys.max() + 6)
    masks, _ = masks_from_prompts(prob, {1: FramePrompt(box=whole)})
    assert np.array_equal(masks[1], m)
    left = (xs.min() - 5, ys.min() - 5, x, ys.max() + 6)  # the box ends at the click column
    masks, _ = masks_from_prompts(prob, {1: FramePrompt(box=left)})
    assert masks[1].any() and masks[1].sum() < m.sum()
    assert not masks[1][:, x:].any() and (masks[1] <= m).all()


@needs(TRACKTOR_VIDEO)
def test_negative_point_alone_removes_the_region(frame0_prob, mouse):
    _, prob = frame0_prob
    m, (x, y) = mouse
    ys, xs = np.nonzero(m)
    whole = (xs.min() - 5, ys.min() - 5, xs.max() + 6, ys.max() + 6)
    masks, _ = masks_from_prompts(prob, {1: FramePrompt([(x, y)], [0], box=whole)})
    assert not masks[1].any()


def test_clicks_count_in_order_the_last_one_on_a_region_decides():
    prob = discs()
    left = prob > 0.5
    left[:, 80:] = False
    removed, _ = masks_from_prompts(prob, {1: FramePrompt([(50, 60), (52, 61)], [1, 0])})
    assert not removed[1].any()
    again, _ = masks_from_prompts(prob, {1: FramePrompt([(50, 60), (52, 61), (49, 58)],
                                                        [1, 0, 1])})
    assert np.array_equal(again[1], left)
    other, _ = masks_from_prompts(prob, {1: FramePrompt([(50, 60), (110, 60)], [1, 0])})
    assert np.array_equal(other[1], left)  # a negative click elsewhere changes nothing


def test_two_animals_clicked_in_one_blob_divide_it():
    prob = discs(centres=((50, 60), (85, 60)))
    masks, _ = masks_from_prompts(prob, {1: FramePrompt([(45, 60)], [1]),
                                         2: FramePrompt([(92, 60)], [1])})
    assert not (masks[1] & masks[2]).any()
    assert ((masks[1] | masks[2]) == (prob > 0.5)).all()
    assert masks[1][60, 40] and masks[2][60, 100]


def test_kept_object_divides_a_blob_with_a_clicked_one():
    prob = discs(centres=((50, 60), (85, 60)))
    left = np.zeros(prob.shape, bool)
    left[:, :60] = prob[:, :60] > 0.5  # an object tracked on the left disc
    masks, _ = masks_from_prompts(prob, {2: FramePrompt([(95, 60)], [1])}, keep={1: left})
    assert masks[1][60, 45] and masks[2][60, 95] and not (masks[1] & masks[2]).any()


def test_separate_animals_each_get_their_own_disc():
    prob = discs()
    masks, _ = masks_from_prompts(prob, {1: FramePrompt([(50, 60)], [1]),
                                         2: FramePrompt([(110, 60)], [1])})
    yy, xx = np.mgrid[:120, :160]
    assert np.array_equal(masks[1], (xx - 50) ** 2 + (yy - 60) ** 2 <= 22 * 22)
    assert np.array_equal(masks[2], (xx - 110) ** 2 + (yy - 60) ** 2 <= 22 * 22)


def test_stability_is_high_for_a_crisp_map_and_lower_for_a_soft_one():
    crisp = discs()
    m = crisp > 0.5
    soft = np.clip(crisp * 0.6 + 0.2, 0, 1).astype(np.float32)  # 0.8 inside, 0.21 outside
    soft[(m ^ np.roll(m, 4, 1))] = 0.5  # a wide, unsure rim
    assert stability_from_prob(crisp, m) == 1.0
    assert 0 < stability_from_prob(soft, m) < 0.95
    assert stability_from_prob(crisp, np.zeros_like(m)) == 0.0
