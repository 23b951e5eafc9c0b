"""FrameSource (random and reverse access), the mask store, the image CLI, and hub ids."""

import json
import socket

import numpy as np
import pytest
from PIL import Image

from rodentseg.annotate import FrameSource, MaskStore, ObjectMask
from rodentseg.cli import main
from rodentseg.errors import RodentsegError
from rodentseg.io.video import read_frames
from tests.conftest import OPENFIELD, write_video


def test_random_and_reverse_access_match_sequential_decoding(tracktor_clip):
    ref = next(read_frames(tracktor_clip, 40))[1]
    src = FrameSource(tracktor_clip, chunk=7)
    assert src.n_frames == 40 and (src.height, src.width) == (480, 640)
    fwd = list(src.forward(13, 20))
    assert [t for t, _ in fwd] == list(range(13, 20))
    assert all(np.array_equal(f, ref[t]) for t, f in fwd)
    back = list(src.backward(25))
    assert [t for t, _ in back] == list(range(25, -1, -1))
    assert all(np.array_equal(f, ref[t]) for t, f in back)
    assert [t for t, _ in src.backward(30, 26)] == [30, 29, 28, 27]
    assert np.array_equal(src.frame(39), ref[39])
    with pytest.raises(RodentsegError, match="outside the video"):
        src.frame(40)


def test_grey_video_frames_are_rgb(tmp_path):
    frames = (np.arange(6 * 32 * 48) % 255).astype(np.uint8).reshape(6, 32, 48)
    path = write_video(tmp_path / "grey.mkv", frames, codec="ffv1", pix_fmt="gray")
    src = FrameSource(path)
    f = src.frame(3)
    assert f.shape == (32, 48, 3) and np.array_equal(f[..., 0], frames[3])


def test_store_round_trip(tmp_path):
    store = MaskStore(30, 40, tmp_path)
    a = np.zeros((30, 40), bool)
    a[3:9, 5:20] = True
    store.update(5, {2: ObjectMask(a, 0.7, 0.9, True)})
    store.update(5, {1: ObjectMask(~a, 0.5)})
    got = store.get(5)
    assert sorted(got) == [1, 2] and np.array_equal(got[2].mask, a) and got[2].prompted
    assert got[1].score == pytest.approx(0.5) and np.isnan(got[1].fb_iou)
    fm = store.frame_masks(5)
    assert fm.obj_ids.tolist() == [1, 2] and fm.masks.shape == (2, 30, 40)
    store.update(5, {1: None, 2: None})
    assert 5 not in store and store.frame_masks(5).masks.shape == (0, 30, 40)
    folder = store.folder
    store.close()
    assert not folder.exists()


def test_image_cli_points_and_auto(sam2_image_dir, tmp_path):
    frame = OPENFIELD / "frames" / "img0000.png"
    if not frame.exists():
        pytest.skip(f"test data {frame} not present")
    assert main(["annotate", str(frame), "--out", str(tmp_path / "p"), "--model",
                 str(sam2_image_dir), "--points", "0:300,200,1", "--box", "0:250,150,350,260",
                 "--device", "cpu", "--quiet"]) == 0
    res = tmp_path / "p" / "img0000"
    label = np.asarray(Image.open(res / "masks" / "000000.png"))
    assert label.shape == (480, 640) and set(np.unique(label)) <= {0, 1, 2}
    assert json.loads((res / "run.json").read_text())["encoder_calls"] == 1  # two prompts
    assert main(["annotate", str(frame), "--out", str(tmp_path / "a"), "--model",
                 str(sam2_image_dir), "--auto", "--grid", "4", "--device", "cpu",
                 "--quiet"]) == 0
    assert (tmp_path / "a" / "img0000" / "masks.json").exists()
    assert main(["annotate", str(frame), "--out", str(tmp_path / "b"), "--model",
                 str(sam2_image_dir), "--points", "3:1,1,1", "--device", "cpu"]) == 2


def _hub_reachable() -> bool:
    try:
        socket.create_connection(("huggingface.co", 443), timeout=2).close()
        return True
    except OSError:
        return False


HUB = _hub_reachable()
NO_HUB = "the Hugging Face hub (huggingface.co:443) is not reachable from this machine"


@pytest.mark.hub
@pytest.mark.skipif(not HUB, reason=NO_HUB)
@pytest.mark.parametrize("name", ["facebook/sam2.1-hiera-tiny", "facebook/EdgeTAM"])
def test_hub_video_models(name, clip12):
    from rodentseg.annotate import load_video_model

    model = load_video_model(name, "auto")
    with model.start(clip12) as s:
        s.add_prompt(0, 1, points=[[253, 221]])
        out = list(s.propagate(0, "forward"))
    assert len(out) == 12


@pytest.mark.hub
@pytest.mark.skipif(not HUB, reason=NO_HUB)
def test_hub_grounding_dino(clip12_frames):
    from rodentseg.annotate.detect import GroundingDinoDetector

    boxes, scores = GroundingDinoDetector("IDEA-Research/grounding-dino-tiny", "mouse",
                                          device="auto").detect(clip12_frames[0])
    assert boxes.shape[1] == 4
