"""Training datasets (five layouts), splits, `rodentseg frames` and on-demand video frames."""

import argparse
import json
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from rodentseg.errors import RodentsegError
from rodentseg.io.masks import CocoWriter
from rodentseg.io.video import read_frames
from rodentseg.train.data import temporal_split
from rodentseg.train.datasets import (
    SegDataset,
    describe_split,
    detect_format,
    load_dataset,
    split_dataset,
)
from rodentseg.train.frames_cli import VideoFrames, add_parser, extract_frames
from rodentseg.types import FrameMasks
from tests.conftest import OPENFIELD, needs, write_video

H, W = 12, 16
RNG = np.random.default_rng(0)


def labels(n: int, ids=(1, 2)) -> np.ndarray:
    """(n, H, W) uint8 label images: object ids[k] in a block that moves with the frame."""
    out = np.zeros((n, H, W), np.uint8)
    for t in range(n):
        for k, oid in enumerate(ids):
            out[t, 2 + 5 * k:5 + 5 * k, t % 8:t % 8 + 4] = oid
    return out


def frames_folder(root, n=5, ext=".png", frame_fmt="img{:04d}", mask_fmt="img{:04d}"):
    """ROOT/frames + ROOT/masks; returns the frames (n, H, W, 3) and labels (n, H, W)."""
    (root / "frames").mkdir(parents=True)
    (root / "masks").mkdir()
    imgs = RNG.integers(0, 256, (n, H, W, 3), dtype=np.uint8)
    lab = labels(n)
    for t in range(n):
        Image.fromarray(imgs[t]).save(root / "frames" / (frame_fmt.format(t) + ext))
        Image.fromarray(lab[t]).save(root / "masks" / (mask_fmt.format(t) + ".png"))
    return imgs, lab


def small_video(path, n=12):
    """A 12-frame H.264 clip, 32x48, with a bright square moving right."""
    frames = np.full((n, 32, 48, 3), 40, np.uint8)
    for t in range(n):
        frames[t, 8:20, 2 + 2 * t:14 + 2 * t] = 220
    return write_video(path, frames)


def decoded(video):
    return np.concatenate([b for _, b in read_frames(video, 4)])


# ---- the frames/ + masks/ layout

def test_frames_layout_reads_items_lazily(tmp_path):
    imgs, lab = frames_folder(tmp_path / "sess")
    ds = load_dataset(tmp_path / "sess")
    assert detect_format(tmp_path / "sess") == "frames" and len(ds) == 5
    item = ds[3]
    assert item["image"].dtype == np.uint8 and item["image"].shape == (H, W, 3)
    assert item["mask"].dtype == np.int32 and item["mask"].shape == (H, W)
    np.testing.assert_array_equal(item["image"], imgs[3])
    np.testing.assert_array_equal(item["mask"], lab[3])
    assert (item["name"], item["video"]) == ("img0003", "sess")
    assert ds[-1]["name"] == "img0004"
    with pytest.raises(IndexError):
        ds[5]


def test_frames_of_rodentseg_frames_pair_with_segment_masks_by_index(tmp_path):
    # `rodentseg frames` writes 9 digits, `segment` masks 6: they pair by frame index
    _, lab = frames_folder(tmp_path / "v", frame_fmt="{:09d}", mask_fmt="{:06d}", ext=".jpg")
    ds = load_dataset(tmp_path / "v")
    assert ds.names == [f"{t:09d}" for t in range(5)]
    np.testing.assert_array_equal(ds[2]["mask"], lab[2])


def test_cache_keeps_items_after_the_file_goes(tmp_path):
    frames_folder(tmp_path / "s")
    cached, lazy = load_dataset(tmp_path / "s", cache=True), load_dataset(tmp_path / "s")
    first = cached[0]
    first["mask"][:] = 99  # callers get copies
    (tmp_path / "s" / "frames" / "img0000.png").unlink()
    assert cached[0]["mask"].max() == 2
    with pytest.raises(RodentsegError, match="not a readable image"):
        lazy[0]


def _no_mask(root):
    (root / "masks" / "img0002.png").unlink()


def _bad_size(root):
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(root / "masks" / "img0001.png")


def _garbage(root):
    (root / "frames" / "img0004.png").write_bytes(b"not a png")


def _empty(root):
    for p in (root / "frames").iterdir():
        p.unlink()


@pytest.mark.parametrize("damage, match", [
    (_no_mask, "1 of 5 images have no mask"),       # a frame without its mask
    (_bad_size, "16x12 but its mask is 16x13"),      # image and mask sizes differ
    (_garbage, "img0004.png is not a readable"),     # header cannot be read
    (_empty, "no frames"),                           # frames/ holds nothing
])
def test_frames_layout_errors(tmp_path, damage, match):
    frames_folder(tmp_path / "s")
    damage(tmp_path / "s")
    with pytest.raises(RodentsegError, match=match):
        load_dataset(tmp_path / "s")


