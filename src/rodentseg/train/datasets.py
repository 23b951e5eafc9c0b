"""Labelled frames for training, from five layouts, as one lazy sequence of items.

Every dataset is a :class:`SegDataset`: ``len(ds)`` and ``ds[i]`` ->
``{"image": (H, W, 3) uint8 RGB, "mask": (H, W) int32 instance ids (0 = background),
"name": str, "video": str, "setup": str}`` (the contract of :mod:`rodentseg.train.recipe`).
``video`` names the sequence a frame comes from (split by video); a single-image dataset uses
the file stem. ``setup`` names the camera setup (:func:`setup_name`: ``data/labels/<setup>/...``
or the dataset folder's name; split by setup). Items of one video are in time order. A file is
read per ``ds[i]``; headers (sizes, band layouts) are checked when the dataset is built, so a
mismatch fails before training starts. :func:`load_datasets` joins several datasets (and
folders of ``labels`` parts) into one.

Layouts found by :func:`load_dataset` (``format="auto"``), in this order of preference:

- ``frames``: ``ROOT/frames/*.png|jpg`` + ``ROOT/masks/*.png`` of the same stem (label PNG,
  pixel = track_id; ``openfield-m4s1``). Stems that differ only in digits (``000000042.png``
  written by ``rodentseg frames`` vs ``000042.png`` written by ``segment``) pair by frame index.
- ``result``: a ``rodentseg segment/track`` result folder, ``masks/NNNNNN.png`` + ``run.json``
  whose ``"video"`` names the source video; frames are decoded from it on demand.
- ``labels``: ``ROOT/masks/*.png`` + ``ROOT/sources.csv`` (``frame,source,frame_idx``, as
  ``rodentseg autolabel`` writes it) without the frames: each mask's frame is decoded from its
  source video or image (a relative ``source`` is found under ``data_root``); video = the
  source's stem. This is how ``data/labels/<set>/`` keeps masks made for ``../shared/data``.
- ``davis``: ``ROOT/JPEGImages/<res>/<seq>/*.jpg`` + ``ROOT/Annotations/<res>/<seq>/*.png``
  (palette PNG, index = object id); video = ``seq``.
- ``coco``: a COCO JSON with RLE or polygon masks (``masks.json`` as :mod:`rodentseg.io.masks`
  writes it); instance id = ``track_id``, else ``instance_id``, else 1, 2, ... in annotation
  order; later annotations are drawn over earlier ones where they overlap.
- ``geotiff``: ``ROOT/images/*.tif`` (8-bit, bands 1-3 = RGB) + ``ROOT/masks/*.tif`` (one band,
  > 0 = foreground -> id 1) through ``rasterio`` (the ``[geo]`` extra).
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from rodentseg.errors import RodentsegError
from rodentseg.io.masks import decode_rle, frame_index_of
from rodentseg.io.video import image_files
from rodentseg.train.data import temporal_split
from rodentseg.train.frames_cli import VideoFrames

FORMATS = ("frames", "result", "labels", "davis", "coco", "geotiff")
FRAME_EXTS = (".png", ".jpg", ".jpeg")


# -- sources: small picklable records; read() -> array, size() -> (H, W) from the header only


def _read_error(path: Path, e: Exception) -> RodentsegError:
    return RodentsegError(f"{path} is not a readable image ({e}); expected a PNG/JPEG/TIFF file")


@dataclass(frozen=True)
class ImageFile:
    """A PNG/JPEG frame; ``read()`` -> (H, W, 3) uint8 RGB (grey expanded to 3 channels)."""

    path: Path

    def size(self) -> tuple[int, int]:
        try:
            with Image.open(self.path) as im:
                return im.height, im.width
        except OSError as e:
            raise _read_error(self.path, e) from None

    def read(self) -> np.ndarray:
        try:
            with Image.open(self.path) as im:
                return np.asarray(im.convert("RGB"))
        except OSError as e:
            raise _read_error(self.path, e) from None


@dataclass(frozen=True)
class LabelFile(ImageFile):
    """A label PNG (mode L, P, I or I;16; palette index = id); ``read()`` -> (H, W) int32."""

    def read(self) -> np.ndarray:
        try:
            with Image.open(self.path) as im:
                label = np.asarray(im)
        except OSError as e:
            raise _read_error(self.path, e) from None
        if label.ndim != 2:
            raise RodentsegError(f"{self.path} is not a single-channel label image (shape "
                                 f"{label.shape}); expected pixel = instance id, 0 = background")
        return label.astype(np.int32)


@dataclass(frozen=True)
class VideoFrame:
    """Frame ``idx`` of a video, decoded on demand; ``read()`` -> (H, W, 3) uint8 RGB."""

    frames: VideoFrames
    idx: int

    def size(self) -> tuple[int, int]:
        return self.frames.height, self.frames.width

    def read(self) -> np.ndarray:
        return self.frames[self.idx]


@dataclass(frozen=True)
class CocoMask:
    """The annotations of one COCO image; ``read()`` -> (H, W) int32, later drawn on top."""

    hw: tuple[int, int]
    segmentations: tuple
    ids: tuple

    def size(self) -> tuple[int, int]:
        return self.hw

    def read(self) -> np.ndarray:
        from pycocotools import mask as mask_utils

        h, w = self.hw
        label = np.zeros((h, w), np.int32)
        for seg, oid in zip(self.segmentations, self.ids):
            if isinstance(seg, list):  # polygons
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
            elif isinstance(seg.get("counts"), list):  # uncompressed RLE
                rle = mask_utils.frPyObjects(seg, h, w)
            else:
                rle = seg
            label[decode_rle([rle])[0]] = oid
        return label


def _rasterio():
    try:
        import rasterio
    except ImportError:
        raise RodentsegError('GeoTIFF datasets need rasterio, which is not installed; install it '
                             'with pip install "rodentseg[geo]"') from None
    return rasterio


def _open_tif(path: Path):
    rasterio = _rasterio()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(path)
    except rasterio.errors.RasterioIOError as e:
        raise RodentsegError(f"{path} is not a readable GeoTIFF ({e})") from None


@dataclass(frozen=True)
class GeoImage(ImageFile):
    """An 8-bit RGB GeoTIFF tile (bands 1-3); ``read()`` -> (H, W, 3) uint8."""

    def size(self) -> tuple[int, int]:
        with _open_tif(self.path) as src:
            if src.count < 3 or any(d != "uint8" for d in src.dtypes[:3]):
                raise RodentsegError(
                    f"{self.path} has {src.count} band(s) of {sorted(set(src.dtypes))}; expected "
                    "8-bit RGB (at least 3 uint8 bands; convert e.g. with gdal_translate -ot Byte "
                    "-scale)")
            return src.height, src.width

    def read(self) -> np.ndarray:
        with _open_tif(self.path) as src:
            try:
                return np.ascontiguousarray(src.read([1, 2, 3]).transpose(1, 2, 0))
            except _rasterio().errors.RasterioIOError as e:
                raise RodentsegError(f"{self.path}: reading the bands failed ({e})") from None


@dataclass(frozen=True)
class GeoMask(ImageFile):
    """A one-band GeoTIFF mask; ``read()`` -> (H, W) int32, 1 where the band is > 0."""

    def size(self) -> tuple[int, int]:
        with _open_tif(self.path) as src:
            if src.count != 1:
                raise RodentsegError(f"{self.path} has {src.count} bands; expected a one-band "
                                     "mask (> 0 = foreground)")
            return src.height, src.width

    def read(self) -> np.ndarray:
        with _open_tif(self.path) as src:
            return (src.read(1) > 0).astype(np.int32)


@dataclass(frozen=True)
class Sample:
    """Where one item's pixels come from: ``image``/``mask`` have ``read()`` and ``size()``;
    ``setup`` names the camera setup (arena, view, lighting) the frame was filmed in
    (:func:`setup_name`)."""

    name: str
    video: str
    image: object
    mask: object
    setup: str = ""


class SegDataset(Sequence):
    """Labelled frames read lazily, one file (or one decoded video frame) per item.

    Args:
        samples: the items in order (each video's frames in time order).
        cache: keep every item in memory after its first read (RAM = N x H x W x 7 bytes;
            per process, so each DataLoader worker holds its own copy).
        check: compare each image's size with its mask's from the headers (done once).

    Raises:
        RodentsegError: no samples, or an image and its mask differ in size.
    """

    def __init__(self, samples: Sequence[Sample], cache: bool = False, check: bool = True):
        self.samples = list(samples)
        if not self.samples:
            raise RodentsegError("expected at least one labelled frame, the dataset is empty")
        self.cache = cache
        self._cache: dict[int, dict] = {}
        if check:
            for s in self.samples:
                hi, hm = s.image.size(), s.mask.size()
                if hi != hm:
                    raise RodentsegError(f"{s.name}: image is {hi[1]}x{hi[0]} but its mask is "
                                         f"{hm[1]}x{hm[0]} (W x H); expected equal sizes")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        """Item ``i``: image (H, W, 3) uint8 RGB, mask (H, W) int32, name, video, setup.

        Raises:
            IndexError: ``i`` out of range. RodentsegError: a file cannot be read or decoded.
        """
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} of a dataset of {len(self)}")
        i %= len(self)
        item = self._cache.get(i)
        if item is None:
            s = self.samples[i]
            image, mask = s.image.read(), s.mask.read()
            if image.shape[:2] != mask.shape:
                raise RodentsegError(f"{s.name}: image {image.shape[:2]} and mask {mask.shape} "
                                     "differ in size (H, W); expected equal sizes")
            item = {"image": image, "mask": mask, "name": s.name, "video": s.video,
                    "setup": s.setup}
            if self.cache:
                self._cache[i] = item
        return {**item, "image": item["image"].copy(), "mask": item["mask"].copy()}

    @property
    def names(self) -> list[str]:
        """The name of each item (file stem; ``seq/stem`` for DAVIS)."""
        return [s.name for s in self.samples]

    @property
    def videos(self) -> list[str]:
        """The video of each item (not unique)."""
        return [s.video for s in self.samples]

    @property
    def setups(self) -> list[str]:
        """The setup of each item (not unique; :func:`setup_name`)."""
        return [s.setup for s in self.samples]

    def subset(self, indices: Sequence[int]) -> SegDataset:
        """The items at ``indices``, in that order (sizes are not re-checked)."""
        return SegDataset([self.samples[i] for i in indices], self.cache, check=False)


def _time_key(p: Path) -> tuple:
    try:
        return (frame_index_of(p), p.name)
    except RodentsegError:
        return (-1, p.name)


def _need_dir(d: Path, what: str) -> None:
    if not d.is_dir():
        raise RodentsegError(f"expected a folder {d} with {what}; it does not exist")


def _pair(images: list[Path], masks: list[Path], where: Path) -> list[tuple[Path, Path]]:
    """Pair images with masks by stem, or by frame index when stems differ only in digits."""
    by_stem = {m.stem: m for m in masks}
    if all(p.stem in by_stem for p in images):
        return [(p, by_stem[p.stem]) for p in images]
    if all(p.stem.isdigit() for p in images + masks):
        by_idx = {int(m.stem): m for m in masks}
        missing = [p.name for p in images if int(p.stem) not in by_idx]
        if not missing:
            return [(p, by_idx[int(p.stem)]) for p in images]
    else:
        missing = [p.name for p in images if p.stem not in by_stem]
    raise RodentsegError(f"{len(missing)} of {len(images)} images have no mask of the same name "
                         f"in {where}, e.g. {missing[:3]}; expected one mask per image")


def _frames_layout(root: Path) -> list[Sample]:
    fdir, mdir = root / "frames", root / "masks"
    _need_dir(fdir, "frames (*.png, *.jpg)")
    _need_dir(mdir, "label PNG masks")
    images = sorted((p for p in fdir.iterdir() if p.suffix.lower() in FRAME_EXTS), key=_time_key)
    if not images:
        raise RodentsegError(f"no frames (*.png, *.jpg) in {fdir}; expected at least one")
    pairs = _pair(images, sorted(mdir.glob("*.png")), mdir)
    return [Sample(p.stem, root.name, ImageFile(p), LabelFile(m)) for p, m in pairs]


def _run_video(run_json: Path) -> Path | None:
    """The source video named by a rodentseg ``run.json``, or None (no file or no entry)."""
    if not run_json.is_file():
        return None
    try:
        video = json.loads(run_json.read_text()).get("video")
    except (OSError, json.JSONDecodeError, AttributeError) as e:
        raise RodentsegError(f"{run_json} is not a readable rodentseg run.json ({e}); pass "
                             "video= the source video") from None
    return Path(video) if video else None


def _result_layout(root: Path, video: Path | None) -> list[Sample]:
    mdir = root / "masks"
    _need_dir(mdir, "label PNG masks (masks/NNNNNN.png)")
    video = video or _run_video(root / "run.json")
    if video is None:
        raise RodentsegError(f"{root / 'run.json'} names no source video ('video' key); "
                             "pass video= the source video")
    if not video.exists():
        raise RodentsegError(f"the source video {video} of {root} does not exist; pass video= "
                             "its new path")
    frames = VideoFrames(video)
    masks = sorted(mdir.glob("*.png"), key=frame_index_of)
    if not masks:
        raise RodentsegError(f"no *.png masks in {mdir}; expected masks/NNNNNN.png")
    bad = [m.name for m in masks if frame_index_of(m) >= len(frames)]
    if bad:
        raise RodentsegError(f"masks {bad[:3]} name frames beyond the {len(frames)} frames of "
                             f"{video}; expected frame indices 0..{len(frames) - 1}")
    return [Sample(m.stem, video.stem, VideoFrame(frames, frame_index_of(m)), LabelFile(m))
            for m in masks]


def _labels_layout(root: Path, data_root: Path | None) -> list[Sample]:
    mdir, table = root / "masks", root / "sources.csv"
    _need_dir(mdir, "label PNG masks")
    try:
        with table.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as e:
        raise RodentsegError(f"{table} is not readable ({e}); expected frame,source,frame_idx "
                             "rows") from None
    if not rows or not {"frame", "source", "frame_idx"} <= set(rows[0]):
        raise RodentsegError(f"{table}: expected a header frame,source,frame_idx and one row "
                             "per frame")
    base = Path(data_root) if data_root is not None else root
    opened: dict[Path, VideoFrames] = {}
    samples = []
    for r in rows:
        mask = mdir / f"{Path(r['frame']).stem}.png"
        if not mask.is_file():  # a frame dropped at review: its mask was deleted
            continue
        src = Path(r["source"])
        src = src if src.is_absolute() else base / src
        if src not in opened:
            if not src.exists():
                raise RodentsegError(f"the source {src} of {root.name}/{r['frame']} does not "
                                     "exist; pass data_root= the folder the sources are "
                                     "relative to (e.g. ../shared/data)")
            opened[src] = VideoFrames(src)
        frames = opened[src]
        idx = int(r["frame_idx"])
        if not 0 <= idx < len(frames):
            raise RodentsegError(f"{table}: {r['frame']} is frame {idx}, outside the "
                                 f"{len(frames)} frames of {src}")
        samples.append(Sample(Path(r["frame"]).stem, src.stem, VideoFrame(frames, idx),
                              LabelFile(mask)))
    if not samples:
        raise RodentsegError(f"none of the frames of {table} has a mask in {mdir}")
    samples.sort(key=lambda s: (s.video, s.image.idx))
    return samples


def _davis_layout(root: Path, resolution: str | None,
                  sequences: Sequence[str] | None) -> list[Sample]:
    jroot, aroot = root / "JPEGImages", root / "Annotations"
    _need_dir(jroot, "DAVIS JPEGImages/<resolution>/<sequence>/")
    _need_dir(aroot, "DAVIS Annotations/<resolution>/<sequence>/")
    found = sorted(d.name for d in jroot.iterdir() if d.is_dir())
    if resolution is None:
        resolution = "480p" if "480p" in found else (found[0] if len(found) == 1 else None)
    if resolution not in found:
        raise RodentsegError(f"DAVIS resolution {resolution!r} not in {jroot}; found {found} "
                             "(pass resolution=)")
    seqs = sorted(d.name for d in (jroot / resolution).iterdir() if d.is_dir())
    if sequences is not None:
        unknown = sorted(set(sequences) - set(seqs))
        if unknown:
            raise RodentsegError(f"DAVIS sequences {unknown} not in {jroot / resolution}")
        seqs = [s for s in seqs if s in set(sequences)]
    samples = []
    for seq in seqs:
        images = sorted(p for p in (jroot / resolution / seq).iterdir()
                        if p.suffix.lower() in FRAME_EXTS)
        adir = aroot / resolution / seq
        _need_dir(adir, f"the annotations of sequence {seq}")
        pairs = _pair(images, sorted(adir.glob("*.png")), adir)
        samples += [Sample(f"{seq}/{p.stem}", seq, ImageFile(p), LabelFile(m)) for p, m in pairs]
    if not samples:
        raise RodentsegError(f"no frames in {jroot / resolution}; expected <sequence>/*.jpg")
    return samples


def _resolve(file_name: str, folder: Path, by_idx: dict[int, Path]) -> Path:
    p = folder / file_name
    if p.is_file():
        return p
    try:
        return by_idx[frame_index_of(Path(file_name))]
    except (RodentsegError, KeyError):
        raise RodentsegError(f"image {file_name!r} of the COCO file is not in {folder} (also "
                             "looked for the same frame index); pass images= the folder") from None


def _coco_layout(path: Path, images: Path | None, video: Path | None) -> list[Sample]:
    try:
        coco = json.loads(path.read_text())
        imgs, anns = coco["images"], coco["annotations"]
    except FileNotFoundError:
        raise RodentsegError(f"COCO file {path} does not exist") from None
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise RodentsegError(f"{path} is not a COCO JSON with 'images' and 'annotations' "
                             f"({e})") from None
    if not imgs:
        raise RodentsegError(f"{path} lists no images; expected at least one")
    if images is None and video is None:
        video = _run_video(path.parent / "run.json")
        if video is None:
            images = next((d for d in (path.parent / "frames", path.parent / "images")
                           if d.is_dir()), path.parent)
    frames = VideoFrames(video) if video is not None else None
    by_idx = {}
    if images is not None:
        _need_dir(Path(images), "the images of the COCO file")
        by_idx = {_time_key(p)[0]: p for p in image_files(Path(images))}
        by_idx.pop(-1, None)
    by_image: dict = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    # COCO-video files (rodentseg's masks.json among them) name their videos; an empty name
    # (a masks.json whose source was never set) falls back to the folder's name
    video_names = {v.get("id"): v.get("name") for v in coco.get("videos") or []
                   if isinstance(v, dict)}

    def frame_of(img: dict) -> int:
        if img.get("frame_idx") is not None:
            return int(img["frame_idx"])
        return _time_key(Path(img["file_name"]))[0] if "file_name" in img else int(img["id"])

    samples = []
    for img in sorted(imgs, key=frame_of):
        items = by_image.get(img["id"], [])
        ids = [int(a.get("track_id", a.get("instance_id", k + 1))) for k, a in enumerate(items)]
        mask = CocoMask((int(img["height"]), int(img["width"])),
                        tuple(a["segmentation"] for a in items), tuple(ids))
        fname = str(img.get("file_name", f"{frame_of(img):06d}.png"))
        if frames is not None:
            if not 0 <= frame_of(img) < len(frames):
                raise RodentsegError(f"{path}: image {fname} is frame {frame_of(img)}, outside "
                                     f"the {len(frames)} frames of {video}")
            source, vid = VideoFrame(frames, frame_of(img)), Path(video).stem
        else:
            source = ImageFile(_resolve(fname, Path(images), by_idx))
            vid = img.get("video", Path(fname).parent.name or path.parent.name)
            if img.get("video_id") in video_names:
                vid = video_names[img["video_id"]] or vid
            elif "video_id" in img:
                vid = img["video_id"]
            vid = str(vid)
        samples.append(Sample(str(Path(fname).with_suffix("")), vid, source, mask))
    return samples


def _geotiff_layout(root: Path) -> list[Sample]:
    idir, mdir = root / "images", root / "masks"
    _need_dir(idir, "GeoTIFF tiles (*.tif)")
    _need_dir(mdir, "GeoTIFF masks (*.tif)")
    tifs = sorted(p for p in idir.iterdir() if p.suffix.lower() in (".tif", ".tiff"))
    if not tifs:
        raise RodentsegError(f"no *.tif tiles in {idir}; expected 8-bit RGB GeoTIFFs")
    masks = [p for p in mdir.iterdir() if p.suffix.lower() in (".tif", ".tiff")]
    pairs = _pair(tifs, masks, mdir)
    return [Sample(p.stem, p.stem, GeoImage(p), GeoMask(m)) for p, m in pairs]


def detect_format(path: str | Path) -> str:
    """The layout of ``path`` (one of :data:`FORMATS`), by the files it holds.

    Raises:
        RodentsegError: ``path`` does not exist or matches no layout (the message lists them).
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return "coco"
    if not path.is_dir():
        raise RodentsegError(f"dataset {path} does not exist; expected a folder or a COCO .json")
    has = {d for d in ("frames", "masks", "images", "JPEGImages", "Annotations")
           if (path / d).is_dir()}
    if {"JPEGImages", "Annotations"} <= has:
        return "davis"
    if {"images", "masks"} <= has:
        return "geotiff"
    if {"frames", "masks"} <= has:
        return "frames"
    if "masks" in has and (path / "sources.csv").is_file():
        return "labels"
    if "masks" in has and (path / "run.json").is_file():
        return "result"
    if (path / "masks.json").is_file():
        return "coco"
    raise RodentsegError(
        f"{path} matches no dataset layout; expected frames/ + masks/, masks/ + sources.csv "
        "(rodentseg autolabel), masks/ + run.json (a rodentseg result), JPEGImages/ + "
        "Annotations/ (DAVIS), images/ + masks/ (GeoTIFF) or a "
        f"COCO .json; found {sorted(p.name for p in path.iterdir())[:8]}")


def load_dataset(path: str | Path, format: str = "auto", *, images: str | Path | None = None,
                 video: str | Path | None = None, resolution: str | None = None,
                 sequences: Sequence[str] | None = None, data_root: str | Path | None = None,
                 cache: bool = False) -> SegDataset:
    """Labelled frames from a folder or COCO file (layouts in the module docstring).

    Args:
        path: dataset folder, or a COCO ``.json`` (a folder holding ``masks.json`` also works).
        format: ``auto`` (:func:`detect_format`) or one of :data:`FORMATS`.
        images: ``coco``: folder of the images named by ``file_name`` (default: ``frames/`` or
            ``images/`` next to the JSON, or the source video of a ``run.json`` next to it).
        video: ``coco``/``result``: read frames from this video (or folder of images) by
            frame index instead (default for ``result``: the ``run.json`` ``"video"``).
        resolution: ``davis``: the ``JPEGImages`` subfolder (default ``480p`` or the only one).
        sequences: ``davis``: keep only these sequences (e.g. ``ImageSets/2017/train.txt``).
        data_root: ``labels``: the folder relative sources are found in (default: the dataset
            folder itself).
        cache: keep items in memory after the first read (see :class:`SegDataset`).

    Raises:
        RodentsegError: missing folder or file, no images, an image without a mask, sizes
            that differ, an unreadable header, a GeoTIFF that is not 8-bit RGB, rasterio
            missing for GeoTIFF (install ``pip install "rodentseg[geo]"``), unknown format.
    """
    path = Path(path)
    fmt = detect_format(path) if format == "auto" else format
    if fmt not in FORMATS:
        raise RodentsegError(f"unknown dataset format {format!r}; expected auto or one of "
                             f"{', '.join(FORMATS)}")
    video = Path(video) if video is not None else None
    if fmt == "frames":
        samples = _frames_layout(path)
    elif fmt == "result":
        samples = _result_layout(path, video)
    elif fmt == "labels":
        samples = _labels_layout(path, Path(data_root) if data_root is not None else None)
    elif fmt == "davis":
        samples = _davis_layout(path, resolution, sequences)
    elif fmt == "coco":
        json_path = path / "masks.json" if path.is_dir() else path
        samples = _coco_layout(json_path, Path(images) if images else None, video)
    else:
        samples = _geotiff_layout(path)
    setup = setup_name(path)
    return SegDataset([replace(s, setup=setup) for s in samples], cache=cache)


def setup_name(path: str | Path) -> str:
    """The setup a dataset belongs to: the folder after the last ``labels`` in its path
    (``data/labels/<setup>/<part>`` -> ``<setup>``, as ``rodentseg autolabel`` output is kept),
    else the dataset folder's own name (``../shared/data/openfield-m4s1`` ->
    ``openfield-m4s1``; a COCO file: its folder's name)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        p = p.parent
    parts = p.parts
    if "labels" in parts[:-1]:
        return parts[len(parts) - parts[::-1].index("labels")]
    return p.resolve().name if p.name in ("", ".", "..") else p.name


def dataset_parts(path: str | Path) -> list[Path]:
    """``[path]`` when ``path`` is a dataset (:func:`detect_format`); for a folder of
    ``labels`` parts (``data/labels/sleap-homecage/`` holding ``minimal_top/``,
    ``minimal_side/``, ... each with ``masks/`` + ``sources.csv``, at any depth), the parts in
    name order.

    Raises:
        RodentsegError: ``path`` is neither (the message lists the layouts).
    """
    path = Path(path)
    try:
        detect_format(path)
        return [path]
    except RodentsegError as e:
        if not path.is_dir():
            raise
        parts = sorted(t.parent for t in path.rglob("sources.csv") if (t.parent / "masks").is_dir())
        if not parts:
            raise RodentsegError(f"{e}; or a folder of labels parts (subfolders with masks/ + "
                                 "sources.csv)") from None
        return parts


def load_datasets(paths: str | Path | Sequence[str | Path], format: str = "auto", *,
                  data_root: str | Path | None = None, cache: bool = False) -> SegDataset:
    """Several datasets as one, each frame tagged with its setup (:func:`setup_name` of the
    path as listed; the parts of a folder of ``labels`` parts take the folder's setup).

    Args:
        paths: one dataset path or a list of them; each a dataset (:func:`load_dataset`) or a
            folder of ``labels`` parts (:func:`dataset_parts`).
        format: the format of every part (``auto``: detected per part).
        data_root: ``labels``: the folder relative sources are found in.
        cache: see :class:`SegDataset`.

    Raises:
        RodentsegError: no paths, a path listed twice (also as a part of a listed folder), or
            what :func:`load_dataset` raises for a part.
    """
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise RodentsegError("expected at least one dataset path; got an empty list")
    samples, seen = [], {}
    for path in paths:
        setup = setup_name(path)
        for part in dataset_parts(path):
            key = part.resolve()
            if key in seen:
                raise RodentsegError(f"dataset {part} is listed twice (also as {seen[key]}); "
                                     "list each dataset once")
            seen[key] = part
            ds = load_dataset(part, format, data_root=data_root)
            samples += [replace(s, setup=setup) for s in ds.samples]
    return SegDataset(samples, cache=cache, check=False)  # each part was checked when loaded


def split_dataset(ds: SegDataset, by: str = "frame", val_fraction: float = 0.2,
                  seed: int = 0, holdout: Sequence[str] = ()) -> tuple[SegDataset, SegDataset]:
    """Train/validation split, stated in the run's config (see :func:`describe_split`).

    ``by="frame"``: the last ``val_fraction`` of each video's frames, in time order, is val
    (:func:`rodentseg.train.data.temporal_split`: a block at the end keeps near-duplicate
    neighbouring frames from sitting on both sides). Videos of a single frame (single-image
    datasets) are pooled and split the same way in dataset order. ``by="video"``: whole videos
    go to val, ``max(1, round(n_videos x val_fraction))`` of them (at least one stays in train),
    chosen by a permutation of the sorted video names with ``numpy.random.default_rng(seed)``.
    ``by="setup"``: every frame of the ``holdout`` setups is val, the other setups train (leave
    one setup out: how a model does on a setup it never saw). A video is named by its setup and
    its name, so videos of the same name in two setups are two videos. ``seed`` is used by
    ``by="video"`` only, ``holdout`` by ``by="setup"`` only.

    Raises:
        RodentsegError: ``by`` unknown, ``val_fraction`` outside (0, 1), ``by="video"`` with one
            video, ``by="setup"`` without ``holdout`` or with a setup the dataset does not have
            (the message lists its setups), ``holdout`` with another ``by``, or a split that
            leaves train or val empty.
    """
    if not 0 < val_fraction < 1:
        raise RodentsegError(f"val_fraction must be in (0, 1), got {val_fraction}")
    holdout = [holdout] if isinstance(holdout, str) else list(holdout or ())
    if holdout and by != "setup":
        raise RodentsegError(f"holdout {holdout} needs split by 'setup', not {by!r}; set "
                             "split.by=setup (or drop split.holdout)")
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(ds.videos, ds.setups)):
        groups.setdefault(key, []).append(i)
    if by == "frame":
        singles = [g[0] for g in groups.values() if len(g) == 1]
        blocks = [g for g in groups.values() if len(g) > 1] + ([singles] if singles else [])
        train, val = [], []
        for g in blocks:
            tr, va = temporal_split(len(g), val_fraction)
            train += [g[k] for k in tr]
            val += [g[k] for k in va]
    elif by == "video":
        if len(groups) < 2:
            raise RodentsegError(f"split by video needs at least 2 videos, the dataset has "
                                 f"{len(groups)} ({[v for v, _ in groups]}); use by='frame'")
        n_val = min(len(groups) - 1, max(1, round(len(groups) * val_fraction)))
        keys = sorted(groups)
        order = np.random.default_rng(seed).permutation(len(keys))
        val = sorted(i for k in order[:n_val] for i in groups[keys[k]])
        train = sorted(set(range(len(ds))) - set(val))
    elif by == "setup":
        setups = sorted(set(ds.setups))
        if not holdout:
            raise RodentsegError(f"split by setup needs split.holdout: [the setups to validate "
                                 f"on], e.g. --set split.holdout=[{setups[-1]}]; the data has "
                                 f"setups {setups}")
        unknown = sorted(set(holdout) - set(setups))
        if unknown:
            raise RodentsegError(f"holdout setup(s) {unknown} are not in the data; its setups "
                                 f"are {setups}")
        val = [i for i, s in enumerate(ds.setups) if s in set(holdout)]
        train = [i for i, s in enumerate(ds.setups) if s not in set(holdout)]
        if not train:
            raise RodentsegError(f"holdout {holdout} holds out every setup of the data; keep at "
                                 "least one setup to train on")
    else:
        raise RodentsegError(f"split by {by!r}: expected 'frame' or 'video', or 'setup' with "
                             "split.holdout")
    if not train or not val:
        raise RodentsegError(f"val_fraction {val_fraction} split {len(ds)} frames into "
                             f"{len(train)} train and {len(val)} val; expected both non-empty")
    return ds.subset(sorted(train)), ds.subset(sorted(val))


def describe_split(train: SegDataset, val: SegDataset) -> dict:
    """The split as the run's config records it: counts, setups, video names, val frame names.

    Returns:
        ``{"n_train": int, "n_val": int, "train_setups": {setup: n_frames}, "val_setups":
        {setup: n_frames}, "train_videos": [str], "val_videos": [str], "val_frames": [str]}``
        (setups and videos sorted; frame names in dataset order).
    """
    def count(ds: SegDataset) -> dict[str, int]:
        return {s: ds.setups.count(s) for s in sorted(set(ds.setups))}

    return {"n_train": len(train), "n_val": len(val),
            "train_setups": count(train), "val_setups": count(val),
            "train_videos": sorted(set(train.videos)), "val_videos": sorted(set(val.videos)),
            "val_frames": val.names}
