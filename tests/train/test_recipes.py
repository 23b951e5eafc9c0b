"""The fine-tuning recipes (segformer, dinov3-lora, sam2-decoder), their losses and saved runs.

Every model is a tiny random one written with ``save_pretrained`` and read back through the
recipes' ``pretrained: <dir>`` path (the hub path without the hub). The data are two 64 x 64
frames of a light floor with dark elliptic "mice" (ids 1, and 1 + 2 in the second frame).
"""

import json

import numpy as np
import pytest
import torch

from rodentseg.errors import RodentsegError
from rodentseg.models import load_model
from rodentseg.models.finetuned import Sam2BoxSegmenter, SemanticSegmenter
from rodentseg.train import recipes  # noqa: F401  (registers the recipes)
from rodentseg.train.losses import dice_loss, focal_loss, median_frequency_weights, sam_loss
from rodentseg.train.recipe import RECIPES
from rodentseg.train.recipes.sam2_decoder import instance_boxes
from rodentseg.train.recipes.segformer import FrameSampler
from tests.annotate.conftest import tiny_sam2_image_config

AUG_OFF = {"hflip": 0, "vflip": 0, "affine": 0, "jitter": 0, "blur": 0}


def _frames() -> list[dict]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    items = []
    for i, blobs in enumerate([[(20, 24, 10, 6)], [(40, 38, 10, 6), (12, 50, 5, 5)]]):
        img = rng.integers(190, 230, (64, 64, 3)).astype(np.uint8)
        mask = np.zeros((64, 64), np.int32)
        for obj_id, (cx, cy, rx, ry) in enumerate(blobs, 1):
            m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
            img[m] = 30
            mask[m] = obj_id
        items.append({"image": img, "mask": mask, "name": f"f{i}", "video": "v"})
    return items


FRAMES = _frames()


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict:
    """Tiny random checkpoints of the three model classes, written by save_pretrained."""
    from transformers import (
        DINOv3ViTConfig,
        DINOv3ViTModel,
        Sam2Model,
        SegformerConfig,
        SegformerForSemanticSegmentation,
    )

    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(0)
    SegformerForSemanticSegmentation(SegformerConfig(
        num_labels=2, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1],
        num_attention_heads=[1, 1, 1, 1], decoder_hidden_size=32)).save_pretrained(root / "seg")
    DINOv3ViTModel(DINOv3ViTConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        patch_size=16, image_size=64, num_register_tokens=2,
        pos_embed_rescale=None)).save_pretrained(root / "dino")
    Sam2Model(tiny_sam2_image_config()).save_pretrained(root / "sam2")
    return {"segformer": root / "seg", "dinov3-lora": root / "dino", "sam2-decoder": root / "sam2"}


OPTIONS = {  # tiny sizes: SegFormer input 64 px, DINOv3 at full resolution (4 x 4 patches)
    "segformer": ({"size": 64}, AUG_OFF),
    "dinov3-lora": ({"input_scale": 1.0, "lora_r": 4, "head_hidden": 16}, AUG_OFF),
    "sam2-decoder": ({"p_box": 1.0}, {}),
}


def _recipe(name, model_dirs, **extra):
    opts, aug = OPTIONS[name]
    r = RECIPES[name]({**opts, "pretrained": str(model_dirs[name]), **extra}, aug, seed=0)
    r.setup(FRAMES, FRAMES[1:])
    return r


def _train(recipe, steps: int, lr: float = 3e-3):
    torch.manual_seed(0)
    model = recipe.build_model()
    batch = next(recipe.batches(2))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        loss = recipe.loss(model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model, losses


@pytest.mark.parametrize("name", ["segformer", "dinov3-lora", "sam2-decoder"])
def test_loss_is_finite_and_drops_on_a_fixed_batch(model_dirs, name):
    _, losses = _train(_recipe(name, model_dirs), 8)
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.95 * losses[0], losses


@pytest.mark.parametrize("name", ["segformer", "dinov3-lora"])
def test_saved_run_loads_and_predicts_like_the_recipe(model_dirs, name, tmp_path):
    recipe = _recipe(name, model_dirs)
    model, _ = _train(recipe, 3)
    recipe.save(model, tmp_path / "run" / "model")
    seg = load_model(str(tmp_path / "run"), "cpu")  # the run directory
    assert isinstance(seg, SemanticSegmenter) and seg.pre.threshold == 0.5
    assert len(seg.weights_sha256) == 64
    frames = np.stack([f["image"] for f in FRAMES])
    probs = seg.predict(frames)
    assert probs.shape == (2, 64, 64) and probs.dtype == np.float32
    assert 0 <= probs.min() and probs.max() <= 1
    np.testing.assert_allclose(probs[1], recipe.predict(model, FRAMES[1]), atol=1e-5)
    grey = load_model(str(tmp_path / "run" / "model"), "cpu").predict(frames[..., 0])
    assert grey.shape == (2, 64, 64)  # grey frames are expanded to RGB


def test_lora_trains_only_adapters_and_head(model_dirs, capsys, tmp_path):
    recipe = _recipe("dinov3-lora", model_dirs)
    model, _ = _train(recipe, 2)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    # 2 layers x 4 projections x (A: 4x32 + B: 32x4); head 32x16+16 + 16x2+2
    assert recipe.param_counts["lora"] == 2 * 4 * 256
    assert recipe.param_counts["head"] == 562
    assert "2,610 trainable" in capsys.readouterr().out
    recipe.save(model, tmp_path / "m")
    keys = set(json.loads((tmp_path / "m" / "config.json").read_text()))
    assert "rodentseg" in keys and "hidden_size" in keys
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "m" / "model.safetensors")
    assert not any("lora" in k for k in saved)  # adapters merged: inference needs no peft
    base = load_file(model_dirs["dinov3-lora"] / "model.safetensors")
    q = "layer.0.attention.q_proj.weight"  # DINOv3 checkpoints drop the encoder's "model."
    assert not torch.equal(saved["backbone.model." + q], base[q])  # the merge changed it


