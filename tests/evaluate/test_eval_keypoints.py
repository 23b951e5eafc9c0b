"""Keypoint readers (DeepLabCut CSV/H5, SLEAP, simple CSV) and keypoint containment."""

import sys
from pathlib import Path

import numpy as np
import pytest

from rodentseg.errors import RodentsegError
from rodentseg.evaluate import KeypointContainment, read_keypoints
from rodentseg.evaluate.keypoints import Keypoints
from rodentseg.io.masks import iter_label_pngs
from rodentseg.types import FrameMasks

OPENFIELD = Path("/work/shared/data/openfield-m4s1")


def write(path, text):
    path.write_text(text.lstrip())
    return path


def test_simple_csv(tmp_path):
    kp = read_keypoints(write(tmp_path / "k.csv", """
frame,bodypart,x,y,individual
img0003.png,snout,1.5,2.0,mouse1
7,tail,3,4,mouse2
8,tail,,,mouse2
"""))
    assert kp.frame_idx.tolist() == [3, 7]  # file name -> its digits; the empty point is dropped
    assert kp.xy.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert kp.bodypart.tolist() == ["snout", "tail"]
    assert kp.individual.tolist() == ["mouse1", "mouse2"]


def test_dlc_csv_single_animal_one_index_column(tmp_path):
    kp = read_keypoints(write(tmp_path / "CollectedData_X.csv", """
scorer,X,X,X,X
bodyparts,snout,snout,tail,tail
coords,x,y,x,y
labeled-data/m4s1/img0000.png,10.0,20.0,,
labeled-data/m4s1/img0012.png,11.0,21.0,30.0,40.0
"""))
    assert kp.frame_idx.tolist() == [0, 12, 12]
    assert kp.bodypart.tolist() == ["snout", "snout", "tail"]
    assert kp.xy.tolist() == [[10, 20], [11, 21], [30, 40]]
    assert set(kp.individual) == {""}


def test_dlc_csv_multi_animal_split_index_and_likelihood(tmp_path):
    path = write(tmp_path / "ma.csv", """
scorer,,,S,S,S,S,S,S
individuals,,,m1,m1,m1,m2,m2,m2
bodyparts,,,nose,nose,nose,nose,nose,nose
coords,,,x,y,likelihood,x,y,likelihood
labeled-data,vid,img005.png,1,2,0.9,3,4,0.2
""")
    kp = read_keypoints(path)
    assert kp.frame_idx.tolist() == [5, 5]
    assert kp.individual.tolist() == ["m1", "m2"]
    assert read_keypoints(path, min_likelihood=0.5).individual.tolist() == ["m1"]


def test_dlc_h5_without_pandas_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas -> ImportError
    (tmp_path / "k.h5").write_bytes(b"")
    with pytest.raises(RodentsegError, match="pip install pandas tables"):
        read_keypoints(tmp_path / "k.h5")


