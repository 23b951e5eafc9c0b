"""The exports of a result folder, each opened by its own ecosystem's loader: movement (DLC,
SLEAP, netCDF, NWB), sleap-io (load, then save as ``.slp``) and pycocotools (``masks.json`` with
its ``videos`` section).

The result is two animals on a 32x48 clip of 6 frames, written by :class:`ResultWriter` and
:func:`finalize` as ``segment`` does; the source is either a video file or a folder of images
with names that are not frame indices.
"""

import json

import numpy as np
import pytest
from PIL import Image

from rodentseg.io.exports import SleapAnalysisWriter
from rodentseg.io.results import ResultWriter
from rodentseg.track.readouts import finalize
from rodentseg.types import FrameMasks
from tests.conftest import write_video

H, W, FPS, T = 32, 48, 10.0, 6
# centroids (x, y) per frame; track 2 is missing on frames 2 and 3
PATHS = {1: {f: (10 + 2 * f, 10) for f in range(T)},
         2: {f: (35, 8 + 3 * f) for f in range(T) if f not in (2, 3)}}
IMAGE_NAMES = [f"cam1_{t:03d}.jpg" for t in (5, 7, 9, 11, 13, 15)]  # not frame indices


def square(x, y):
    m = np.zeros((H, W), bool)
    m[y - 2:y + 3, x - 2:x + 3] = True  # 5x5, centroid exactly (x, y)
    return m


def make_result(folder, video):
    with ResultWriter(folder, W, H, FPS, overlay=False) as w:
        for f in range(T):
            ids = [tid for tid in PATHS if f in PATHS[tid]]
            masks = np.array([square(*PATHS[tid][f]) for tid in ids], bool)
            w.write(FrameMasks(f, np.array(ids), masks, np.full(len(ids), 0.9)))
    finalize(folder, FPS, W, H, n_frames=T, video=video)
    return folder


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    frames = np.full((T, H, W, 3), 200, np.uint8)
    write_video(root / "clip.mp4", frames, fps=int(FPS))
    (root / "cam1").mkdir()
    for name, frame in zip(IMAGE_NAMES, frames):
        Image.fromarray(frame).save(root / "cam1" / name)
    return root


@pytest.fixture(scope="module", params=["clip.mp4", "cam1"])  # a video file; a folder of images
def result(request, sources, tmp_path_factory):
    video = sources / request.param
    return make_result(tmp_path_factory.mktemp("result"), video), video


def expected_position():
    """(time, space, keypoints, individuals) as movement orders it; NaN where not found."""
    pos = np.full((T, 2, 1, 2), np.nan)
    for k, tid in enumerate(sorted(PATHS)):
        for f, xy in PATHS[tid].items():
            pos[f, :, 0, k] = xy
    return pos


def test_movement_loads_the_dlc_and_sleap_files(result):
    load_poses = pytest.importorskip("movement.io.load_poses")
    folder, _ = result
    for ds in (load_poses.from_dlc_file(folder / "tracks.dlc.csv", fps=FPS),
               load_poses.from_sleap_file(folder / "tracks.sleap.h5", fps=FPS)):
        pos = ds.position.transpose("time", "space", "keypoints", "individuals").values
        np.testing.assert_array_equal(pos, expected_position())
        assert list(ds.individuals.values) == ["track_1", "track_2"]


def test_movement_netcdf_opens_with_xarray(result):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("movement")
    folder, video = result
    with xr.open_dataset(folder / "tracks.nc") as ds:
        pos = ds.position.transpose("time", "space", "keypoints", "individuals").values
        np.testing.assert_array_equal(pos, expected_position())
        np.testing.assert_allclose(ds.time.values, np.arange(T) / FPS)
        assert ds.attrs["ds_type"] == "poses" and ds.attrs["source_software"] == "rodentseg"
        assert ds.attrs["fps"] == FPS and ds.attrs["video_path"] == str(video.resolve())
        conf = ds.confidence.sel(individuals="track_2", keypoints="centroid").values
        assert np.isnan(conf[2]) and conf[0] == pytest.approx(0.9)