def test_sam2_trains_only_prompt_encoder_and_mask_decoder(model_dirs):
    recipe = _recipe("sam2-decoder", model_dirs)
    net = recipe.build_model()
    frozen = {n: p.detach().clone() for n, p in net.named_parameters() if not p.requires_grad}
    assert any(n.startswith("sam.vision_encoder.") for n in frozen)
    model, _ = _train(recipe, 3)
    assert model is net
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert with_grad <= trainable
    assert {n.split(".")[1] for n in trainable} == {"prompt_encoder", "mask_decoder"}
    assert {n.split(".")[1] for n in with_grad} == {"prompt_encoder", "mask_decoder"}
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n  # encoder and the rest: bit-identical


def test_sam2_point_prompts_and_saved_run(model_dirs, tmp_path):
    recipe = _recipe("sam2-decoder", model_dirs, p_box=0.0, max_points=3)
    batches = recipe.batches(2)
    b = next(batches)
    assert b["points"].shape[:2] == (2, 1) and b["labels"].shape == b["points"].shape[:3]
    assert b["labels"][:, 0, 0].eq(1).all()  # the first point is inside the animal
    assert torch.isfinite(recipe.loss(recipe.build_model(), b))
    model, _ = _train(recipe, 2)
    recipe.save(model, tmp_path / "run" / "model")
    seg = load_model(str(tmp_path / "run"), "cpu")
    assert isinstance(seg, Sam2BoxSegmenter)
    item = FRAMES[1]
    boxes = instance_boxes(item["mask"])
    assert boxes.tolist() == [[30, 32, 51, 45], [7, 45, 18, 56]]
    np.testing.assert_allclose(seg.predict_boxes(item["image"], boxes),
                               recipe.predict(model, item), atol=1e-5)
    assert seg.detector.name == "rodentseg-tiny"
    frames = np.stack([f["image"] for f in FRAMES])
    for frame, prob in zip(frames, seg.predict(frames)):  # SAM 2 masks the detector's boxes
        found = seg.detector.detect(frame)[0]
        expected = (seg.predict_boxes(frame, found) if len(found)
                    else np.zeros(frame.shape[:2], np.float32))
        np.testing.assert_allclose(prob, expected, atol=1e-3)  # batched vs one frame

    class FixedBoxes:  # a detector that finds the two animals of frame 1 everywhere
        def detect(self, frame):
            return boxes, np.ones(2, np.float32)

    seg.detector = FixedBoxes()
    probs = seg.predict(frames)
    assert probs.shape == (2, 64, 64) and probs.dtype == np.float32
    assert 0 <= probs.min() and probs.max() <= 1
    np.testing.assert_allclose(probs[1], recipe.predict(model, item), atol=1e-5)


def test_strict_loading_refuses_foreign_weights(model_dirs, tmp_path):
    recipe = _recipe("segformer", model_dirs)
    recipe.save(recipe.build_model(), tmp_path / "m")
    from safetensors.torch import load_file, save_file

    state = load_file(tmp_path / "m" / "model.safetensors")
    state.pop(next(k for k in state if k.endswith("classifier.weight")))
    save_file(state, tmp_path / "m" / "model.safetensors")
    with pytest.raises(RodentsegError, match="strict loading"):
        load_model(str(tmp_path / "m"), "cpu")


@pytest.mark.parametrize("name,opts,aug,match", [
    ("segformer", {"sise": 64}, {}, "unknown model option.*'size'"),  # typo lists the known
    ("dinov3-lora", {"input_scale": 0}, {}, "input_scale"),  # must be in (0, 2]
    ("sam2-decoder", {}, {"hflip": 0.5}, "cannot be augmented"),  # cached embeddings
    ("sam2-decoder", {"config": {"image_size": 64}}, {}, "random weights only"),
])
def test_bad_options_are_refused(name, opts, aug, match):
    with pytest.raises(RodentsegError, match=match):
        RECIPES[name](opts, aug, seed=0)


