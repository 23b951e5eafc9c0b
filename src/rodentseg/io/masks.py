"""Instance masks on disk: label PNGs (8-bit; 16-bit when an id exceeds 255) and COCO-style RLE
JSON (pycocotools).

Layout written by ``rodentseg segment`` and read back by ``track`` and ``evaluate``:
``masks/NNNNNN.png`` (pixel = ``track_id``, 0 = background) and ``masks.json``, a COCO file
with the video keys of COCO-video datasets (mmtracking's ``CocoVID``, TAO), which
``pycocotools.coco.COCO`` loads as any COCO file:

- ``videos``: one entry, ``{"id": 1, "name", "file_name", "width", "height", "fps",
  "length"}``: the source video (or folder of images) and its frame count
  (:func:`set_coco_video`; until it is called, ``name`` and ``file_name`` are empty);
- ``images``: one per frame, ``id`` = ``frame_id`` = ``frame_idx`` = frame index (0-based),
  ``video_id`` 1, and ``file_name`` the frame's image: for a folder of images the original
  file's name in that folder; for a video ``NNNNNNNNN.png`` (9-digit frame index), the name
  ``rodentseg frames VIDEO --out DIR`` gives it under ``DIR/frames/``;
- ``annotations``: one per animal and frame, an RLE ``segmentation``, ``bbox`` ``[x, y, w, h]``,
  ``area``, ``score`` and the identity as ``track_id`` and ``instance_id`` (the COCO-video
  name).
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
VIDEO_ID = 1


def video_frame_name(frame_idx: int) -> str:
    """``file_name`` of a video frame in ``masks.json``: ``rodentseg frames``' name for it."""
    return f"{frame_idx:09d}.png"


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
    """Write ``fm`` as one single-channel PNG (pixel = obj_id, 0 = background): 8-bit, or
    16-bit for a frame with an id above 255 (``np.asarray(PIL.Image.open(path))`` reads both;
    OpenCV needs ``cv2.IMREAD_UNCHANGED``)."""
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
        RodentsegError: the folder does not exist or holds no PNG, two files give one index, or
            a file is not a readable single-channel image (damaged, truncated).
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
        try:
            with Image.open(p) as im:
                label = np.asarray(im)
        except (OSError, SyntaxError, ValueError) as e:  # PIL: truncated, broken chunks, ...
            raise RodentsegError(f"{p} is not a readable label PNG ({e}); expected a "
                                 "single-channel PNG, pixel = object id") from None
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
                   "iscrowd": 0, "track_id": int(oid), "instance_id": int(oid),
                   "score": round(float(score), 4)}
            self._ann.write(json.dumps(ann) + "\n")
            self._next_id += 1

    def close(self) -> None:
        self._ann.close()
        tmp = self.path.with_suffix(".json.tmp")
        with tmp.open("w") as out, self._ann_path.open() as anns:
            video = {"id": VIDEO_ID, "name": "", "file_name": "", "width": self.width,
                     "height": self.height}
            out.write('{"info": {"description": "rodentseg instance masks"}, "videos": [')
            out.write(json.dumps(video) + '], "images": [')
            out.write(", ".join(
                json.dumps({"id": i, "video_id": VIDEO_ID, "frame_id": i, "frame_idx": i,
                            "file_name": video_frame_name(i), "width": self.width,
                            "height": self.height}) for i in self._frames))
            out.write(_CATEGORIES + json.dumps(CATEGORY) + '], "annotations": [')
            for k, line in enumerate(anns):
                out.write(("," if k else "") + line.rstrip("\n"))
            out.write("]}\n")
        os.replace(tmp, self.path)
        self._ann_path.unlink()

    def abort(self) -> None:
        """Drop the unfinished annotations; no JSON is written."""
        self._ann.close()
        self._ann_path.unlink(missing_ok=True)


_CATEGORIES = '], "categories": ['  # where the frames end and the annotations begin