def test_rgb_mask_is_rejected_when_read(tmp_path):
    frames_folder(tmp_path / "s")
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(tmp_path / "s" / "masks" / "img0000.png")
    with pytest.raises(RodentsegError, match="single-channel"):
        load_dataset(tmp_path / "s")[0]


@pytest.mark.parametrize("make, kwargs, match", [
    (lambda p: None, {}, "does not exist"),                                   # no such path
    (lambda p: (p / "other").mkdir(parents=True), {}, "matches no dataset"),  # unknown layout
    (lambda p: frames_folder(p), {"format": "voc"}, "unknown dataset format"),
    (lambda p: (p / "frames").mkdir(parents=True), {"format": "frames"}, "d/masks with label"),
])
def test_bad_paths_and_formats(tmp_path, make, kwargs, match):
    make(tmp_path / "d")
    with pytest.raises(RodentsegError, match=match):
        load_dataset(tmp_path / "d", **kwargs)


# ---- a rodentseg result folder: frames decoded from the run's video

def result_folder(tmp_path, video, idx=(0, 5, 11)):
    root = tmp_path / "res"
    (root / "masks").mkdir(parents=True)
    for i in idx:
        lab = np.zeros((32, 48), np.uint8)
        lab[8:20, 2 + 2 * i:14 + 2 * i] = 1
        Image.fromarray(lab).save(root / "masks" / f"{i:06d}.png")
    (root / "run.json").write_text(json.dumps({"video": str(video)}))
    return root


def test_result_folder_decodes_frames_from_its_video(tmp_path):
    video = small_video(tmp_path / "clip.mp4")
    ds = load_dataset(result_folder(tmp_path, video))
    assert ds.names == ["000000", "000005", "000011"] and set(ds.videos) == {"clip"}
    np.testing.assert_array_equal(ds[1]["image"], decoded(video)[5])
    assert ds[2]["image"][14, 30].min() > 150 and ds[2]["mask"][14, 30] == 1  # square under mask


def test_result_folder_errors(tmp_path):
    video = small_video(tmp_path / "clip.mp4")
    root = result_folder(tmp_path, tmp_path / "moved.mp4")
    with pytest.raises(RodentsegError, match="moved.mp4 of .* does not exist; pass video="):
        load_dataset(root)
    assert len(load_dataset(root, video=video)) == 3
    Image.fromarray(np.zeros((32, 48), np.uint8)).save(root / "masks" / "000040.png")
    with pytest.raises(RodentsegError, match="beyond the 12 frames"):
        load_dataset(root, video=video)


# ---- DAVIS

def davis(root, seqs=("bear", "mice"), n=3):
    palette = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9)
    for s in seqs:
        (root / "JPEGImages" / "480p" / s).mkdir(parents=True)
        (root / "Annotations" / "480p" / s).mkdir(parents=True)
        for t, lab in enumerate(labels(n)):
            Image.fromarray(RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
                root / "JPEGImages" / "480p" / s / f"{t:05d}.jpg")
            im = Image.fromarray(lab, mode="P")
            im.putpalette(palette)
            im.save(root / "Annotations" / "480p" / s / f"{t:05d}.png")


def test_davis_palette_indices_are_object_ids(tmp_path):
    davis(tmp_path / "DAVIS")
    ds = load_dataset(tmp_path / "DAVIS")
    assert len(ds) == 6 and ds.videos == ["bear"] * 3 + ["mice"] * 3
    assert ds.names[3] == "mice/00000"
    np.testing.assert_array_equal(ds[4]["mask"], labels(3)[1])
    assert len(load_dataset(tmp_path / "DAVIS", sequences=["mice"])) == 3
    with pytest.raises(RodentsegError, match=r"sequences \['cat'\]"):
        load_dataset(tmp_path / "DAVIS", sequences=["cat"])
    with pytest.raises(RodentsegError, match="resolution '1080p'"):
        load_dataset(tmp_path / "DAVIS", resolution="1080p")


# ---- COCO RLE

def test_coco_written_by_rodentseg_with_frames_by_index(tmp_path):
    imgs, lab = frames_folder(tmp_path / "v", frame_fmt="{:09d}", mask_fmt="{:09d}")
    with CocoWriter(tmp_path / "masks.json", W, H) as w:
        for t in range(5):
            fm = FrameMasks.from_label_image(t, lab[t])
            fm.obj_ids = fm.obj_ids + 4  # track ids 5 and 6
            w.add(fm)
    ds = load_dataset(tmp_path / "masks.json", images=tmp_path / "v" / "frames")
    assert len(ds) == 5 and ds.names[0] == "000000000"  # file_name: rodentseg frames' name
    assert ds[0]["video"] == tmp_path.name  # the video has no name yet: the folder's
    np.testing.assert_array_equal(ds[3]["image"], imgs[3])
    np.testing.assert_array_equal(ds[3]["mask"], np.where(lab[3] > 0, lab[3] + 4, 0))


