"""Training on many setups: list data, setups, split by setup, frames of several sizes on one
canvas, per-video backgrounds, balanced sampling (the effects: test_effects.py)."""

import numpy as np
import pytest
import torch
import yaml

from rodentseg.errors import RodentsegError
from rodentseg.train.augment import AugmentConfig, CopyPasteAugment
from rodentseg.train.canvas import (
    DEFAULT_CANVAS,
    animal_lengths,
    group_scale,
    training_groups,
    video_backgrounds,
)
from rodentseg.train.config import RunConfig, load_config
from rodentseg.train.data import LabelledFrames
from rodentseg.train.datasets import (
    dataset_parts,
    describe_split,
    load_datasets,
    setup_name,
    split_dataset,
)
from rodentseg.train.loop import train
from rodentseg.train.scratch import ScratchRecipe
from tests.train.conftest import ellipse_labels, scene
from tests.train.test_loop import _kill_at_step, _same_weights


def _all(root):
    """The three setups of the ``setups`` fixture as one dataset."""
    return load_datasets([root / "dark-open", root / "labels" / "bright-cage",
                          root / "labels" / "empty-box"], data_root=root / "data")


# ---- setups and list data

@pytest.mark.parametrize("path, setup", [
    ("data/labels/sleap-homecage/minimal_top", "sleap-homecage"),  # a part of a labelled set
    ("data/labels/sleap-homecage", "sleap-homecage"),  # the set's folder of parts
    ("data/labels/eztrack-chamber", "eztrack-chamber"),  # a set of one part, no subfolders
    ("../shared/data/openfield-m4s1", "openfield-m4s1"),  # any other dataset: its folder name
    ("/x/labels/a/b/c", "a"),  # parts at any depth
    ("runs/demo/masks.json", "demo"),  # a COCO file: its folder
])
def test_setup_names(path, setup):
    assert setup_name(path) == setup


def test_list_data_tags_each_frame_with_its_setup(setups):
    ds = _all(setups)
    assert len(ds) == 10 + 12 + 8
    counts = {s: ds.setups.count(s) for s in set(ds.setups)}
    assert counts == {"dark-open": 10, "bright-cage": 12, "empty-box": 8}
    # a folder of parts is all of its parts, in name order
    parts = dataset_parts(setups / "labels" / "bright-cage")
    assert [p.name for p in parts] == ["part-a", "part-b"]
    assert sorted(set(v for v, s in zip(ds.videos, ds.setups) if s == "bright-cage")) == [
        "part-a", "part-b"]
    item = ds[12]
    assert item["setup"] == "bright-cage" and item["image"].shape == (120, 160, 3)
    assert ds[-1]["setup"] == "empty-box" and ds[-1]["mask"].max() == 0


def test_list_data_errors(setups, tmp_path):
    with pytest.raises(RodentsegError, match="listed twice"):
        load_datasets([setups / "labels" / "bright-cage",
                       setups / "labels" / "bright-cage" / "part-a"], data_root=setups / "data")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(RodentsegError, match="folder of labels parts"):
        load_datasets([tmp_path / "nothing"])
    with pytest.raises(RodentsegError, match="at least one dataset"):
        load_datasets([])


def test_config_takes_lists_and_the_data_root():
    cfg = load_config(None, ["data=[a/b, data/labels/c]", "split.by=setup",
                             "split.holdout=[vame-bottomup]"])
    assert cfg.data == ["a/b", "data/labels/c"] and cfg.data_root == "../shared/data"
    assert cfg.split.holdout == ["vame-bottomup"]
    assert cfg.to_dict()["split"]["holdout"] == ["vame-bottomup"]
    # one name without brackets is a list of one
    assert load_config(None, ["split.holdout=maushaus"]).split.holdout == ["maushaus"]
    with pytest.raises(RodentsegError, match="data must be a dataset path"):
        load_config(None, ["data=[]"])
    with pytest.raises(RodentsegError, match="split.holdout must be a list"):
        load_config(None, ["split.holdout=[1, 2]"])


# ---- split by setup

def test_split_by_setup_holds_out_every_frame_of_a_setup(setups):
    ds = _all(setups)
    train, val = split_dataset(ds, by="setup", holdout=["bright-cage"])
    d = describe_split(train, val)
    assert d["val_setups"] == {"bright-cage": 12}
    assert d["train_setups"] == {"dark-open": 10, "empty-box": 8}
    assert set(val.setups) == {"bright-cage"} and "bright-cage" not in train.setups
    # by frame: the last 20% of each video of every setup
    train, val = split_dataset(ds, by="frame", val_fraction=0.2)
    assert describe_split(train, val)["val_setups"] == {"bright-cage": 2, "dark-open": 2,
                                                        "empty-box": 2}


