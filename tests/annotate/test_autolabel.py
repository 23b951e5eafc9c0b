"""`rodentseg autolabel` on synthetic scenes whose true masks are known: every keypoint format
(simple CSV, DeepLabCut CSV single/multi-animal, DeepLabCut H5, SLEAP), white and black coats,
frames left out for doubt, the background-only path, bad input, and the tail tracer.

A scene is 48 frames of 160x120: a "mouse" (an ellipse of 40x20 px) with a thin bent tail
walking over a noisy floor, a soft halo of its own polarity around it (a shadow on a light
floor, a glow on a dark one) that must stay out of the mask. Keypoints are snout, ears and tail
base, as in openfield-m4s1.
"""

import csv
import json
import re
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from rodentseg.annotate.autolabel import AnimalPrior, LabelParams, trace_tail
from rodentseg.annotate.autolabel_run import REVIEW_COLUMNS, autolabel
from rodentseg.cli import main
from rodentseg.errors import RodentsegError
from tests.conftest import write_video

H, W, T = 120, 160, 48
A, B = 20.0, 10.0  # semi-axes of the body ellipse, along and across the heading (px)
PARTS = ("snout", "leftear", "rightear", "tailbase")
EVERY6 = list(range(0, T, 6))  # the frames given keypoints


# ---------------------------------------------------------------------------------------------
# synthetic scenes


def _seg_dist(yy, xx, p, q):
    """Distance of each pixel to the segment p-q ((x, y) points)."""
    d = q - p
    t = np.clip(((xx - p[0]) * d[0] + (yy - p[1]) * d[1]) / (d @ d), 0, 1)
    return np.hypot(xx - p[0] - t * d[0], yy - p[1] - t * d[1])


@dataclass
class Scene:
    frames: np.ndarray  # (T, H, W, 3) uint8
    truth: np.ndarray  # (T, H, W) uint8, animal k -> k + 1 (body and tail)
    body: np.ndarray  # (T, H, W) uint8, the bodies alone
    halo: np.ndarray  # (T, H, W) bool, floor pixels the halo changes by >= 6 grey levels
    kps: list  # kps[t][k] = {part: (x, y)}


def make_scene(paths, floor=200.0, fur=50.0, tail=110.0, halo=30.0, seed=0) -> Scene:
    """Animals moving along ``paths`` (s in [0, 1] -> ((x, y) centre, heading in radians))."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(float)
    sign = 1.0 if fur > floor else -1.0
    frames = np.zeros((T, H, W), np.uint8)
    truth, body_truth = np.zeros((T, H, W), np.uint8), np.zeros((T, H, W), np.uint8)
    halos = np.zeros((T, H, W), bool)
    kps = []
    for t in range(T):
        img, shade, kp_t = np.full((H, W), floor), np.zeros((H, W)), []
        for k, path in enumerate(paths):
            (cx, cy), ang = path(t / (T - 1))
            c, u = np.array([cx, cy]), np.array([np.cos(ang), np.sin(ang)])
            n = np.array([-u[1], u[0]])
            du, dn = (xx - cx) * u[0] + (yy - cy) * u[1], (xx - cx) * n[0] + (yy - cy) * n[1]
            body = (du / A) ** 2 + (dn / B) ** 2 <= 1
            base = c - A * u
            bend = base - 12 * u + 3 * n
            tl = (np.minimum(_seg_dist(yy, xx, base, bend),
                             _seg_dist(yy, xx, bend, bend - 12 * u + 2 * n)) <= 1.0) & ~body
            d = ndimage.distance_transform_edt(~body)
            shade = np.maximum(shade, halo * np.exp(-d / 3.0) * (d > 0))
            body_truth[t][body] = truth[t][body | tl] = k + 1
            img = np.where(body, fur, np.where(tl, tail, img))
            kp_t.append({"snout": c + 0.95 * A * u, "leftear": c + 0.45 * A * u + 0.6 * B * n,
                         "rightear": c + 0.45 * A * u - 0.6 * B * n,
                         "tailbase": c - 0.95 * A * u})
        fl = truth[t] == 0
        img = np.where(fl, img + sign * shade, img) + rng.normal(0, 3, (H, W))
        frames[t] = np.clip(np.round(img), 0, 255)
        halos[t] = fl & (shade >= 6) & (ndimage.distance_transform_edt(fl) > 1)
        kps.append(kp_t)
    return Scene(np.repeat(frames[..., None], 3, -1), truth, body_truth, halos, kps)


def loop(phase, rx=50.0, ry=32.0):
    """Once round an elliptic track about the frame's centre, heading along it: each floor
    pixel is under an animal on few frames, so the video's median is its floor."""
    def at(s):
        a = 2 * np.pi * (phase + s)
        return (80 + rx * np.cos(a), 60 + ry * np.sin(a)), np.arctan2(ry * np.cos(a),
                                                                      -rx * np.sin(a))
    return at