def test_coco_polygons_without_track_id_number_in_order_and_video_frames(tmp_path):
    video = small_video(tmp_path / "clip.mp4")
    poly = [[10.0, 5.0, 20.0, 5.0, 20.0, 15.0, 10.0, 15.0]]
    coco = {"images": [{"id": 7, "file_name": "frame_003.png", "frame_idx": 3, "width": 48,
                        "height": 32}],
            "annotations": [{"id": 1, "image_id": 7, "segmentation": poly},
                            {"id": 2, "image_id": 7, "segmentation": [[30.0, 20, 40, 20, 40, 30]]}]}
    (tmp_path / "c.json").write_text(json.dumps(coco))
    ds = load_dataset(tmp_path / "c.json", video=video)
    item = ds[0]
    np.testing.assert_array_equal(item["image"], decoded(video)[3])
    assert item["mask"][10, 15] == 1 and item["mask"][25, 38] == 2 and item["mask"][2, 2] == 0
    assert item["video"] == "clip"
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.zeros((32, 48, 3), np.uint8)).save(tmp_path / "imgs" / "other.png")
    with pytest.raises(RodentsegError, match="frame_003.png' of the COCO file is not in"):
        load_dataset(tmp_path / "c.json", images=tmp_path / "imgs")


@needs(OPENFIELD)
def test_openfield_coco_equals_its_label_pngs():
    png, coco = load_dataset(OPENFIELD), load_dataset(OPENFIELD / "masks.json")
    assert coco.names == png.names
    for i in (0, 57, 115):
        np.testing.assert_array_equal(coco[i]["mask"], png[i]["mask"])


# ---- GeoTIFF

def geotiffs(root, n=3, dtype="uint8", bands=3):
    """n plain (not georeferenced) tiles and one-band masks with 255 = foreground."""
    rasterio = pytest.importorskip("rasterio")
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for t in range(n):
        for sub, count, dt, data in (("images", bands, dtype, RNG.integers(0, 200, (bands, H, W))),
                                     ("masks", 1, "uint8", labels(1, ids=(255,))[:1])):
            with warnings.catch_warnings():  # no geotransform: rasterio warns
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(root / sub / f"tile_{t}.tif", "w", driver="GTiff", height=H,
                                   width=W, count=count, dtype=dt) as dst:
                    dst.write(data.astype(dt))


def test_geotiff_tiles_are_rgb_with_binary_masks(tmp_path):
    geotiffs(tmp_path / "geo", bands=4)  # RGB + near-infrared: bands 1-3 are used
    ds = load_dataset(tmp_path / "geo")
    assert detect_format(tmp_path / "geo") == "geotiff" and ds.videos == ["tile_0", "tile_1",
                                                                          "tile_2"]
    item = ds[1]
    assert item["image"].shape == (H, W, 3) and item["image"].dtype == np.uint8
    np.testing.assert_array_equal(item["mask"], (labels(1, ids=(255,))[0] > 0).astype(np.int32))


@pytest.mark.parametrize("kwargs, match", [
    ({"dtype": "uint16"}, "expected 8-bit RGB"),   # 16-bit imagery
    ({"bands": 1}, "1 band"),                      # panchromatic, not RGB
])
def test_geotiff_that_is_not_8bit_rgb_is_rejected(tmp_path, kwargs, match):
    geotiffs(tmp_path / "geo", **kwargs)
    with pytest.raises(RodentsegError, match=match):
        load_dataset(tmp_path / "geo")


def test_geotiff_without_rasterio_names_the_extra(tmp_path, monkeypatch):
    geotiffs(tmp_path / "geo")
    monkeypatch.setitem(sys.modules, "rasterio", None)
    with pytest.raises(RodentsegError, match=r'pip install "rodentseg\[geo\]"'):
        load_dataset(tmp_path / "geo")


# ---- splits

def two_videos(tmp_path):
    frames_folder(tmp_path / "a", n=10)
    frames_folder(tmp_path / "b", n=5)
    a, b = load_dataset(tmp_path / "a"), load_dataset(tmp_path / "b")
    return SegDataset(a.samples + b.samples + davis_singles(tmp_path))


def davis_singles(tmp_path):
    """Two one-frame videos (as single-image datasets have)."""
    davis(tmp_path / "D", seqs=("x", "y"), n=1)
    return load_dataset(tmp_path / "D").samples