@pytest.mark.parametrize("kwargs, match", [
    ({"by": "setup", "holdout": ["vame-bottomup"]},  # a setup the data does not have
     r"holdout setup\(s\) \['vame-bottomup'\] are not in the data; its setups are "
     r"\['bright-cage', 'dark-open', 'empty-box'\]"),
    ({"by": "setup"}, "needs split.holdout"),  # which setups to validate on must be said
    ({"by": "frame", "holdout": ["dark-open"]}, "needs split by 'setup'"),  # holdout is by setup
    ({"by": "setup", "holdout": ["bright-cage", "dark-open", "empty-box"]},  # nothing to train
     "holds out every setup"),
])
def test_split_by_setup_errors(setups, kwargs, match):
    with pytest.raises(RodentsegError, match=match):
        split_dataset(_all(setups), **kwargs)


def _loso(setups, out) -> RunConfig:
    return RunConfig.from_dict({
        "recipe": "scratch-tiny", "out": str(out), "steps": 4, "batch_size": 2,
        "warmup": 1, "eval_every": 2, "checkpoint_every": 2,
        "data": [str(setups / "dark-open"), str(setups / "labels" / "bright-cage"),
                 str(setups / "labels" / "empty-box")],
        "data_root": str(setups / "data"),
        "split": {"by": "setup", "holdout": ["bright-cage"]},
        "augment": {"canvas": [64, 96], "animal_length": [30, 60], "p_touch": 0.5,
                    "p_invert": 0.3, "p_bedding": 0.3, "p_halo": 0.3, "p_reflection": 0.3}})


@pytest.mark.slow  # 15-25 s: two runs (Accelerate, evaluation, checkpoints, plots)
def test_leave_one_setup_out_run_states_its_split_and_resumes(setups, tmp_path, monkeypatch):
    scores = train(_loso(setups, tmp_path / "loso"), progress=False)
    resolved = yaml.safe_load((tmp_path / "loso" / "config.yaml").read_text())
    assert resolved["split"]["holdout"] == ["bright-cage"]
    assert resolved["resolved_split"]["val_setups"] == {"bright-cage": 12}
    assert resolved["resolved_split"]["train_setups"] == {"dark-open": 10, "empty-box": 8}
    assert list(scores["val_miou_by_setup"]) == ["bright-cage"]
    assert scores["train_setups"] == {"dark-open": 10, "empty-box": 8}
    card = (tmp_path / "loso" / "model" / "MODEL_CARD.md").read_text()
    assert "every frame of bright-cage (12 frames) is held out" in card
    assert "`dark-open` (10 / 0)" in card
    # killed after step 3 and started again at the step-2 checkpoint: the same weights
    _kill_at_step(monkeypatch, _loso(setups, tmp_path / "b"), 3)
    train(_loso(setups, tmp_path / "b"), progress=False)
    assert _same_weights(tmp_path / "loso", tmp_path / "b")


# ---- frames of several sizes on one canvas

def test_animal_length_is_the_body_major_axis():
    lab = ellipse_labels(1, (120, 160), 80)[0]
    tail = lab.copy()
    tail[60:62, :] = np.where(tail[60:62, :] == 0, 1, 1)  # a 2 px tail across the frame
    (length,) = animal_lengths(lab)
    assert length == pytest.approx(80, rel=0.05)  # an ellipse's 4 sqrt(l1) is its length
    assert animal_lengths(tail)[0] == pytest.approx(length, rel=0.05)  # the tail is left out
    assert animal_lengths(np.zeros((5, 5), np.int32)) == []


@pytest.mark.parametrize("lengths, target, hw, expected", [
    ([100, 120, 140], (40, 180), (480, 640), 1.0),  # inside the range: as filmed
    ([300, 360], (40, 180), (1048, 1328), 180 / 330),  # too large: median 330 shrunk to 180
    ([20], (40, 180), (240, 320), 2.0),  # too small: grown to the low end
    ([300], None, (1048, 1328), 1.0),  # no range: as filmed
    ([], (40, 180), (240, 320), 1.6),  # negatives smaller than the canvas: grown to cover it
    ([], None, (1048, 1328), 1.0),  # negatives larger than the canvas are never shrunk
])
def test_group_scale(lengths, target, hw, expected):
    assert group_scale(lengths, target, hw, (384, 512)) == pytest.approx(expected)


