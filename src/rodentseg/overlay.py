"""Draw masks and identities on frames for people to look at."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rodentseg.types import FrameMasks, mask_box

#: Colour of track_id k is PALETTE[(k - 1) % len(PALETTE)] (matplotlib tab10, RGB).
PALETTE = np.array([
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)], np.uint8)

_FONT = ImageFont.load_default()


def colour_of(obj_id: int) -> np.ndarray:
    """(3,) uint8 RGB colour of an id."""
    return PALETTE[(int(obj_id) - 1) % len(PALETTE)]


def draw_masks(frame: np.ndarray, fm: FrameMasks, alpha: float = 0.5) -> np.ndarray:
    """Blend each mask in its id's colour and write the id next to it.

    Args:
        frame: (H, W, 3) uint8 RGB; not modified.
        fm: the frame's masks, full resolution.
        alpha: opacity of the mask colour.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    out = frame.copy()
    labels = []
    for oid, m in zip(fm.obj_ids, fm.masks):
        box = mask_box(m)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        sub, msub = out[y0:y1, x0:x1], m[y0:y1, x0:x1]
        sub[msub] = (sub[msub] * (1 - alpha) + colour_of(oid) * alpha).astype(np.uint8)
        labels.append((int(oid), int(x1), max(0, int(y0) - 2)))
    for oid, x, y in labels:  # ids drawn on a small patch, not the whole frame (speed)
        text = str(oid)
        x = min(x, out.shape[1] - 8 * len(text) - 4)
        y = min(y, out.shape[0] - 14)
        patch = Image.fromarray(out[y:y + 14, x:x + 8 * len(text) + 4])
        ImageDraw.Draw(patch).text((2, 1), text, fill=tuple(int(c) for c in colour_of(oid)),
                                   font=_FONT, stroke_width=1, stroke_fill=(0, 0, 0))
        out[y:y + 14, x:x + 8 * len(text) + 4] = np.asarray(patch)
    return out