def test_dlc_h5_with_pandas(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    cols = pd.MultiIndex.from_tuples([("S", "nose", "x"), ("S", "nose", "y")],
                                     names=["scorer", "bodyparts", "coords"])
    idx = pd.MultiIndex.from_tuples([("labeled-data", "v", "img0004.png")])
    pd.DataFrame([[1.0, 2.0]], index=idx, columns=cols).to_hdf(tmp_path / "k.h5", key="df")
    kp = read_keypoints(tmp_path / "k.h5")
    assert kp.frame_idx.tolist() == [4] and kp.xy.tolist() == [[1.0, 2.0]]


def test_slp_without_sleap_io_names_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sleap_io", None)
    (tmp_path / "k.slp").write_bytes(b"")
    with pytest.raises(RodentsegError, match="pip install sleap-io"):
        read_keypoints(tmp_path / "k.slp")


def _write_slp(path):
    """A real .slp (sleap-io) labelling two videos: a user instance with an invisible tail on
    frame 3 of top.mp4, an untracked predicted instance on frame 4 of side.mp4."""
    sio = pytest.importorskip("sleap_io")
    sk = sio.Skeleton(["nose", "tail"])
    top = sio.Video(filename="C:\\lab\\top.mp4", open_backend=False)
    side = sio.Video(filename="b/side.mp4", open_backend=False)
    track = sio.Track("a")
    user = sio.Instance.from_numpy(np.array([[1, 2], [np.nan, np.nan]]), skeleton=sk,
                                   track=track)
    pred = sio.PredictedInstance.from_numpy(np.array([[5, 6], [7, 8]]), skeleton=sk,
                                            point_scores=np.ones(2), score=1.0)
    sio.Labels(labeled_frames=[sio.LabeledFrame(video=top, frame_idx=3, instances=[user]),
                               sio.LabeledFrame(video=side, frame_idx=4, instances=[pred])],
               videos=[top, side], skeletons=[sk], tracks=[track]).save(str(path))
    return path


def test_slp_reads_the_named_video_of_a_multi_view_file(tmp_path):
    path = _write_slp(tmp_path / "k.slp")
    with pytest.raises(RodentsegError, match="labels 2 videos .*top.mp4, side.mp4"):
        read_keypoints(path)
    kp = read_keypoints(path, video="top.mp4")  # a Windows path inside the file
    assert kp.frame_idx.tolist() == [3]  # the invisible (NaN) tail is dropped
    assert kp.individual.tolist() == ["a"] and kp.bodypart.tolist() == ["nose"]
    kp = read_keypoints(path, video="side")
    assert kp.xy.tolist() == [[5.0, 6.0], [7.0, 8.0]] and kp.individual.tolist() == ["", ""]
    with pytest.raises(RodentsegError, match="no video named 'front.mp4'"):
        read_keypoints(path, video="front.mp4")


def test_scale_keeps_pixel_centres(tmp_path):
    path = write(tmp_path / "k.csv", "frame,bodypart,x,y\n0,nose,9.5,-0.5\n")
    assert read_keypoints(path, scale=0.5).xy.tolist() == [[4.5, -0.5]]
    with pytest.raises(RodentsegError, match="positive number, got 0"):
        read_keypoints(path, scale=0)


@pytest.mark.parametrize("name,text,match", [
    ("k.txt", "", "unknown keypoint format"),
    ("k.csv", "frame,x,y\n1,2,3\n", "missing \\['bodypart'\\]"),
    ("k.csv", "scorer,S\ncoords,x\n1,2\n", "not a DeepLabCut CSV"),
])
def test_reader_errors(tmp_path, name, text, match):
    with pytest.raises(RodentsegError, match=match):
        read_keypoints(write(tmp_path / name, text))


def test_missing_keypoint_file(tmp_path):
    with pytest.raises(RodentsegError, match="does not exist"):
        read_keypoints(tmp_path / "missing.csv")


def kps(rows):
    """Keypoints from (frame, x, y, bodypart, individual) tuples."""
    return Keypoints(np.array([r[0] for r in rows]), np.array([r[1:3] for r in rows], float),
                     np.array([r[3] for r in rows], object), np.array([r[4] for r in rows], object))


def two_mice(frame_idx, left_id, right_id):
    masks = np.zeros((2, 10, 10), bool)
    masks[0, :, :5] = True  # left half
    masks[1, :, 5:] = True  # right half
    return FrameMasks(frame_idx, [left_id, right_id], masks)


def test_containment_right_animal_and_any():
    kp = kps([(0, 1, 1, "nose", "a"), (0, 8, 8, "nose", "b"),
              (1, 1, 1, "nose", "a"), (1, 8, 8, "nose", "b"),
              (2, 1, 1, "nose", "a"), (2, 8, 8, "nose", "b"),
              (3, 1, 1, "nose", "a")])
    c = KeypointContainment(kp)
    c.update(two_mice(0, 5, 7))
    c.update(two_mice(1, 5, 7))
    c.update(two_mice(2, 7, 5))  # identities swapped in frame 2
    # frame 3 never gets masks: its point counts as outside
    out = c.compute()
    assert out["pairing"] == {"a": 5, "b": 7}
    assert out["inside_any_count"] == 6 and out["inside_right_count"] == 4
    assert out["inside_any"] == pytest.approx(6 / 7) and out["frames_without_masks"] == 1


def test_containment_rounds_half_up_and_ignores_points_off_the_frame():
    masks = np.zeros((1, 5, 5), bool)
    masks[0, 2, 3] = True  # the pixel centred on x = 3, y = 2
    kp = kps([(0, 2.5, 2.0, "p", ""),  # rounds to x = 3: inside
              (0, 2.49, 2.0, "p", ""),  # rounds to x = 2: outside
              (0, -3.0, 2.0, "p", ""), (0, 3.0, 40.0, "p", "")])  # off the frame: outside
    c = KeypointContainment(kp)
    c.update(FrameMasks(0, [1], masks))
    out = c.compute()
    assert out["inside_any_count"] == 1 and out["points"] == 4


@pytest.mark.skipif(not OPENFIELD.is_dir(), reason="openfield-m4s1 data not present")
def test_openfield_ground_truth_contains_450_of_464_points():
    # the data README: 450 of 464 human points fall inside the silver masks; by part: snout
    # 104/116, left ear 115/116, right ear 115/116, tailbase 116/116
    c = KeypointContainment(read_keypoints(OPENFIELD / "keypoints.csv"))
    for fm in iter_label_pngs(OPENFIELD / "masks"):
        c.update(fm)
    out = c.compute()
    assert (out["inside_any_count"], out["points"]) == (450, 464)
    assert out["inside_right_count"] == 450
    assert {k: v["inside_any"] for k, v in out["per_bodypart"].items()} == {
        "snout": 104, "leftear": 115, "rightear": 115, "tailbase": 116}