def test_movement_loads_one_nwb_file_per_animal(result):
    load_poses = pytest.importorskip("movement.io.load_poses")
    pynwb = pytest.importorskip("pynwb")
    folder, video = result
    assert sorted(p.name for p in (folder / "nwb").iterdir()) == ["track_1.nwb", "track_2.nwb"]
    for k, name in enumerate(["track_1", "track_2"]):
        ds = load_poses.from_nwb_file(folder / "nwb" / f"{name}.nwb")
        assert ds.individuals.values.tolist() == [name]
        assert ds.keypoints.values.tolist() == ["centroid"]
        pos = ds.position.transpose("time", "space", "keypoints", "individuals").values
        np.testing.assert_array_equal(pos[..., 0], expected_position()[..., k])
    with pynwb.NWBHDF5IO(folder / "nwb" / "track_1.nwb", "r") as io:
        nwb = io.read()
        pose = nwb.processing["behavior"]["PoseEstimation"]
        assert pose.source_software == "rodentseg"
        assert pose.source_video is nwb.acquisition["video"]
        files = list(pose.source_video.external_file[:])
        if video.is_dir():  # one file per frame
            assert files == [str(video.resolve() / n) for n in IMAGE_NAMES]
        else:
            assert files == [str(video.resolve())]


def test_sleap_io_loads_the_analysis_file_and_saves_it_as_slp(result, tmp_path):
    sio = pytest.importorskip("sleap_io")
    folder, video = result
    labels = sio.load_file(str(folder / "tracks.sleap.h5"))
    assert [t.name for t in labels.tracks] == ["track_1", "track_2"]
    assert labels.video.exists()  # video_path leads back to the frames
    sio.save_file(labels, str(tmp_path / "tracks.slp"))
    again = sio.load_file(str(tmp_path / "tracks.slp"))
    assert len(again.labeled_frames) == T
    by_frame = {lf.frame_idx: lf for lf in again.labeled_frames}
    got = {(f, inst.track.name): tuple(inst.numpy()[0]) for f, lf in by_frame.items()
           for inst in lf.instances}
    want = {(f, f"track_{tid}"): xy for tid, path in PATHS.items() for f, xy in path.items()}
    assert got == want


def test_sleap_file_without_a_video_still_saves_as_slp(tmp_path):
    sio = pytest.importorskip("sleap_io")
    with SleapAnalysisWriter(tmp_path / "t.h5", [1], 3, video_path="clip") as w:
        w.add(1, {1: (4.0, 5.0, 0.5)})
    sio.save_file(sio.load_file(str(tmp_path / "t.h5")), str(tmp_path / "t.slp"))
    assert sio.load_file(str(tmp_path / "t.slp")).video.filename == "clip"


def test_sleap_writer_refuses_an_empty_video_path(tmp_path):
    with pytest.raises(ValueError, match="video_path"):
        SleapAnalysisWriter(tmp_path / "t.h5", [1], 3, video_path="")


def test_masks_json_loads_in_pycocotools_with_its_video(result):
    coco_mod = pytest.importorskip("pycocotools.coco")
    folder, video = result
    coco = coco_mod.COCO(str(folder / "masks.json"))
    assert len(coco.getImgIds()) == T and len(coco.getAnnIds()) == 10
    raw = json.loads((folder / "masks.json").read_text())
    assert raw["videos"] == [{"id": 1, "name": video.stem, "file_name": str(video.resolve()),
                              "width": W, "height": H, "fps": FPS, "length": T}]
    imgs = sorted(coco.loadImgs(coco.getImgIds()), key=lambda i: i["frame_id"])
    assert [i["video_id"] for i in imgs] == [1] * T
    assert [i["frame_id"] for i in imgs] == list(range(T))
    if video.is_dir():  # the original images, named as they are in the folder
        assert [i["file_name"] for i in imgs] == IMAGE_NAMES
    else:  # what `rodentseg frames` names the decoded frames
        assert [i["file_name"] for i in imgs] == [f"{t:09d}.png" for t in range(T)]
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[3]))
    assert [(a["track_id"], a["instance_id"]) for a in ann] == [(1, 1)]
    assert coco.annToMask(ann[0]).astype(bool).tolist() == square(*PATHS[1][3]).tolist()
