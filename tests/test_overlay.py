"""The overlay painter: colours never shared on screen, trails, time stamp."""

import numpy as np

from rodentseg.overlay import PALETTE, OverlayPainter
from rodentseg.types import FrameMasks


def _fm(frame_idx, boxes):
    """Square masks at ``boxes`` {id: (x, y)} (20 px), frame 120x160."""
    masks = np.zeros((len(boxes), 120, 160), bool)
    for k, (x, y) in enumerate(boxes.values()):
        masks[k, y:y + 20, x:x + 20] = True
    return FrameMasks(frame_idx, np.array(list(boxes), np.int64), masks)


def test_ids_on_screen_never_share_a_colour():
    paint = OverlayPainter(fps=10, height=120)
    # ids 1 and 11 would share tab10's first colour by id alone
    paint(np.zeros((120, 160, 3), np.uint8), _fm(0, {1: (10, 10), 11: (100, 60)}))
    assert not np.array_equal(paint.colour(1, 0), paint.colour(11, 0))
    # an id keeps its colour; a new id takes one nobody on screen has
    paint(np.zeros((120, 160, 3), np.uint8), _fm(1, {1: (12, 10), 11: (100, 62), 21: (50, 50)}))
    colours = {tuple(paint.colour(i, 1)) for i in (1, 11, 21)}
    assert len(colours) == 3 and tuple(paint.colour(1, 1)) == tuple(PALETTE[0])


def test_masks_trails_and_stamp_are_drawn():
    frame = np.full((120, 160, 3), 128, np.uint8)
    paint = OverlayPainter(fps=10, height=120, trail=5)
    for t in range(4):  # the animal walks right, 10 px per frame
        out = paint(frame, _fm(t, {1: (20 + 10 * t, 80)}))
    assert out.shape == frame.shape and out.dtype == np.uint8
    assert (frame == 128).all()  # not modified
    blue = PALETTE[0].astype(int)
    inside = out[97, 65].astype(int)  # in the last mask, off the trail: grey + the colour
    assert np.abs(inside - (128 * 0.5 + blue * 0.5)).max() <= 1
    # the trail joins the earlier centroids (30, 90) ... (50, 90), left of the mask
    assert np.abs(out[90, 36].astype(int) - blue).max() <= 40
    # the stamp's dark box in the top-left corner, with light text in it
    corner = out[:10, :60].astype(int)
    assert corner.min() < 50 and corner.max() > 200
    # no trail without trail frames
    plain = OverlayPainter(fps=10, height=120, trail=0)
    for t in range(4):
        out = plain(frame, _fm(t, {1: (20 + 10 * t, 80)}))
    assert (out[90, 36] == 128).all()
