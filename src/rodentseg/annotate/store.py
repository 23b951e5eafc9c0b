"""The masks a session has produced so far, one small file per frame on disk.

Propagation visits frames out of order (backward, forward, again after a correction) and the
result folder must hold each frame once, in order; keeping every frame's masks in memory would
grow with the video. :class:`MaskStore` keeps them in a temporary folder instead (bit-packed,
zlib-compressed ``.npz``, about 1-3 kB per mouse mask at 640x480) and merges per object.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rodentseg.types import FrameMasks


@dataclass
class ObjectMask:
    """One object's result on one frame.

    Attributes:
        mask: (H, W) bool at frame resolution.
        score: object presence probability in [0, 1] (sigmoid of the model's object score;
            1.0 for a mask the user gave).
        stability: :func:`rodentseg.annotate.preprocess.stability_score` of the mask logits
            (1.0 for a user mask).
        prompted: True on frames where the user prompted this object.
        fb_iou: IoU between this mask and a propagation of the same object run the opposite
            way (:meth:`VideoSession.check_consistency`); NaN when not checked.
    """

    mask: np.ndarray
    score: float = 1.0
    stability: float = 1.0
    prompted: bool = False
    fb_iou: float = float("nan")


class MaskStore:
    """Per-frame, per-object masks in a temporary folder (removed by :meth:`close`).

    Args:
        height, width: frame size in pixels.
        root: parent folder for the temporary folder (default: the system temp folder).
    """

    def __init__(self, height: int, width: int, root: str | Path | None = None):
        self.height, self.width = height, width
        self._tmp = tempfile.TemporaryDirectory(prefix="rodentseg-annotate-", dir=root)
        self.folder = Path(self._tmp.name)
        self._frames: set[int] = set()

    def _path(self, frame_idx: int) -> Path:
        return self.folder / f"{frame_idx:07d}.npz"

    def __contains__(self, frame_idx: int) -> bool:
        return frame_idx in self._frames

    @property
    def frames(self) -> list[int]:
        """Frame indices that hold at least one stored object, ascending."""
        return sorted(self._frames)

    def get(self, frame_idx: int) -> dict[int, ObjectMask]:
        """``{obj_id: ObjectMask}`` of a frame (empty when nothing is stored)."""
        if frame_idx not in self._frames:
            return {}
        with np.load(self._path(frame_idx)) as z:
            n = len(z["obj_ids"])
            bits = np.unpackbits(z["masks"], axis=1, count=self.height * self.width)
            masks = bits.reshape(n, self.height, self.width).astype(bool)
            return {int(o): ObjectMask(masks[i], float(z["scores"][i]),
                                       float(z["stability"][i]), bool(z["prompted"][i]),
                                       float(z["fb_iou"][i]))
                    for i, o in enumerate(z["obj_ids"])}

    def update(self, frame_idx: int,
               objects: dict[int, ObjectMask | None]) -> dict[int, ObjectMask]:
        """Replace the given objects on a frame (``None`` removes one); returns the merged frame."""
        merged = self.get(frame_idx)
        for oid, om in objects.items():
            if om is None:
                merged.pop(oid, None)
            else:
                merged[oid] = om
        self._write(frame_idx, merged)
        return merged

    def _write(self, frame_idx: int, objects: dict[int, ObjectMask]) -> None:
        if not objects:
            self._path(frame_idx).unlink(missing_ok=True)
            self._frames.discard(frame_idx)
            return
        ids = sorted(objects)
        masks = np.stack([objects[o].mask.reshape(-1) for o in ids])
        np.savez_compressed(
            self._path(frame_idx), obj_ids=np.array(ids, np.int64),
            masks=np.packbits(masks, axis=1),
            scores=np.array([objects[o].score for o in ids], np.float32),
            stability=np.array([objects[o].stability for o in ids], np.float32),
            prompted=np.array([objects[o].prompted for o in ids], bool),
            fb_iou=np.array([objects[o].fb_iou for o in ids], np.float32))
        self._frames.add(frame_idx)

    def frame_masks(self, frame_idx: int) -> FrameMasks:
        """The frame as :class:`FrameMasks` (ids ascending; empty objects left out)."""
        objs = {o: m for o, m in self.get(frame_idx).items() if m.mask.any()}
        ids = sorted(objs)
        masks = (np.stack([objs[o].mask for o in ids]) if ids
                 else np.zeros((0, self.height, self.width), bool))
        return FrameMasks(frame_idx, np.array(ids, np.int64), masks,
                          np.array([objs[o].score for o in ids], np.float32))

    def close(self) -> None:
        """Delete the folder."""
        self._tmp.cleanup()
        self._frames.clear()
