"""Prompts a person gives a SAM-family model: points with labels, a box, or a mask.

Also the command-line prompt syntax (``"FRAME:x,y,label;x,y,label"``, ``"FRAME:x0,y0,x1,y1"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rodentseg.errors import RodentsegError


@dataclass(frozen=True)
class Prompt:
    """One prompt for one object on one frame.

    Attributes:
        frame_idx: 0-based frame index.
        obj_id: the object's id (1..255; it becomes the ``track_id`` of the output).
        points: (P, 2) float32 (x, y) in frame pixels (x = column, y = row), or None.
        labels: (P,) int32, 1 = on the object, 0 = not on it (background click).
        box: (4,) float32 ``x0, y0, x1, y1`` in frame pixels, or None. Points may be added to
            a box (they refine it); a mask stands alone.
        mask: (H, W) bool at frame resolution, or None.
    """

    frame_idx: int
    obj_id: int
    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask: np.ndarray | None = None

    @classmethod
    def make(cls, frame_idx: int, obj_id: int, points=None, labels=None, box=None, mask=None,
             height: int | None = None, width: int | None = None) -> Prompt:
        """Build and check a prompt; labels default to all 1 (positive).

        Raises:
            RodentsegError: no prompt or a mask together with points/box; an id outside
                1..255; points not (P, 2), labels not 0/1 or of another length; a box with
                x1 <= x0 or y1 <= y0; coordinates outside the frame; a mask of another size
                or an empty mask.
        """
        if not 1 <= int(obj_id) <= 255:
            raise RodentsegError(f"obj_id must be between 1 and 255 (it becomes an 8-bit label), "
                                 f"got {obj_id}")
        if mask is not None and (points is not None or box is not None):
            raise RodentsegError("a mask prompt stands alone; got a mask together with "
                                 "points or a box: give one or the other")
        if mask is None and points is None and box is None:
            raise RodentsegError(f"no prompt for object {obj_id} on frame {frame_idx}: "
                                 "expected points (with labels), a box, or a mask")
        pts = lab = bx = mk = None
        if points is not None:
            pts = np.asarray(points, np.float32).reshape(-1, 2) if np.size(points) else None
            if pts is None or not np.isfinite(pts).all():
                raise RodentsegError(f"points must be a non-empty (P, 2) array of (x, y) pixels, "
                                     f"got {np.asarray(points).tolist()}")
            lab = (np.ones(len(pts), np.int32) if labels is None
                   else np.asarray(labels, np.int32).reshape(-1))
            if len(lab) != len(pts) or not np.isin(lab, (0, 1)).all():
                raise RodentsegError(f"labels must be one 1 (object) or 0 (background) per point: "
                                     f"{len(pts)} points, labels {lab.tolist()}")
        if box is not None:
            bx = np.asarray(box, np.float32).reshape(-1)
            if len(bx) != 4 or not np.isfinite(bx).all() or bx[2] <= bx[0] or bx[3] <= bx[1]:
                raise RodentsegError(f"a box is x0,y0,x1,y1 pixels with x1 > x0 and y1 > y0, "
                                     f"got {np.asarray(box).tolist()}")
        if height is not None and width is not None:
            for name, xy in (("point", pts), ("box corner", None if bx is None
                                                else bx.reshape(2, 2))):
                if xy is None:
                    continue
                bad = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
                if bad.any():
                    raise RodentsegError(
                        f"{name} {xy[bad][0].tolist()} of object {obj_id} on frame {frame_idx} "
                        f"is outside the {width}x{height} frame (x in 0..{width}, "
                        f"y in 0..{height})")
        if mask is not None:
            mk = np.asarray(mask).astype(bool)
            if height is not None and mk.shape != (height, width):
                raise RodentsegError(f"a mask prompt must be the frame size ({height}, {width}), "
                                     f"got {mk.shape}")
            if not mk.any():
                raise RodentsegError(f"the mask prompt for object {obj_id} on frame {frame_idx} is "
                                     "empty; expected at least one pixel of the object")
        return cls(int(frame_idx), int(obj_id), pts, lab, bx, mk)


def parse_points(text: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Parse ``"FRAME:x,y,label;x,y,label;FRAME:x,y,label"`` (a frame applies until the next).

    Returns:
        ``{frame_idx: (points (P, 2) float32, labels (P,) int32)}``.

    Raises:
        RodentsegError: a malformed item, with the expected form.
    """
    out: dict[int, tuple[list, list]] = {}
    frame = None
    for item in filter(None, (s.strip() for s in text.split(";"))):
        if ":" in item:
            head, item = item.split(":", 1)
            frame = _int(head, text)
        if frame is None:
            raise RodentsegError(f"--points {text!r}: start with the frame, e.g. "
                                 "'0:320,240,1;330,250,0'")
        vals = item.split(",")
        if len(vals) not in (2, 3):
            raise RodentsegError(f"--points {text!r}: expected x,y,label items (label 1 = on the "
                                 f"animal, 0 = background), got {item!r}")
        pts, labs = out.setdefault(frame, ([], []))
        pts.append([_float(v, text) for v in vals[:2]])
        labs.append(_int(vals[2], text) if len(vals) == 3 else 1)
    if not out:
        raise RodentsegError(f"--points {text!r} holds no point; expected 'FRAME:x,y,label;...'")
    return {f: (np.array(p, np.float32), np.array(lab, np.int32)) for f, (p, lab) in out.items()}


def parse_box(text: str) -> dict[int, np.ndarray]:
    """Parse ``"FRAME:x0,y0,x1,y1"`` (several ``;``-separated, one per frame) -> ``{frame: (4,)}``.

    Raises:
        RodentsegError: a malformed item, with the expected form.
    """
    out = {}
    for item in filter(None, (s.strip() for s in text.split(";"))):
        if ":" not in item or len(item.split(":", 1)[1].split(",")) != 4:
            raise RodentsegError(f"--box {text!r}: expected FRAME:x0,y0,x1,y1 (pixels), "
                                 f"got {item!r}")
        head, rest = item.split(":", 1)
        out[_int(head, text)] = np.array([_float(v, text) for v in rest.split(",")], np.float32)
    if not out:
        raise RodentsegError(f"--box {text!r} holds no box; expected 'FRAME:x0,y0,x1,y1'")
    return out


def _int(s: str, text: str) -> int:
    try:
        return int(s.strip())
    except ValueError:
        raise RodentsegError(f"{text!r}: expected an integer, got {s.strip()!r}") from None


def _float(s: str, text: str) -> float:
    try:
        return float(s.strip())
    except ValueError:
        raise RodentsegError(f"{text!r}: expected a number, got {s.strip()!r}") from None
