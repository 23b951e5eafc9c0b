"""Shared types and helpers."""

import numpy as np
import pytest

from rodentseg.types import mask_coords


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
