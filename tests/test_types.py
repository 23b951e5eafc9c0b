"""Shared types and helpers."""

import numpy as np
import pytest

from rodentseg.types import body_centroid, mask_coords


@pytest.mark.parametrize("seed", range(4))
def test_mask_coords_equals_nonzero(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((48, 64), bool)
    y0, x0 = rng.integers(0, 40), rng.integers(0, 56)
    mask[y0:y0 + 9, x0:x0 + 9] = rng.random((9, 9)) < 0.5  # may touch the frame's edges
    mask[rng.integers(0, 48), rng.integers(0, 64)] = True  # a stray pixel widens the box
    ys, xs = mask_coords(mask)
    ey, ex = np.nonzero(mask)
    np.testing.assert_array_equal(ys, ey)
    np.testing.assert_array_equal(xs, ex)


def test_mask_coords_of_an_empty_mask():
    ys, xs = mask_coords(np.zeros((5, 7), bool))
    assert ys.shape == xs.shape == (0,)


def _mouse(h=80, w=120, cx=40, cy=40, r=12, tail_w=3):
    """A disc (the body) with a straight tail ``tail_w`` px wide and 50 px long to its right."""
    yy, xx = np.mgrid[:h, :w]
    mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    mask[cy - tail_w // 2: cy + tail_w // 2 + 1, cx: cx + r + 50] = True
    return mask


def test_body_centroid_leaves_the_tail_out():
    mask = _mouse()
    ys, xs = np.nonzero(mask)
    assert xs.mean() > 45  # the tail drags the whole mask's centroid by more than 5 px
    x, y = body_centroid(mask)
    assert abs(x - 40) < 0.5 and abs(y - 40) < 0.5
    x, y = body_centroid(_mouse(tail_w=9))  # a part as wide as the body's opening stays
    assert x > 45


def test_body_centroid_of_thin_and_empty_masks():
    line = np.zeros((20, 30), bool)
    line[8:12, 3:25] = True  # narrower than the opening everywhere: the whole mask counts
    assert body_centroid(line) == pytest.approx((13.5, 9.5))
    at_edge = _mouse(cx=12, cy=12)  # the body is cut by the frame's corner
    ys, xs = np.nonzero(at_edge & ~(np.mgrid[:80, :120][1] > 24))
    assert body_centroid(at_edge) == pytest.approx((xs.mean(), ys.mean()), abs=0.3)
    assert body_centroid(np.zeros((5, 7), bool)) is None