def rest_then_go(s):
    """Resting at x = 45 for the first two thirds of the video, then walking right."""
    return (45 + max(0.0, s - 2 / 3) * 3 * 80, 60.0), 0.0


@pytest.fixture(scope="module")
def dark(tmp_path_factory):
    """One black mouse on a light floor, its shadow around it: a video and an image folder."""
    s = make_scene([loop(0.0)])
    d = tmp_path_factory.mktemp("dark")
    s.video = write_video(d / "dark.mp4", s.frames)
    s.folder = d / "img"
    s.folder.mkdir()
    for t, f in enumerate(s.frames):
        Image.fromarray(f).save(s.folder / f"img{t:04d}.png")
    return s


@pytest.fixture(scope="module")
def white(tmp_path_factory):
    """One white mouse on a dark floor, with a pale glow around it."""
    s = make_scene([loop(0.3)], floor=60.0, fur=215.0, tail=150.0, seed=1)
    s.video = write_video(tmp_path_factory.mktemp("white") / "white.mp4", s.frames)
    return s


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two black mice on one track, half a lap apart ("zed" starts right, "amy" left)."""
    s = make_scene([loop(0.0), loop(0.5)], seed=2)
    s.video = write_video(tmp_path_factory.mktemp("two") / "two.mp4", s.frames)
    return s


# ---------------------------------------------------------------------------------------------
# keypoint files


def simple_csv(path, scene, frames=EVERY6, names=None, order=None, shift=None, label_as=None):
    """``frame,bodypart,x,y[,individual]``: ``names`` of the scene's animals, listed on each
    frame in ``order`` (default scene order); ``shift``: frame -> (dx, dy) added to its points;
    ``label_as``: frame -> the frame number written instead."""
    rows = ["frame,bodypart,x,y" + (",individual" if names else "")]
    for t in frames:
        for k in order or range(len(scene.kps[t])):
            for part in PARTS:
                x, y = np.add(scene.kps[t][k][part], (shift or {}).get(t, (0, 0)))
                rows.append(f"{(label_as or {}).get(t, t)},{part},{x:.2f},{y:.2f}"
                            + (f",{names[k]}" if names else ""))
    path.write_text("\n".join(rows) + "\n")
    return path


def dlc_csv(path, scene, names=None, frames=EVERY6):
    """DeepLabCut's CollectedData CSV: single-animal (``names=None``) or multi-animal, the
    image path split over three index columns as DeepLabCut 2.2+ writes it."""
    n = len(scene.kps[0]) if names else 1
    ind = [names[k] for k in range(n) for _ in PARTS for _ in "xy"] if names else None
    head = [["scorer"] + ["Lab"] * (n * len(PARTS) * 2)]
    if ind:
        head.append(["individuals"] + ind)
    head += [["bodyparts"] + [p for _ in range(n) for p in PARTS for _ in "xy"],
             ["coords"] + ["x", "y"] * (n * len(PARTS))]
    head = [[r[0], "", ""] + r[1:] for r in head]
    rows = [["labeled-data", "scene", f"img{t:04d}.png"]
            + [f"{v:.2f}" for k in range(n) for p in PARTS for v in scene.kps[t][k][p]]
            for t in frames]
    with path.open("w", newline="") as fh:
        csv.writer(fh).writerows(head + rows)
    return path


def check_run(out, scene, expected, ids=None, min_iou=0.85):
    """The dataset layout of ``out``, and every mask against the scene's truth.

    ``expected``: frame index -> file name stem; ``ids``: instance id -> animal of the scene
    (default id k + 1 is animal k). Returns the run record.
    """
    ids = ids or {k + 1: k for k in range(len(scene.kps[0]))}
    kept = sorted(p.name for p in (out / "frames").iterdir())
    left = sorted(p.name for p in (out / "left_out" / "frames").iterdir())
    assert sorted(p.stem for p in (out / "frames").iterdir()) == sorted(
        p.stem for p in (out / "masks").iterdir())  # mask name = frame stem + .png
    assert sorted(p.stem for p in (out / "left_out" / "frames").iterdir()) == sorted(
        p.stem for p in (out / "left_out" / "masks").iterdir())
    assert all(p.suffix == ".png" for p in (out / "masks").iterdir())
    assert sorted(n.rsplit(".", 1)[0] for n in kept + left) == sorted(expected.values())
    run = json.loads((out / "run.json").read_text())
    assert run["command"] == "autolabel" and run["labelled"] == len(expected)
    assert (run["kept"], run["left_out"]) == (len(kept), len(left))
    with (out / "review.csv").open() as fh:
        review = list(csv.DictReader(fh))
    assert list(review[0]) == REVIEW_COLUMNS
    assert len(review) == len(expected) * len(ids)  # one row per animal and frame
    assert {r["frame"] for r in review if r["kept"] == "1"} == set(kept)
    assert [float(r["doubt"]) for r in review] == sorted((float(r["doubt"]) for r in review),
                                                         reverse=True)
    sheets = sorted((out / "sheets").glob("*.png"))
    assert sheets and Image.open(sheets[0]).size[0] > 0
    for t, stem in expected.items():
        where = "masks" if (out / "masks" / f"{stem}.png").exists() else "left_out/masks"
        label = np.asarray(Image.open(out / where / f"{stem}.png"))
        assert label.shape == (H, W) and set(np.unique(label)) <= {0, *ids}
        for obj_id, k in ids.items():
            pred, true = label == obj_id, scene.truth[t] == k + 1
            iou = (pred & true).sum() / (pred | true).sum()
            assert iou >= min_iou, f"frame {t} id {obj_id}: IoU {iou:.3f}"
            # the halo is left out; the few extra pixels are the fur's and tail's edges
            assert (pred & scene.halo[t]).sum() <= 0.02 * scene.halo[t].sum(), f"frame {t}"
            assert (pred & ~true).sum() <= 0.15 * true.sum(), f"frame {t}"
            tail = true & (scene.body[t] != k + 1)  # traced, not thresholded away
            assert (pred & tail).sum() >= 0.6 * tail.sum(), f"frame {t} id {obj_id}: tail"
    return run


def video_names(frames):
    return {t: f"{t:09d}" for t in frames}


# ---------------------------------------------------------------------------------------------
# every keypoint format


def test_simple_csv_on_a_video(dark, tmp_path):
    kp = simple_csv(tmp_path / "k.csv", dark)
    s = autolabel(dark.video, tmp_path / "out", kp, progress=False)
    run = check_run(tmp_path / "out", dark, video_names(EVERY6))
    assert run["individuals"] == {"": 1} and run["background"] == "video"
    assert (s.labelled, s.kept + s.left_out) == (len(EVERY6), len(EVERY6))
    # frames/NNNNNNNNN.png is the video's frame of that index (the mouse moves between frames)
    f12 = next((tmp_path / "out").glob("**/frames/000000012.png"))  # kept or left out
    f12 = np.asarray(Image.open(f12))
    err = [np.abs(f12.astype(int) - dark.frames[t]).mean() for t in (6, 12, 18)]
    assert np.argmin(err) == 1 and err[1] < 3


def test_dlc_single_animal_csv_on_an_image_folder(dark, tmp_path):
    kp = dlc_csv(tmp_path / "CollectedData_Lab.csv", dark)
    autolabel(dark.folder, tmp_path / "out", kp, progress=False)
    run = check_run(tmp_path / "out", dark, {t: f"img{t:04d}" for t in EVERY6})
    assert run["individuals"] == {"": 1}
    # an image folder keeps its file names, and the frames are copied unchanged
    name = "img0018.png"
    sub = "frames" if (tmp_path / "out" / "frames" / name).exists() else "left_out/frames"
    assert (tmp_path / "out" / sub / name).read_bytes() == (dark.folder / name).read_bytes()


def test_dlc_multi_animal_csv_ids_follow_the_file(two, tmp_path):
    # "zed" (the mouse starting on the right) comes first in the file: id 1, though "amy"
    # sorts first
    kp = dlc_csv(tmp_path / "CollectedData_Lab.csv", two, names=["zed", "amy"])
    s = autolabel(two.video, tmp_path / "out", kp, progress=False)
    run = check_run(tmp_path / "out", two, video_names(EVERY6), ids={1: 0, 2: 1})
    assert run["individuals"] == {"zed": 1, "amy": 2} == s.individuals
    with (tmp_path / "out" / "review.csv").open() as fh:
        assert {(r["obj_id"], r["individual"]) for r in csv.DictReader(fh)} == {
            ("1", "zed"), ("2", "amy")}


def test_simple_csv_ids_follow_the_file_not_the_scene(two, tmp_path):
    # the same scene, the second mouse ("amy") listed first on every frame: it gets id 1
    kp = simple_csv(tmp_path / "k.csv", two, names=["zed", "amy"], order=[1, 0])
    s = autolabel(two.video, tmp_path / "out", kp, progress=False, max_frames=3)
    assert s.individuals == {"amy": 1, "zed": 2}
    assert s.labelled == 3  # max_frames of the 8 frames with keypoints, spread evenly
    check_run(tmp_path / "out", two, video_names([0, 24, 42]), ids={1: 1, 2: 0})


def test_dlc_h5_model_output_with_likelihood(dark, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    cols = pd.MultiIndex.from_tuples([("DLC_resnet50", p, c) for p in PARTS
                                      for c in ("x", "y", "likelihood")],
                                     names=["scorer", "bodyparts", "coords"])
    low = 24  # a frame the network was unsure of: every likelihood 0.1, below 0.5
    data = [[v for p in PARTS for v in (*dark.kps[t][0][p], 0.1 if t == low else 0.98)]
            for t in EVERY6]
    pd.DataFrame(data, index=EVERY6, columns=cols).to_hdf(tmp_path / "k.h5", key="df_with_missing")
    autolabel(dark.video, tmp_path / "out", tmp_path / "k.h5", progress=False)
    check_run(tmp_path / "out", dark, video_names([t for t in EVERY6 if t != low]))


def _slp(path, scene, video_name, frames=EVERY6, side=None):
    """A real SLEAP file (sleap-io): the scene's points on ``video_name`` with track "m";
    ``side``: a second video whose points (on other frames, elsewhere) must not be read."""
    sio = pytest.importorskip("sleap_io")
    sk = sio.Skeleton(list(PARTS))
    track = sio.Track("m")
    top = sio.Video(filename=f"/lab/session/{video_name}", open_backend=False)
    lfs = [sio.LabeledFrame(video=top, frame_idx=t, instances=[sio.Instance.from_numpy(
        np.array([scene.kps[t][0][p] for p in PARTS]), skeleton=sk, track=track)])
        for t in frames]
    videos = [top]
    if side is not None:
        other = sio.Video(filename=side, open_backend=False)
        videos.append(other)
        pts = np.array([[150, 110], [145, 112], [148, 105], [130, 110]], float)  # empty floor
        lfs += [sio.LabeledFrame(video=other, frame_idx=t, instances=[sio.Instance.from_numpy(
            pts, skeleton=sk, track=track)]) for t in (3, 9, 15)]
    sio.Labels(labeled_frames=lfs, videos=videos, skeletons=[sk], tracks=[track]).save(str(path))
    return path


def test_slp_one_video(dark, tmp_path):
    kp = _slp(tmp_path / "k.slp", dark, dark.video.name)
    autolabel(dark.video, tmp_path / "out", kp, progress=False)
    run = check_run(tmp_path / "out", dark, video_names(EVERY6))
    assert run["individuals"] == {"m": 1}


def test_slp_two_videos_reads_the_named_one(dark, tmp_path):
    kp = _slp(tmp_path / "k.slp", dark, dark.video.name, frames=EVERY6[:4], side="side.mp4")
    with pytest.raises(RodentsegError, match="labels 2 videos"):
        autolabel(dark.video, tmp_path / "out", kp, progress=False)
    autolabel(dark.video, tmp_path / "out", kp, slp_video=dark.video.name, progress=False)
    run = check_run(tmp_path / "out", dark, video_names(EVERY6[:4]))  # not side's 3, 9, 15
    assert run["slp_video"] == dark.video.name


# ---------------------------------------------------------------------------------------------
# polarity, doubt, background only


def test_white_mouse_on_a_dark_floor(white, tmp_path):
    kp = simple_csv(tmp_path / "k.csv", white)
    autolabel(white.video, tmp_path / "out", kp, progress=False)
    check_run(tmp_path / "out", white, video_names(EVERY6))  # glow left out as the shadow was


def test_frame_with_wrong_keypoints_is_left_out(dark, tmp_path):
    # frame 21's points are moved to the middle of the track, on empty floor
    bad = 21
    centre = np.mean([dark.kps[bad][0][part] for part in PARTS], 0)
    kp = simple_csv(tmp_path / "k.csv", dark, frames=sorted(EVERY6 + [bad]),
                    shift={bad: (80 - centre[0], 60 - centre[1])})
    autolabel(dark.video, tmp_path / "out", kp, progress=False)
    out = tmp_path / "out"
    name = f"{bad:09d}.png"
    assert (out / "left_out" / "frames" / name).exists()
    assert (out / "left_out" / "masks" / name).exists()
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{t:09d}.png" for t in EVERY6]
    with (out / "left_out.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["frame"], r["frame_idx"]) for r in rows] == [(name, str(bad))]
    assert rows[0]["reason"] in ("keypoints", "missing", "contrast", "pieces")
    assert float(rows[0]["doubt"]) > 0.5
    with (out / "review.csv").open() as fh:
        review = list(csv.DictReader(fh))
    assert (review[0]["frame"], review[0]["kept"]) == (name, "0")  # most doubtful first
    assert json.loads((out / "run.json").read_text())["left_out"] == 1


def test_background_only_one_animal(dark, tmp_path):
    s = autolabel(dark.video, tmp_path / "out", animals=1, max_frames=6, progress=False)
    out = tmp_path / "out"
    assert s.background == "video" and s.individuals == {"animal1": 1} and s.labelled == 6
    names = [p.stem for sub in ("frames", "left_out/frames") for p in (out / sub).iterdir()]
    assert len(names) == 6
    for n in names:
        label = np.asarray(Image.open(out / ("masks" if (out / "masks" / f"{n}.png").exists()
                                             else "left_out/masks") / f"{n}.png"))
        t = int(n)
        pred, body = label == 1, dark.body[t] == 1
        # no tail base keypoint, so no tail: the body alone, without its shadow
        assert (pred & body).sum() / (pred | body).sum() >= 0.85, n
        assert (pred & dark.halo[t]).sum() <= 0.02 * dark.halo[t].sum(), n


def brown_on_grey(folder):
    """One brown mouse (RGB 150, 118, 86: luma 124) walking over a grey floor (128, noise 3):
    4 grey levels apart, below the smallest threshold (12), but far apart in hue. Written as
    an image folder (PNG: no chroma subsampling)."""
    s = make_scene([loop(0.0)], floor=128.0, fur=124.0, tail=124.0, halo=0.0, seed=4)
    rng = np.random.default_rng(5)
    brown = np.array([150.0, 118.0, 86.0]) + rng.normal(0, 3, (T, H, W, 3))
    on = s.body > 0
    s.frames[on] = np.clip(np.round(brown[on]), 0, 255).astype(np.uint8)
    folder.mkdir()
    for t, f in enumerate(s.frames):
        Image.fromarray(f).save(folder / f"img{t:04d}.png")
    return s


@pytest.mark.parametrize("colour,min_iou,max_iou", [
    (0.0, 0.0, 0.3),  # luma alone: the coat is as bright as the floor, nothing (or a sliver)
    (1.0, 0.85, 1.0),  # the L*a*b* distance finds the whole body
])
def test_colour_cue_finds_a_brown_mouse_on_a_grey_floor(tmp_path, colour, min_iou, max_iou):
    scene = brown_on_grey(tmp_path / "img")
    autolabel(tmp_path / "img", tmp_path / "out", animals=1, max_frames=6,
              params=LabelParams(colour=colour), progress=False)
    out = tmp_path / "out"
    masks = [*(out / "masks").glob("*.png"), *(out / "left_out" / "masks").glob("*.png")]
    assert len(masks) == 6
    for f in masks:
        t = int(f.stem[3:])
        pred, body = np.asarray(Image.open(f)) == 1, scene.body[t] == 1
        iou = (pred & body).sum() / (pred | body).sum()
        assert min_iou <= iou <= max_iou, f"{f.name}: IoU {iou:.3f}"


def test_colour_cue_leaves_grey_video_unchanged(dark, tmp_path):
    kp = simple_csv(tmp_path / "k.csv", dark, frames=[6, 24, 42])
    for c in (0.0, 1.0):
        autolabel(dark.video, tmp_path / f"out{c}", kp, params=LabelParams(colour=c),
                  progress=False)
    for m in sorted((tmp_path / "out0.0" / "masks").glob("*.png")):
        assert np.array_equal(np.asarray(Image.open(m)),
                              np.asarray(Image.open(tmp_path / "out1.0" / "masks" / m.name)))


def rest_twice_then_go(s):
    """Resting at x = 60 for a third of the video, at x = 75 for a third (the two places
    overlap), then walking down at x = 130: the overlap is under the mouse on two thirds of
    the frames, so the plain median there is the mouse."""
    if s < 1 / 3:
        return (60.0, 60.0), 0.0
    if s < 2 / 3:
        return (75.0, 60.0), 0.0
    return (130.0, 30.0 + (s - 2 / 3) * 3 * 60), np.pi / 2


@pytest.mark.parametrize("passes,min_iou", [
    (1, 0.0),  # the overlap of its resting places is background: a hole in the body
    (2, 0.5),  # the pieces the first pass found are left out of the second median
    (3, 0.85),  # and what the second found (the whole body) out of the third
])
def test_more_background_passes_without_keypoints(tmp_path, passes, min_iou):
    scene = make_scene([rest_twice_then_go], seed=6)
    video = write_video(tmp_path / "rest2.mp4", scene.frames)
    autolabel(video, tmp_path / "out", animals=1, max_frames=6,
              params=LabelParams(background_passes=passes), progress=False)
    out = tmp_path / "out"
    ious = []
    for f in [*(out / "masks").glob("*.png"), *(out / "left_out" / "masks").glob("*.png")]:
        pred, body = np.asarray(Image.open(f)) == 1, scene.body[int(f.stem)] == 1
        ious.append((pred & body).sum() / (pred | body).sum())
    assert len(ious) == 6 and min(ious) >= min_iou, ious
    if passes == 1:
        assert min(ious) < 0.85, ious  # the case the second pass is for


@pytest.mark.parametrize("every", [
    1,  # keypoints on every frame: each sampled frame leaves its animal out of the median
    pytest.param(6, marks=pytest.mark.xfail(strict=True, reason=(
        "known limitation: with keypoints on every 6th frame the background is the median of "
        "8 frames; the resting body is left out and found, but frame 42's tail crosses floor "
        "that the animal covered on most of them (tail recall 0.57 < 0.6)"))),
])
def test_resting_animal_does_not_become_background(tmp_path, every):
    # at rest on 32 of 48 frames: the plain median there is the mouse itself
    scene = make_scene([rest_then_go], seed=3)
    video = write_video(tmp_path / "rest.mp4", scene.frames)
    kp = simple_csv(tmp_path / "k.csv", scene, frames=range(0, T, every))
    autolabel(video, tmp_path / "out", kp, max_frames=3, progress=False)
    out = tmp_path / "out"
    names = [p.stem for sub in ("frames", "left_out/frames") for p in (out / sub).iterdir()]
    assert len(names) == 3 and min(map(int, names)) == 0  # frame 0: at rest
    check_run(out, scene, {int(n): n for n in names})


# ---------------------------------------------------------------------------------------------
# errors and the command line


def test_needs_keypoints_or_animals(dark, tmp_path):
    with pytest.raises(RodentsegError, match="--keypoints FILE or --animals N"):
        autolabel(dark.video, tmp_path / "out", progress=False)


def test_refuses_a_non_empty_out_unless_overwrite(dark, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("x")
    kp = simple_csv(tmp_path / "k.csv", dark, frames=[6, 12])
    with pytest.raises(RodentsegError, match="exists and is not empty.*--overwrite"):
        autolabel(dark.video, out, kp, progress=False)
    assert (out / "old.txt").exists()
    autolabel(dark.video, out, kp, overwrite=True, progress=False)
    assert not (out / "old.txt").exists() and (out / "run.json").exists()
    assert not list(tmp_path.glob(".out.*partial"))


@pytest.mark.parametrize("frames,shift", [
    ([100, 200], None),  # frame numbers past the video's 48 frames
    ([6, 12], {6: (500, 0), 12: (500, 0)}),  # points right of the 160 px wide frame
])
def test_keypoints_on_no_frame(dark, tmp_path, frames, shift):
    kp = simple_csv(tmp_path / "k.csv", dark, frames=[6, 12], shift=shift,
                    label_as=dict(zip([6, 12], frames)))
    with pytest.raises(RodentsegError, match=r"no keypoint of .*k\.csv falls on a frame of "
                                             r".*48 frames, 160x120.*--keypoint-scale"):
        autolabel(dark.video, tmp_path / "out", kp, progress=False)
    assert not (tmp_path / "out").exists()


def test_too_few_frames_for_a_background_without_keypoints(dark, tmp_path):
    d = tmp_path / "img"
    d.mkdir()
    for t in range(3):
        Image.fromarray(dark.frames[t]).save(d / f"img{t:04d}.png")
    with pytest.raises(RodentsegError, match="3 frames: too few for a background"):
        autolabel(d, tmp_path / "out", animals=1, progress=False)


def test_cli(dark, tmp_path, capsys):
    kp = simple_csv(tmp_path / "k.csv", dark)
    out = tmp_path / "out"
    assert main(["autolabel", str(dark.video), "--out", str(out)]) == 2
    assert "--keypoints FILE or --animals N" in capsys.readouterr().err
    assert main(["autolabel", str(dark.video), "--out", str(out), "--animals", "0"]) == 2
    assert main(["autolabel", str(dark.video), "--out", str(out), "--keypoints",
                 str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # keypoints labelled at twice the video's size: --keypoint-scale 0.5 brings them back
    double = [[{p: (np.asarray(xy) + 0.5) * 2 - 0.5 for p, xy in a.items()} for a in f]
              for f in dark.kps]
    kp2 = simple_csv(tmp_path / "k2.csv", Scene(None, None, None, None, double))
    assert main(["autolabel", str(dark.video), "--out", str(out), "--keypoints", str(kp2),
                 "--keypoint-scale", "0.5", "--max-frames", "3", "--quiet"]) == 0
    line_ = capsys.readouterr().out
    m = re.search(r"(\d+) of 3 frames labelled, (\d+) left out", line_)
    assert m, line_
    assert int(m[1]) == len(list((out / "frames").iterdir()))
    assert int(m[1]) + int(m[2]) == 3 and "1 animal(s), background: video" in line_
    assert json.loads((out / "run.json").read_text())["keypoint_scale"] == 0.5
    check_run(out, dark, video_names([0, 24, 42]))
    assert main(["autolabel", str(dark.video), "--out", str(out), "--keypoints", str(kp)]) == 2
    # --frames: only frames 10-30 of those with keypoints (12, 18, 24, 30)
    out3 = tmp_path / "out3"
    assert main(["autolabel", str(dark.video), "--out", str(out3), "--keypoints", str(kp),
                 "--frames", "10-30", "--quiet"]) == 0
    check_run(out3, dark, video_names([12, 18, 24, 30]))
    assert json.loads((out3 / "run.json").read_text())["frame_range"] == [10, 30]
    assert main(["autolabel", str(dark.video), "--out", str(tmp_path / "o4"), "--keypoints",
                 str(kp), "--frames", "30-10"]) == 2
    assert "expected FIRST-LAST" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# the tail tracer


def _tail_scene(shadow_side):
    """Signed contrast (smoothed as label_frame smooths it) of a body, a tail of contrast 80
    leaving it to the right, and a fainter copy (contrast 40) 5 px to one side."""
    yy, xx = np.mgrid[0:80, 0:120].astype(float)
    body = ((xx - 35) / 20) ** 2 + ((yy - 40) / 10) ** 2 <= 1
    base, tip = np.array([55.0, 40.0]), np.array([95.0, 46.0])  # a slightly slanted tail
    d_tail = _seg_dist(yy, xx, base, tip)
    off = shadow_side * 5.0 * np.array([-0.148, 0.989])  # 5 px along the tail's normal
    d_shadow = _seg_dist(yy, xx, base + off + [2, 0], tip + off)
    c = np.where(body, 150.0, np.where(d_tail <= 1, 80.0, np.where(d_shadow <= 1, 40.0, 0.0)))
    prior = AnimalPrior("", np.array([[54.0, 40.0], [20.0, 40.0]]), np.ones(2, bool), 40.0,
                        np.array([54.0, 40.0]))
    return ndimage.gaussian_filter(c, 1.0), body, prior, d_tail, d_shadow


@pytest.mark.parametrize("shadow_side", [1, -1])  # the fainter copy below, then above
def test_trace_tail_follows_the_darker_line(shadow_side):
    sc, body, prior, d_tail, d_shadow = _tail_scene(shadow_side)
    tail = trace_tail(sc, body, prior, 150.0, LabelParams())
    assert tail.sum() > 0 and not (tail & body).any()
    assert (d_tail[tail] <= 2.0).mean() >= 0.95  # on the real tail (1 px half-width, rounded)
    assert (d_shadow[tail] <= 1.0).sum() == 0  # not on its copy
    xs = np.nonzero(tail)[1]
    assert xs.max() >= 90  # to the tip (x = 95), and no farther than the line goes
    assert xs.max() <= 97


def test_traced_tail_is_attached_to_the_body():
    sc, body, prior, _, _ = _tail_scene(1)
    tail = trace_tail(sc, body, prior, 150.0, LabelParams())
    assert ndimage.label(body | tail, np.ones((3, 3), bool))[1] == 1


# ---------------------------------------------------------------------------------------------
# keypoints as prompts of a SAM-family model (a tiny random SAM 2, saved and loaded back)


def test_keypoints_prompt_a_sam_model(two, tmp_path, sam2_image_dir, monkeypatch):
    from rodentseg.annotate.image import ImagePredictor

    calls = []
    predict = ImagePredictor.predict

    def spy(self, points=None, labels=None, boxes=None, multimask_output=True):
        pred = predict(self, points, labels, boxes, multimask_output)
        calls.append((np.asarray(points), np.asarray(labels), boxes, pred.best()[0][0]))
        return pred

    monkeypatch.setattr(ImagePredictor, "predict", spy)
    kp = simple_csv(tmp_path / "k.csv", two, names=["zed", "amy"], frames=[6, 12])
    autolabel(two.video, tmp_path / "out", kp, model=str(sam2_image_dir), device="cpu",
              params=LabelParams(max_doubt=1.0), progress=False)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["model"] == str(sam2_image_dir)
    assert len(calls) == 4  # 2 frames x 2 animals, one prompt each
    for k, (pts, labels, boxes, mask) in enumerate(calls):
        t = [6, 12][k // 2]
        own = np.array([two.kps[t][k % 2][p] for p in PARTS])
        other = np.array([two.kps[t][1 - k % 2][p] for p in PARTS])
        # the animal's own keypoints are positive points, the other animal's negative
        np.testing.assert_allclose(pts[0], np.concatenate([own, other]), atol=0.01)
        assert labels[0].tolist() == [1] * len(PARTS) + [0] * len(PARTS)
        assert boxes is not None and boxes.shape == (1, 4)  # the contrast mask's box
        x0, y0, x1, y1 = boxes[0]
        assert x0 <= own[:, 0].min() and own[:, 0].max() <= x1
        assert y0 <= own[:, 1].min() and own[:, 1].max() <= y1
        # the written mask is the model's (outside the pixels the other animal also claims)
        label = np.asarray(Image.open(tmp_path / "out" / "masks" / f"{t:09d}.png"))
        mine = label == k % 2 + 1
        assert mine.any() and not (mine & ~mask).any()