def test_split_by_frame_keeps_a_block_at_the_end_of_each_video(tmp_path):
    ds = two_videos(tmp_path)
    train, val = split_dataset(ds, by="frame", val_fraction=0.2)
    d = describe_split(train, val)
    # a: 10 frames -> last 2; b: 5 -> last 1; the two one-frame videos are pooled -> last 1
    assert d["val_frames"] == ["img0008", "img0009", "img0004", "y/00000"]
    assert d["n_train"] == 13 and d["n_val"] == 4
    assert d["train_videos"] == ["a", "b", "x"] and d["val_videos"] == ["a", "b", "y"]


def test_split_by_video_is_deterministic_by_seed(tmp_path):
    ds = two_videos(tmp_path)
    splits = {s: describe_split(*split_dataset(ds, by="video", val_fraction=0.5, seed=s))
              for s in range(6)}
    assert splits[0] == describe_split(*split_dataset(ds, by="video", val_fraction=0.5, seed=0))
    for d in splits.values():
        assert len(d["val_videos"]) == 2 and not set(d["val_videos"]) & set(d["train_videos"])
    assert len({tuple(d["val_videos"]) for d in splits.values()}) > 1  # the seed matters


@pytest.mark.parametrize("kwargs, match", [
    ({"by": "video"}, "at least 2 videos"),        # one video cannot be split by video
    ({"by": "scene"}, "expected 'frame' or 'video'"),
    ({"val_fraction": 1.0}, r"in \(0, 1\)"),
])
def test_split_errors(tmp_path, kwargs, match):
    frames_folder(tmp_path / "s")
    with pytest.raises(RodentsegError, match=match):
        split_dataset(load_dataset(tmp_path / "s"), **kwargs)


@needs(OPENFIELD)
def test_openfield_split_matches_temporal_split():
    ds = load_dataset(OPENFIELD)
    assert len(ds) == 116 and set(ds.videos) == {"openfield-m4s1"}
    train, val = split_dataset(ds, by="frame", val_fraction=0.2)
    tr, va = temporal_split(116, 0.2)
    assert (len(train), len(val)) == (93, 23) == (len(tr), len(va))
    assert val.names == [f"img{i:04d}" for i in range(93, 116)]
    assert train.names == [ds.names[i] for i in tr]
    item = val[0]
    assert item["image"].shape == (480, 640, 3) and set(np.unique(item["mask"])) == {0, 1}


# ---- `rodentseg frames` and VideoFrames

def test_frames_command_writes_resumes_and_subsamples(tmp_path):
    video = small_video(tmp_path / "clip.mp4")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["frames", str(video), "--out", str(tmp_path / "o"), "--quiet"])
    assert args.func(args) == 0
    files = sorted((tmp_path / "o" / "frames").iterdir())
    assert [p.name for p in files] == [f"{i:09d}.png" for i in range(12)]
    np.testing.assert_array_equal(np.asarray(Image.open(files[7])), decoded(video)[7])
    files[3].unlink()
    mtime = files[5].stat().st_mtime_ns
    assert extract_frames(video, tmp_path / "o", progress=False) == (1, 11)  # resume
    assert files[5].stat().st_mtime_ns == mtime and files[3].is_file()
    assert extract_frames(video, tmp_path / "o", progress=False) == (0, 12)
    extract_frames(video, tmp_path / "sub", every=3, start=2, end=10, progress=False)
    assert sorted(p.name for p in (tmp_path / "sub" / "frames").iterdir()) == [
        "000000002.png", "000000005.png", "000000008.png"]
    assert not list((tmp_path / "o" / "frames").glob(".*"))  # no temporary files left


@pytest.mark.parametrize("kwargs, match", [
    ({"video": "missing.mp4"}, "video not found"),
    ({"video": "not_a_video.mp4"}, "not a video FFmpeg can read"),
    ({"every": 0}, "every >= 1"),
    ({"start": 5, "end": 5}, "start < end"),
])
def test_frames_command_errors(tmp_path, kwargs, match):
    (tmp_path / "not_a_video.mp4").write_bytes(b"\x00" * 100)
    video = kwargs.pop("video", None)
    video = tmp_path / video if video else small_video(tmp_path / "clip.mp4")
    with pytest.raises(RodentsegError, match=match):
        extract_frames(video, tmp_path / "o", progress=False, **kwargs)


def test_video_frames_random_access_matches_streaming(tmp_path):
    video = small_video(tmp_path / "clip.mp4")
    vf, ref = VideoFrames(video), decoded(video)
    assert len(vf) == 12 and (vf.height, vf.width) == (32, 48)
    for i in (11, 0, 6):
        np.testing.assert_array_equal(vf[i], ref[i])
    np.testing.assert_array_equal(np.stack(list(vf)), ref)
    with pytest.raises(RodentsegError, match="outside"):
        vf[12]
    extract_frames(video, tmp_path / "o", progress=False)
    folder = VideoFrames(tmp_path / "o" / "frames")
    np.testing.assert_array_equal(folder[4], ref[4])
