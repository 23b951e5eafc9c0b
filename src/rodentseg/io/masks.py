"""Instance masks on disk: 8-bit label PNGs and COCO-style RLE JSON (pycocotools).

Layout written by ``rodentseg segment`` and read back by ``track`` and ``evaluate``:
``masks/NNNNNN.png`` (pixel = ``track_id``, 0 = background) and ``masks.json`` (COCO, one
image per frame with ``id`` = frame index, one annotation per animal with an RLE
``segmentation`` and a ``track_id``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from rodentseg.errors import RodentsegError
from rodentseg.io.atomic import AtomicWriter
from rodentseg.types import FrameMasks

CATEGORY = {"id": 1, "name": "rodent", "supercategory": "animal"}


def encode_rle(masks: np.ndarray) -> list[dict]:
    """COCO RLE of each mask.

    Args:
        masks: (N, H, W) bool.

    Returns:
        N dicts ``{"size": [H, W], "counts": str}`` (compressed RLE, as in COCO JSON files).
    """
    if len(masks) == 0:
        return []
    rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for r in rles:
        r["counts"] = r["counts"].decode("ascii")
    return rles


def decode_rle(rles: list[dict]) -> np.ndarray:
    """Inverse of :func:`encode_rle`: (N, H, W) bool. Accepts ``counts`` as str or bytes."""
    if not rles:
        raise ValueError("decode_rle needs at least one RLE (the frame size comes from them)")
    fixed = [{"size": r["size"], "counts": r["counts"].encode("ascii")
              if isinstance(r["counts"], str) else r["counts"]} for r in rles]
    return mask_utils.decode(fixed).transpose(2, 0, 1).astype(bool)


def write_label_png(path: str | Path, fm: FrameMasks) -> None:
    """Write ``fm`` as one 8-bit single-channel PNG (pixel = obj_id, 0 = background)."""
    Image.fromarray(fm.to_label_image()).save(path, compress_level=1)


def frame_index_of(path: Path) -> int:
    """Frame index from a file name: the last run of digits in the stem (``img0042`` -> 42)."""
    digits = re.findall(r"\d+", path.stem)
    if not digits:
        raise RodentsegError(f"cannot read a frame index from file name {path.name!r}")
    return int(digits[-1])


def iter_label_pngs(folder: str | Path) -> Iterator[FrameMasks]:
    """Yield the frames of a folder of label PNGs, in frame-index order.

    Raises:
        RodentsegError: the folder does not exist or holds no PNG, or two files give one index.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RodentsegError(f"expected a folder of label PNGs, {folder} is not a directory")
    files = sorted(folder.glob("*.png"), key=frame_index_of)
    if not files:
        raise RodentsegError(f"no *.png label images in {folder}")
    idx = [frame_index_of(p) for p in files]
    if len(set(idx)) != len(idx):
        raise RodentsegError(f"two label PNGs in {folder} give the same frame index")
    for i, p in zip(idx, files):
        label = np.asarray(Image.open(p))
        if label.ndim != 2:
            raise RodentsegError(f"{p} is not a single-channel label image (shape {label.shape})")
        yield FrameMasks.from_label_image(i, label)


class CocoWriter(AtomicWriter):
    """Streams frames into a COCO-style RLE JSON file, in constant memory.

    Annotations go to a side file as they arrive; :meth:`close` assembles the JSON. Use as a
    context manager; the JSON appears only when the writer closes without an error.

    Args:
        path: the ``masks.json`` to write.
        width, height: frame size in pixels.
    """

    def __init__(self, path: str | Path, width: int, height: int):
        self.path = Path(path)
        self.width, self.height = width, height
        self._ann_path = self.path.with_suffix(".annotations.tmp")
        self._ann = self._ann_path.open("w")
        self._frames: list[int] = []
        self._next_id = 1

    def add(self, fm: FrameMasks) -> None:
        """Record one frame (also one with no objects, so that it counts as an empty frame)."""
        self._frames.append(fm.frame_idx)
        for oid, score, rle in zip(fm.obj_ids, fm.scores, encode_rle(fm.masks)):
            bbox = [int(v) for v in mask_utils.toBbox(rle)]  # [x, y, w, h]; zeros when empty
            ann = {"id": self._next_id, "image_id": fm.frame_idx, "category_id": 1,
                   "segmentation": rle, "area": int(mask_utils.area(rle)), "bbox": bbox,
                   "iscrowd": 0, "track_id": int(oid), "score": round(float(score), 4)}
            self._ann.write(json.dumps(ann) + "\n")
            self._next_id += 1

    def close(self) -> None:
        self._ann.close()
        tmp = self.path.with_suffix(".json.tmp")
        with tmp.open("w") as out, self._ann_path.open() as anns:
            out.write('{"info": {"description": "rodentseg instance masks"}, "images": [')
            out.write(", ".join(
                json.dumps({"id": i, "file_name": f"{i:06d}.png", "frame_idx": i,
                            "width": self.width, "height": self.height}) for i in self._frames))
            out.write('], "categories": [' + json.dumps(CATEGORY) + '], "annotations": [')
            for k, line in enumerate(anns):
                out.write(("," if k else "") + line.rstrip("\n"))
            out.write("]}\n")
        os.replace(tmp, self.path)
        self._ann_path.unlink()

    def abort(self) -> None:
        """Drop the unfinished annotations; no JSON is written."""
        self._ann.close()
        self._ann_path.unlink(missing_ok=True)


def iter_coco_frames(path: str | Path, id_key: str = "track_id") -> Iterator[FrameMasks]:
    """Yield the frames of a COCO RLE JSON, in image-id order, with empty frames included.

    The object id of each annotation is ``id_key`` if present (``track_id``, then
    ``instance_id``), else its position within the frame (1, 2, ...). Polygon segmentations
    are converted with pycocotools.

    Raises:
        RodentsegError: the file is missing, is not JSON, or lacks ``images``/``annotations``.
    """
    path = Path(path)
    try:
        coco = json.loads(path.read_text())
        images, anns = coco["images"], coco["annotations"]
    except FileNotFoundError:
        raise RodentsegError(f"COCO file {path} does not exist") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise RodentsegError(
            f"{path} is not a COCO JSON with 'images' and 'annotations' ({e})") from None
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    def frame_of(img: dict) -> int:
        if img.get("frame_idx") is not None:
            return int(img["frame_idx"])
        return frame_index_of(Path(img["file_name"])) if "file_name" in img else int(img["id"])

    for img in sorted(images, key=frame_of):
        h, w = img["height"], img["width"]
        items = by_image.get(img["id"], [])
        masks = np.zeros((len(items), h, w), bool)
        ids = []
        for k, a in enumerate(items):
            seg = a["segmentation"]
            if isinstance(seg, list):  # polygons
                seg = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            elif isinstance(seg["counts"], list):  # uncompressed RLE
                seg = mask_utils.frPyObjects(seg, h, w)
            masks[k] = decode_rle([seg])[0]
            ids.append(a.get(id_key, a.get("instance_id", k + 1)))
        yield FrameMasks(frame_of(img), np.asarray(ids, np.int64), masks)
