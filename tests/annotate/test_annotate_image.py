"""Image prompts, the embedding cache, batched prompts, automatic masks, preprocessing."""

import numpy as np
import pytest
import torch
from PIL import Image

from rodentseg.annotate import load_image_model
from rodentseg.annotate.amg import AutomaticMaskGenerator, box_nms, mask_boxes, point_grid
from rodentseg.annotate.preprocess import Preprocessor, stability_score
from rodentseg.errors import RodentsegError
from tests.conftest import OPENFIELD, needs

FRAME = OPENFIELD / "frames" / "img0000.png"


@pytest.fixture(scope="module")
def image():
    if not FRAME.exists():
        pytest.skip(f"test data {FRAME} not present")
    return np.asarray(Image.open(FRAME).convert("RGB"))


@pytest.mark.parametrize("family", [
    "sam2_image_dir",  # Sam2Model, own preprocessing (its processor needs torchvision)
    "sam_image_dir",  # SamModel v1, its PIL processor saved next to it
    "sam2_video_dir",  # a video checkpoint used as an image model (video weights ignored)
])
def test_many_prompts_one_encoder_pass(family, request, image):
    pred = load_image_model(str(request.getfixturevalue(family)), "cpu")
    pred.set_image(image)
    one = pred.predict(points=[[300, 200]], labels=[1])
    assert one.masks.shape == (1, 3, 480, 640) and one.masks.dtype == bool
    assert one.iou.shape == (1, 3) and one.stability.shape == (1, 3)
    batch = pred.predict(points=[[[300, 200]], [[100, 400]], [[500, 100]]],
                         labels=[[1], [1], [1]])
    assert batch.masks.shape == (3, 3, 480, 640)
    # batching does not change a prompt (up to float rounding of batched matmuls at the edge)
    assert (batch.masks[0] != one.masks[0]).mean() < 1e-3
    assert np.allclose(batch.iou[0], one.iou[0], atol=1e-4)
    box = pred.predict(boxes=[[250, 150, 350, 260]], multimask_output=False)  # MedSAM-style
    assert box.masks.shape == (1, 1, 480, 640)
    pred.set_image(image)  # the same image again: cached
    pred.predict(points=[[10, 10]])
    assert pred.encoder_calls == 1
    pred.set_image(image[::-1].copy())  # another image: encoded
    assert pred.encoder_calls == 2


def test_predictor_errors(sam2_image_dir, image):
    pred = load_image_model(str(sam2_image_dir), "cpu")
    with pytest.raises(RodentsegError, match="set_image"):
        pred.predict(points=[[1, 1]])
    pred.set_image(image)
    with pytest.raises(RodentsegError, match="one box per prompt"):
        pred.predict(points=[[[1, 1]], [[2, 2]]], boxes=[[0, 0, 5, 5]])
    with pytest.raises(RodentsegError, match="uint8"):
        pred.set_image(image.astype(np.float32))


def test_automatic_masks(sam2_image_dir, image):
    pred = load_image_model(str(sam2_image_dir), "cpu")
    gen = AutomaticMaskGenerator(pred, points_per_side=4, points_per_batch=6,
                                 pred_iou_thresh=-10, stability_score_thresh=0.0,
                                 box_nms_thresh=0.7)
    found = gen.generate(image)
    assert pred.encoder_calls == 1  # 16 prompts in 3 decoder calls, one encoder pass
    assert 1 <= len(found) <= 16 * 3
    assert found.masks.shape[1:] == (480, 640)
    assert np.array_equal(found.boxes, mask_boxes(found.masks))
    assert (np.diff(found.iou) <= 0).all()  # best first
    assert len(box_nms(found.boxes, found.iou, 0.7)) == len(found)  # no duplicate survives
    strict = AutomaticMaskGenerator(pred, points_per_side=4, pred_iou_thresh=10.0)
    assert len(strict.generate(image)) == 0  # nothing reaches a predicted IoU of 10


def test_box_nms_and_grid():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 10, 10]],
                     np.float32)
    # box 1 overlaps box 0 (IoU 0.81), box 3 is box 0 again with a lower score
    assert box_nms(boxes, np.array([0.9, 0.8, 0.7, 0.6]), 0.7).tolist() == [0, 2]
    assert box_nms(boxes, np.array([0.9, 0.8, 0.7, 0.6]), 0.9).tolist() == [0, 1, 2]  # 0.81 ok
    assert box_nms(boxes, np.array([0.1, 0.8, 0.7, 0.6]), 0.85).tolist() == [1, 2, 3]
    g = point_grid(2, 100, 200)
    assert g.tolist() == [[50, 25], [150, 25], [50, 75], [150, 75]]


def test_stability_score():
    logits = torch.tensor([[[5.0, 5.0], [-5.0, -5.0]],  # crisp: same mask at +1 and -1
                           [[0.5, 0.5], [-0.5, -5.0]],  # soft: 0 of 3 pixels above +1
                           [[-5.0, -5.0], [-5.0, -5.0]]])  # empty
    assert stability_score(logits).tolist() == [1.0, 0.0, 0.0]


@needs(FRAME)
def test_fallback_preprocessing_matches_sam_processor(sam_image_dir, image):
    """Our torch preprocessing against the transformers SAM (v1) processor it stands in for."""
    from transformers import AutoImageProcessor

    hf = AutoImageProcessor.from_pretrained(sam_image_dir)
    ours = Preprocessor(image_size=128, resize="longest").pixel_values(image)
    ref = hf(images=image, return_tensors="pt")["pixel_values"]
    assert ours.shape == ref.shape == (1, 3, 128, 128)
    assert (ours[..., 96:, :] == 0).all() and (ref[..., 96:, :] == 0).all()  # padded rows
    assert (ours - ref).abs().mean() < 0.05  # PIL and torch antialiased resizes differ a little


def test_sam2_preprocessing_against_its_processor(image):
    """Against Sam2ImageProcessor where it imports (it needs a working torchvision)."""
    try:
        from transformers import Sam2ImageProcessor

        hf = Sam2ImageProcessor(size={"height": 128, "width": 128})
    except ImportError as e:
        pytest.skip(f"Sam2ImageProcessor needs torchvision here: {e}")
    ours = Preprocessor(image_size=128).pixel_values(image)
    ref = hf(images=image, return_tensors="pt")["pixel_values"]
    assert (ours - ref).abs().mean() < 0.05


def test_points_and_masks_map_to_the_model_frame():
    sq = Preprocessor(image_size=1024)
    assert sq.points(np.array([[640, 480]]), 480, 640).tolist() == [[1024, 1024]]
    lg = Preprocessor(image_size=1024, resize="longest")
    assert lg.points(np.array([[640, 480]]), 480, 640).tolist() == [[1024, 768]]
    m = np.zeros((480, 640), bool)
    m[:240] = True  # top half
    pm = lg.mask(m)
    assert pm.shape == (1, 1, 1024, 1024) and pm[0, 0, :384].all() and not pm[0, 0, 384:].any()
    back = lg.logits_to_frame(pm[0] * 20 - 10, 480, 640) > 0
    assert back[0].numpy().sum() == m.sum()