def test_missing_checkpoint_says_how_to_start_from_random(tmp_path):
    r = RECIPES["segformer"]({"pretrained": str(tmp_path / "nothing")}, AUG_OFF, seed=0)
    with pytest.raises(RodentsegError, match="model.pretrained=null"):
        r.build_model()


def test_sampler_draws_frames_of_one_size():
    s = FrameSampler([(64, 64), (32, 48), (64, 64), (32, 48), (32, 48)], seed=1)
    for _ in range(20):
        idx = s.draw(3)
        assert len({(64, 64) if i in (0, 2) else (32, 48) for i in idx}) == 1
    state = s.rng.bit_generator.state
    a = s.draw(2)
    s.rng.bit_generator.state = state
    assert (s.draw(2) == a).all()  # resumable


def test_losses():
    t = torch.zeros(2, 8, 8)
    t[:, 2:6, 2:6] = 1
    good, bad = (t * 2 - 1) * 20, -(t * 2 - 1) * 20
    assert dice_loss(good, t).max() < 1e-6
    # inverted mask: 1 - (0 + 1) / (48 + 16 + 1), the +1 smoothing of SAM's dice
    assert dice_loss(bad, t).tolist() == pytest.approx([1 - 1 / 65] * 2, abs=1e-6)
    assert focal_loss(good, t).max() < 1e-6 < focal_loss(bad, t).min()
    # the best of 3 candidates is trained; the IoU head is compared with the true IoU
    logits = torch.stack([bad, good, bad], 1)
    out = sam_loss(logits, torch.tensor([[0.0, 1.0, 0.0]] * 2), t)
    assert out["dice"] < 1e-6 and out["iou"] < 1e-6
    worse = sam_loss(logits, torch.ones(2, 3), t)
    assert worse["iou"] == pytest.approx(2 / 3) and worse["loss"] > out["loss"]
    # rodent on 25% of each frame: median frequency = 0.5 -> weights 0.5/0.75 and 0.5/0.25
    labels = [np.pad(np.ones((4, 4), int), 2)] * 2
    np.testing.assert_allclose(median_frequency_weights(labels, 2), [2 / 3, 2.0], rtol=1e-6)
    with pytest.raises(RodentsegError, match="same shape|one shape"):
        dice_loss(good, t[0])


@pytest.mark.slow  # 6-9 s each: Accelerate, evaluation, checkpoints, plots
@pytest.mark.parametrize("name", ["segformer", "dinov3-lora", "sam2-decoder"])
def test_two_steps_through_the_training_loop_and_resume(model_dirs, small_data, tmp_path, name,
                                                        capsys):
    from rodentseg.train.config import RunConfig
    from rodentseg.train.loop import train

    opts, aug = OPTIONS[name]
    base = {"recipe": name, "data": str(small_data), "out": str(tmp_path / "run"), "steps": 2,
            "batch_size": 2, "warmup": 1, "eval_every": 2, "checkpoint_every": 2,
            "model": {**opts, "pretrained": str(model_dirs[name])}, "augment": aug,
            "split": {"by": "frame", "val_fraction": 0.25}}
    scores = train(RunConfig.from_dict(base), progress=False)
    assert 0 <= scores["val_miou"] <= 1 and scores["trainable_params"] > 0
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    capsys.readouterr()
    # one more (finish) step: resumes at step 2, recipe state too
    train(RunConfig.from_dict(base | {"finish": [{"steps": 1, "lr": 1e-4, "warmup": 1}]}),
          progress=False)
    assert "at step 2" in capsys.readouterr().out
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "2", "3"]
    probs = load_model(str(tmp_path / "run"), "cpu").predict(np.zeros((1, 120, 160, 3), np.uint8))
    assert probs.shape == (1, 120, 160) and probs.dtype == np.float32


def test_semantic_batches_are_augmented_and_resumable(model_dirs):
    recipe = RECIPES["segformer"]({"size": 64}, {}, seed=0)  # empty augment: the defaults
    recipe.setup(FRAMES, FRAMES[1:])
    state = recipe.state_dict()
    b = next(recipe.batches(4))
    assert b["image"].shape == (4, 3, 64, 64) and b["mask"].dtype == torch.int64
    assert 0 <= b["image"].min() and b["image"].max() <= 1
    assert set(b["mask"].unique().tolist()) == {0, 1}
    plain = torch.from_numpy(np.stack([f["image"] for f in FRAMES])).permute(0, 3, 1, 2) / 255
    assert not any(torch.allclose(x, p) for x in b["image"] for p in plain)  # all were changed
    recipe.load_state_dict(state)
    again = next(recipe.batches(4))
    assert torch.equal(again["image"], b["image"]) and torch.equal(again["mask"], b["mask"])