def set_coco_video(path: str | Path, name: str, file_name: str, fps: float, length: int,
                   frame_names: list[str] | None = None) -> None:
    """Fill in the ``videos`` entry of a :class:`CocoWriter` file and its frames' ``file_name``.

    Only the part before the annotations is read and rewritten; the annotations are copied
    through in chunks, so memory grows with the number of frames, not of masks. The file is
    replaced in one step.

    Args:
        path: a ``masks.json`` written by :class:`CocoWriter`.
        name: the video's name (its stem, or the folder's name).
        file_name: the video file or folder of images, as it should be found again.
        fps: frames per second.
        length: frames in the video.
        frame_names: for a folder of images, the image file names in frame order (frame ``i``
            is ``frame_names[i]``); None for a video (frames keep :func:`video_frame_name`).

    Raises:
        ValueError: the file is not in :class:`CocoWriter`'s layout, or a frame index has no
            name in ``frame_names``.
    """
    path = Path(path)
    tmp = path.with_suffix(".json.tmp")
    with path.open() as src:
        head = ""
        while (cut := head.find(_CATEGORIES)) < 0:
            chunk = src.read(1 << 20)
            if not chunk:
                raise ValueError(f"{path} is not a masks.json written by rodentseg: no "
                                 "categories after the images")
            head += chunk
        try:
            coco = json.loads(head[:cut] + "]}")
            video, images = coco["videos"][0], coco["images"]
        except (json.JSONDecodeError, KeyError, IndexError) as e:
            raise ValueError(f"{path} is not a masks.json written by rodentseg ({e})") from None
        video.update(name=name, file_name=str(file_name), fps=fps, length=int(length))
        for img in images:
            if frame_names is not None:
                if not 0 <= img["frame_id"] < len(frame_names):
                    raise ValueError(f"frame {img['frame_id']} of {path} is not among the "
                                     f"{len(frame_names)} images of {file_name}")
                img["file_name"] = frame_names[img["frame_id"]]
        try:
            with tmp.open("w") as out:
                out.write(json.dumps({k: v for k, v in coco.items() if k != "images"})[:-1])
                out.write(', "images": [' + ", ".join(json.dumps(i) for i in images))
                out.write(head[cut:])
                while chunk := src.read(1 << 20):
                    out.write(chunk)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def iter_coco_frames(path: str | Path, id_key: str = "track_id") -> Iterator[FrameMasks]:
    """Yield the frames of a COCO RLE JSON, in image-id order, with empty frames included.

    The object id of each annotation is ``id_key`` if present (``track_id``, then
    ``instance_id``), else its position within the frame (1, 2, ...). Polygon segmentations
    are converted with pycocotools.

    Raises:
        RodentsegError: the file is missing, is not JSON, lacks ``images``/``annotations``, an
            image lacks ``height``/``width``, or an annotation lacks ``segmentation`` or holds a
            bad polygon or RLE (the message names the annotation and image ids).
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
        if not isinstance(a, dict) or "image_id" not in a:
            raise RodentsegError(f"{path}: an annotation has no 'image_id' (got {str(a)[:200]});"
                                 " expected one per annotation")
        by_image.setdefault(a["image_id"], []).append(a)
    def frame_of(img: dict) -> int:
        if img.get("frame_idx") is not None:
            return int(img["frame_idx"])
        return frame_index_of(Path(img["file_name"])) if "file_name" in img else int(img["id"])

    try:
        images = sorted(images, key=frame_of)
    except (KeyError, TypeError, ValueError) as e:
        raise RodentsegError(f"{path}: an image has no usable frame index ({e!r}); expected "
                             "'frame_idx', a file_name with digits, or an integer 'id'") from None
    for img in images:
        try:
            h, w = int(img["height"]), int(img["width"])
        except (KeyError, TypeError, ValueError) as e:
            raise RodentsegError(f"{path}: image {img.get('id')} has no usable {e!r} (got "
                                 f"{img}); expected integer 'height' and 'width'") from None
        items = by_image.get(img["id"], [])
        masks = np.zeros((len(items), h, w), bool)
        ids = []
        for k, a in enumerate(items):
            try:
                masks[k] = _decode_segmentation(a["segmentation"], h, w)
            except Exception as e:  # pycocotools raises bare Exception for some bad input
                what = ("no 'segmentation'" if "segmentation" not in a
                        else f"a bad segmentation ({e!r})")
                raise RodentsegError(
                    f"{path}: annotation {a.get('id')} of image {img['id']} has {what}; expected a"
                    f" polygon list [[x0, y0, x1, y1, x2, y2, ...]] or an RLE {{'size': [{h}, {w}],"
                    " 'counts': ...}") from None
            ids.append(a.get(id_key, a.get("instance_id", k + 1)))
        yield FrameMasks(frame_of(img), np.asarray(ids, np.int64), masks)


def _decode_segmentation(seg, h: int, w: int) -> np.ndarray:
    """(H, W) bool mask of a COCO ``segmentation`` (polygons, RLE or uncompressed RLE).

    Raises:
        ValueError: a polygon with fewer than 3 points or an odd number of coordinates, or an
            RLE of another size than the image; what pycocotools raises for others.
    """
    if isinstance(seg, list):  # polygons
        if not seg or any(not isinstance(p, list) or len(p) < 6 or len(p) % 2 for p in seg):
            raise ValueError("each polygon needs at least 3 (x, y) points")
        seg = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    elif isinstance(seg["counts"], list):  # uncompressed RLE
        seg = mask_utils.frPyObjects(seg, h, w)
    if list(seg["size"]) != [h, w]:
        raise ValueError(f"RLE size {list(seg['size'])} differs from the image's [{h}, {w}]")
    return decode_rle([seg])[0]
