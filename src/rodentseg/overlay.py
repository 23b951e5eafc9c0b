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


def _draw_on(out: np.ndarray, x0: int, y0: int, x1: int, y1: int, draw) -> None:
    """Run ``draw(ImageDraw)`` on the patch ``out[y0:y1, x0:x1]`` (clipped to the frame), in
    place; a small patch costs far less than the whole frame."""
    h, w = out.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    patch = Image.fromarray(out[y0:y1, x0:x1])
    draw(ImageDraw.Draw(patch))
    out[y0:y1, x0:x1] = np.asarray(patch)


def _font(size: int):
    """Pillow's bundled font at ``size`` px (FreeType), else its small bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow < 10.1 or without FreeType
        return _FONT


class OverlayPainter:
    """Draws a video's overlay frame by frame, for people to look at.

    Each frame gets: every mask blended in its animal's colour, the ``track_id`` in a size
    readable on the video (a 30th of the frame height, at least 12 px) with a dark outline, a
    short trail of the body centroid over the last ``trail`` frames, and the frame index and
    time in the top-left corner. Colours come from :data:`PALETTE` and are given to an id when
    it first appears: the first colour that no id seen in the last ``trail`` frames has, so two
    animals on screen never share a colour while there are at most 10 of them (then colours
    repeat). The same id keeps its colour for the whole video.

    Args:
        fps: frames per second, for the time stamp.
        height: frame height in pixels (sets the text size).
        trail: frames of trail (0: none).
    """

    def __init__(self, fps: float, height: int, trail: int = 15):
        self.fps = fps
        self.trail = trail
        self._font = _font(max(12, round(height / 30)))
        self._colour: dict[int, int] = {}  # track_id -> palette index
        self._last: dict[int, int] = {}  # track_id -> last frame seen
        self._path: dict[int, list[tuple[float, float]]] = {}

    def colour(self, obj_id: int, frame_idx: int) -> np.ndarray:
        """(3,) uint8 RGB colour of ``obj_id`` (given it on first sight; see the class)."""
        oid = int(obj_id)
        if oid not in self._colour:
            recent = {self._colour[k] for k, f in self._last.items()
                      if frame_idx - f <= max(1, self.trail)}
            free = [i for i in range(len(PALETTE)) if i not in recent]
            self._colour[oid] = free[0] if free else len(self._colour) % len(PALETTE)
        self._last[oid] = frame_idx
        return PALETTE[self._colour[oid]]

    def __call__(self, frame: np.ndarray, fm: FrameMasks,
                 centroids: dict[int, tuple[float, float]] | None = None,
                 alpha: float = 0.5) -> np.ndarray:
        """Draw one frame.

        Args:
            frame: (H, W, 3) uint8 RGB; not modified.
            fm: the frame's masks, full resolution, ids = ``track_id``.
            centroids: ``track_id`` -> ``(x, y)`` pixels for the trail (``tracks.csv``'s body
                centroid); None: the mean of each mask's pixels.
            alpha: opacity of the mask colour.

        Returns:
            (H, W, 3) uint8 RGB.
        """
        out = frame.copy()
        labels = []
        for oid, m in zip(fm.obj_ids.tolist(), fm.masks):
            box = mask_box(m)
            colour = self.colour(oid, fm.frame_idx)
            if box is None:
                continue
            y0, y1, x0, x1 = box
            sub, msub = out[y0:y1, x0:x1], m[y0:y1, x0:x1]
            sub[msub] = (sub[msub] * (1 - alpha) + colour * alpha).astype(np.uint8)
            if centroids is not None and oid in centroids:
                c = centroids[oid]
            else:
                ys, xs = np.nonzero(msub)
                c = (x0 + float(xs.mean()), y0 + float(ys.mean()))
            path = self._path.setdefault(oid, [])
            path.append((float(c[0]), float(c[1])))
            del path[:-max(1, self.trail)]
            labels.append((oid, tuple(int(c) for c in colour), int(x1), int(y0)))
        for oid in [k for k, f in self._last.items() if fm.frame_idx - f > self.trail]:
            self._path.pop(oid, None)  # a trail ends with its animal
        h, w = out.shape[:2]
        if self.trail:  # drawn on the patch under each trail only (speed)
            for oid, colour, _, _ in labels:
                path = np.array(self._path[oid])
                if len(path) > 1:
                    x0, y0 = np.maximum(np.floor(path.min(0)).astype(int) - 2, 0)
                    x1, y1 = np.minimum(np.ceil(path.max(0)).astype(int) + 3, (w, h))
                    _draw_on(out, x0, y0, x1, y1, lambda d, x0=x0, y0=y0, path=path, c=colour:
                             d.line([(x - x0, y - y0) for x, y in path], fill=c, width=2))
        for oid, colour, x, y in labels:
            tw, th = self._size(str(oid))
            x = min(x + 2, w - tw)
            y = min(max(0, y - th - 2), h - th)
            _draw_on(out, x, y, x + tw, y + th, lambda d, t=str(oid), c=colour:
                     d.text((2, 0), t, fill=c, font=self._font, stroke_width=1,
                            stroke_fill=(0, 0, 0)))
        stamp = f"frame {fm.frame_idx}  {fm.frame_idx / self.fps:.2f} s"
        tw, th = self._size(stamp)
        corner = out[:min(th, h), :min(tw + 4, w)]
        corner //= 3  # a dark box behind the stamp
        _draw_on(out, 0, 0, tw + 4, th, lambda d: d.text((4, 0), stamp, fill=(255, 255, 255),
                                                         font=self._font))
        return out

    def _size(self, text: str) -> tuple[int, int]:
        """Width and height in pixels of a box that holds ``text`` with its outline."""
        left, top, right, bottom = self._font.getbbox(text)
        return right + 4, bottom + 3
