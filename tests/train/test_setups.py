"""Training on many setups: list data, setups and the split by setup."""

import pytest

from rodentseg.errors import RodentsegError
from rodentseg.train.config import load_config
from rodentseg.train.datasets import (
    dataset_parts,
    describe_split,
    load_datasets,
    setup_name,
    split_dataset,
)


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