def test_frames_of_different_sizes_make_batches_on_one_canvas(setups):
    ds = _all(setups)
    groups = training_groups(ds, animal_length=(30, 60), canvas=(64, 96))
    by_setup = {g.setup: g for g in groups}
    assert by_setup["dark-open"].frames.shape == (10, 96, 128)  # 40 px: in range, as filmed
    bright = by_setup["bright-cage"]  # 80 and 60 px animals, median 60: in range
    assert bright.frames.shape[1:] == (120, 160) and bright.frames.dtype == np.uint8
    assert by_setup["empty-box"].frames.shape == (8, 72, 96)  # 48x64 x 1.5: covers 64x96
    assert np.isnan(by_setup["empty-box"].lengths).all()
    shrunk = training_groups(ds, animal_length=(20, 30), canvas=(64, 96))
    small = {g.setup: g for g in shrunk}["bright-cage"]
    # scaled by 30 / 60 (the median of all its animals): part-a's 80 px, part-b's 60 px
    assert np.unique(small.lengths.round()).tolist() == pytest.approx([30, 40], abs=1)
    assert small.frames.shape[1:] == (60, 80)  # 120x160 at 30 / 60
    aug = CopyPasteAugment(groups, AugmentConfig(canvas=(64, 96)), seed=0)
    img, lab = aug(12)
    assert img.shape == lab.shape == (12, 1, 64, 96)
    assert 0 <= img.min() and img.max() <= 1 and set(lab.unique().tolist()) <= {0.0, 1.0}
    assert lab.sum() > 0
    # the default canvas for several sizes; one size keeps its own
    assert CopyPasteAugment(groups, seed=0)(1)[0].shape[-2:] == DEFAULT_CANVAS
    assert CopyPasteAugment(groups[:1], seed=0)(1)[0].shape[-2:] == (96, 128)


def test_real_frames_keep_their_animals_in_view(setups):
    groups = training_groups(_all(setups), canvas=(64, 96))
    c = AugmentConfig(canvas=(64, 96), p_real=1.0, max_paste=0, real_scale=(1.0, 1.0))
    aug = CopyPasteAugment([g for g in groups if g.setup == "bright-cage"], c, seed=0)
    _, lab = aug(16)
    assert (lab.sum((1, 2, 3)) > 0).all()  # a crop of a frame with animals shows one


def test_negatives_are_shown_but_never_pasted(setups):
    groups = training_groups(_all(setups), canvas=(64, 96))
    aug = CopyPasteAugment(groups, AugmentConfig(canvas=(64, 96)), seed=0)
    empty = [i for i in range(len(aug.has_animal)) if not aug.has_animal[i]]
    assert len(empty) == 8
    pasted = torch.cat(aug.animal_pools)
    assert not set(pasted.tolist()) & set(empty)
    assert any(set(p.tolist()) == set(empty) for p in aug.frame_pools)
    with pytest.raises(RodentsegError, match="none of the training frames has a labelled animal"):
        CopyPasteAugment([g for g in groups if g.setup == "empty-box"], seed=0)


def test_balanced_sampling_draws_each_setup_equally(setups):
    ds = _all(setups)
    # 10 + 2 frames: the small setup must not be drawn 2/12 of the time
    keep = [i for i, s in enumerate(ds.setups) if s == "dark-open"] + [
        i for i, s in enumerate(ds.setups) if s == "bright-cage"][:2]
    groups = training_groups(ds.subset(keep), canvas=(64, 96))
    aug = CopyPasteAugment(groups, AugmentConfig(canvas=(64, 96)), seed=0)
    small = set(aug.frame_pools[1].tolist())
    assert len(aug.frame_pools[0]) == 10 and len(small) == 2
    picks = aug._pick(4000, aug.frame_pools).tolist()
    share = np.mean([i in small for i in picks])
    assert 0.46 < share < 0.54, share
    counts = np.bincount([p for p in picks if p in small], minlength=12)[sorted(small)]
    assert counts.min() > 0.4 * counts.sum() / 2  # and its frames about equally often
    # the backgrounds too: one per video, drawn per setup
    assert len(aug.backgrounds) == 2
    bg_picks = aug._pick(2000, aug.bg_pools).tolist()
    assert 0.45 < np.mean([b in set(aug.bg_pools[1].tolist()) for b in bg_picks]) < 0.55


def test_one_background_per_video_without_its_animals():
    lab = ellipse_labels(3, (60, 80), 30)
    lab[1:] = lab[0]  # an animal that never moves: no frame shows the floor under it
    frames = scene(lab, 200, 30)
    frames[2] = scene(lab[2:], 100, 30)[0]  # the third frame is another video
    data = LabelledFrames(["a", "b", "c"], frames, lab > 0, ["v1", "v1", "v2"], "s",
                          np.full(3, 30.0, np.float32))
    bgs = video_backgrounds(data)
    assert len(bgs) == 2 and bgs[0].shape == (60, 80)
    assert bgs[0].min() > 180 / 255  # the animal's place is filled with floor, not fur
    assert abs(bgs[1].mean() - 100 / 255) < 0.05  # the other video's own floor


def test_canvas_and_animal_length_are_fixed_for_a_run():
    recipe = ScratchRecipe({}, {"canvas": [64, 96]})
    with pytest.raises(RodentsegError, match="cannot change in a finish phase"):
        recipe.finish({"canvas": [128, 128]})
    recipe.finish({"p_real": 0.9})  # other keys may change
    with pytest.raises(RodentsegError, match="probability"):
        ScratchRecipe({}, {"p_halo": 2})
    with pytest.raises(RodentsegError, match="animal_length"):
        ScratchRecipe({}, {"animal_length": [50, 10]})
