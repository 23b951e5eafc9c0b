"""Zero-shot annotation: detector boxes on keyframes, new animals, duplicates, identities.

The re-detection mechanics use real openfield frames whose mouse is painted out (median
background) on the first frames, so it really enters mid-clip, with a detector that reports the
silver-mask boxes of the frames where it is visible (ground truth standing in for a detector,
injected through the Detector interface; the SAM model itself is a real tiny random model).
Grounding DINO is tested through its own from_pretrained path on real frames.
"""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from rodentseg.annotate import load_video_model
from rodentseg.annotate.detect import GroundingDinoDetector, load_detector
from rodentseg.annotate.zeroshot import ZeroShotOptions, ZeroShotTracker, zero_shot_video
from rodentseg.cli import main
from rodentseg.errors import RodentsegError
from tests.conftest import OPENFIELD, write_video

ENTERS = 6  # first frame on which the mouse is visible


class GroundTruthBoxes:
    """Boxes of the silver masks on frames where the mouse is visible (``repeat`` copies)."""

    name = "ground-truth"

    def __init__(self, masks: np.ndarray, repeat: int = 1):
        self.masks, self.repeat, self.calls = masks, repeat, []

    def detect(self, frame):
        t = next(i for i, f in enumerate(self.frames) if np.array_equal(f, frame))
        self.calls.append(t)
        if t < ENTERS:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        ys, xs = np.nonzero(self.masks[t])
        box = [xs.min() - 4, ys.min() - 4, xs.max() + 5, ys.max() + 5]
        return (np.array([box] * self.repeat, np.float32),
                np.full(self.repeat, 0.9, np.float32))


@pytest.fixture(scope="module")
def entering(tmp_path_factory):
    """12 openfield frames, the mouse painted out of frames 0..5; their masks."""
    if not (OPENFIELD / "frames").exists():
        pytest.skip(f"test data {OPENFIELD} not present")
    names = [f"img{i:04d}.png" for i in range(12)]
    frames = np.stack([np.asarray(Image.open(OPENFIELD / "frames" / n).convert("RGB"))
                       for n in names])
    masks = np.stack([np.asarray(Image.open(OPENFIELD / "masks" / n)) > 0 for n in names])
    background = np.median(frames, axis=0).astype(np.uint8)
    for t in range(ENTERS):
        near = np.zeros_like(masks[t])
        ys, xs = np.nonzero(masks[t])
        near[max(ys.min() - 10, 0):ys.max() + 10, max(xs.min() - 10, 0):xs.max() + 10] = True
        frames[t][near] = background[near]
    path = write_video(tmp_path_factory.mktemp("clips") / "entering.mp4", frames)
    from rodentseg.io.video import read_frames

    decoded = next(read_frames(path, 12))[1]  # what the annotator sees (after H.264)
    return path, decoded, masks


def test_redetection_adds_an_animal_that_enters(sam2_video, entering):
    path, frames, masks = entering
    det = GroundTruthBoxes(masks)
    det.frames = frames
    with sam2_video.start(path) as s:
        zs = ZeroShotTracker(s, det, ZeroShotOptions(every=3))
        out = [zs.step(t, f)[1] for t, f in enumerate(frames)]
    assert det.calls == [0, 3, 6, 9]  # keyframes only
    assert zs.added[0] == (ENTERS, 1)  # found at the first keyframe it is visible on
    assert all(len(fm) == 0 for fm in out[:ENTERS])
    assert all(fm.obj_ids.tolist()[:1] == [1] for fm in out[ENTERS:])  # one identity from then
    assert all(fm.masks.shape[1:] == (480, 640) for fm in out)


def test_duplicate_detections_are_one_animal(sam2_video, entering):
    path, frames, masks = entering
    det = GroundTruthBoxes(masks, repeat=3)  # three copies of the same box
    det.frames = frames
    with sam2_video.start(path) as s:
        zs = ZeroShotTracker(s, det, ZeroShotOptions(every=6))
        for t, f in enumerate(frames[:ENTERS + 1]):
            zs.step(t, f)
        assert zs.added == [(ENTERS, 1)] and s.obj_ids == [1]


def test_animals_caps_objects(sam2_video, entering):
    path, frames, masks = entering
    det = GroundTruthBoxes(masks)
    det.frames = frames
    with sam2_video.start(path) as s:
        zs = ZeroShotTracker(s, det, ZeroShotOptions(every=1, animals=1))
        for t, f in enumerate(frames):
            zs.step(t, f)
        assert s.obj_ids == [1] and zs.added == [(ENTERS, 1)]  # boxes on every frame, one mouse


def test_grounding_dino_boxes(gdino_dir, clip12_frames):
    det = load_detector(str(gdino_dir), "Mouse", "cpu")
    assert isinstance(det, GroundingDinoDetector) and det.text == "mouse."
    det.box_threshold = 0.01  # a random model is unsure of everything
    boxes, scores = det.detect(clip12_frames[0])
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(scores) == len(boxes) > 0
    assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    assert boxes[:, [0, 2]].max() <= 640 and boxes[:, [1, 3]].max() <= 480
    assert (np.diff(scores) <= 0).all()


def test_detector_errors(gdino_dir, sam2_video_dir):
    with pytest.raises(RodentsegError, match="needs --text"):
        load_detector(str(gdino_dir), None, "cpu")
    with pytest.raises(RodentsegError, match="must be Grounding DINO"):
        GroundingDinoDetector(str(sam2_video_dir), "mouse", device="cpu")
    with pytest.raises(RodentsegError, match="--every"):
        ZeroShotOptions(every=0)


def test_zero_shot_cli_layout(sam2_video_dir, gdino_dir, clip12, tmp_path):
    assert main(["annotate", str(clip12), "--out", str(tmp_path), "--model", str(sam2_video_dir),
                 "--text", "mouse", "--detector", str(gdino_dir), "--every", "4",
                 "--animals", "2", "--device", "cpu", "--quiet"]) == 0
    res = tmp_path / clip12.stem
    assert sorted(p.name for p in res.iterdir()) == ["masks", "masks.json", "overlay.mp4",
                                                     "review.csv", "run.json", "tracks.csv"]
    assert len(list((res / "masks").iterdir())) == 12
    run = json.loads((res / "run.json").read_text())
    assert run["mode"] == "zero-shot" and run["text"] == "mouse." and run["frame_count"] == 12
    rows = list(csv.DictReader((res / "tracks.csv").open()))
    assert {r["track_id"] for r in rows} <= {"1", "2"}  # --animals 2: at most two identities
    assert len(list(csv.DictReader((res / "review.csv").open()))) == 12


def test_zero_shot_with_the_default_segmenter(entering, sam2_video_dir, tmp_path):
    """With the trained rodentseg-tiny as detector: the real entering mouse is found."""
    from rodentseg.models import MODEL_REGISTRY

    if not (MODEL_REGISTRY["rodentseg-tiny"] / "model.safetensors").exists():
        pytest.skip("the default model's weights are not in the package")
    path, frames, masks = entering
    model = load_video_model(str(sam2_video_dir), "cpu")
    det = load_detector("rodentseg-tiny", None, "cpu", animals=1)
    res = zero_shot_video(path, tmp_path, model, det, ZeroShotOptions(every=3, animals=1),
                          progress=False)
    run = json.loads((res / "run.json").read_text())
    assert run["objects_added"] and run["objects_added"][0][0] <= ENTERS
    rows = list(csv.DictReader((res / "tracks.csv").open()))
    assert {int(r["frame_idx"]) for r in rows} >= set(range(ENTERS, 12))  # followed from then
