"""The shared training loop: run layout, resume after a kill, config errors, accumulation."""

from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from rodentseg.cli import main
from rodentseg.errors import RodentsegError
from rodentseg.models import load_model
from rodentseg.train.augment import CopyPasteAugment
from rodentseg.train.config import RunConfig, load_config
from rodentseg.train.loop import lr_at, phase_at, recipe_factory, train
from rodentseg.train.scratch import ScratchRecipe
from tests.conftest import REPO


def _cfg(data, out, **kw) -> RunConfig:
    base = {"recipe": "scratch-tiny", "data": str(data), "out": str(out), "steps": 4,
            "batch_size": 2, "warmup": 1, "eval_every": 2, "checkpoint_every": 2,
            "split": {"by": "frame", "val_fraction": 0.25}}
    return RunConfig.from_dict(base | kw)


def _record_p_real(monkeypatch) -> list[float]:
    """The ``p_real`` of every batch drawn from now on, in order."""
    drawn = []
    real_call = CopyPasteAugment.__call__

    def spy(self, n):
        drawn.append(self.cfg.p_real)
        return real_call(self, n)

    monkeypatch.setattr(CopyPasteAugment, "__call__", spy)
    return drawn


def _same_weights(run_a: Path, run_b: Path) -> bool:
    """Whether two runs wrote bit-identical model weights."""
    a = load_file(run_a / "model" / "model.safetensors")
    b = load_file(run_b / "model" / "model.safetensors")
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_layout_and_model_loads(small_data, tmp_path):
    scores = train(_cfg(small_data, tmp_path / "run"), progress=False)
    run = tmp_path / "run"
    for f in ("config.yaml", "metrics.csv", "curve.png", "sample.png", "scores.yaml",
              "checkpoint/step.json", "checkpoint/model.safetensors", "model/config.json",
              "model/model.safetensors", "model/MODEL_CARD.md", "model/SHA256SUMS"):
        assert (run / f).is_file(), f
    assert 0 <= scores["val_miou"] <= 1 and 0 <= scores["val_jf"] <= 1
    assert scores["train_frames"] == 6 and len(scores["val_frames"]) == 2
    assert scores["trainable_params"] == scores["total_params"] > 100_000
    resolved = yaml.safe_load((run / "config.yaml").read_text())
    assert resolved["recipe"] == "scratch-tiny" and resolved["split"]["by"] == "frame"
    assert resolved["resolved_split"]  # the split actually used is stated with the run
    # --model accepts the run directory and its model/ folder
    assert load_model(str(run), "cpu").pre.upscale == 8
    assert load_model(str(run / "model"), "cpu").pre.upscale == 8


def _kill_at_step(monkeypatch, cfg: RunConfig, step: int) -> None:
    """Train ``cfg`` until its ``step``-th loss (1-based), where the run is killed."""
    real_loss = ScratchRecipe.loss
    calls = {"n": 0}

    def killed(self, model, batch):
        calls["n"] += 1
        if calls["n"] == step:
            raise KeyboardInterrupt
        return real_loss(self, model, batch)

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(ScratchRecipe, "loss", killed)
        train(cfg, progress=False)


def test_resume_after_kill_equals_uninterrupted(small_data, tmp_path, monkeypatch):
    train(_cfg(small_data, tmp_path / "a"), progress=False)
    _kill_at_step(monkeypatch, _cfg(small_data, tmp_path / "b"), 3)
    assert yaml.safe_load((tmp_path / "b/checkpoint/step.json").read_text())["step"] == 2
    train(_cfg(small_data, tmp_path / "b"), progress=False)  # resumes from the step-2 checkpoint
    assert _same_weights(tmp_path / "a", tmp_path / "b")
    # the optimiser state was restored too: its moments match the uninterrupted run's
    oa = torch.load(tmp_path / "a/checkpoint/optimizer.bin", weights_only=False)["state"]
    ob = torch.load(tmp_path / "b/checkpoint/optimizer.bin", weights_only=False)["state"]
    assert all(torch.equal(oa[k]["exp_avg"], ob[k]["exp_avg"]) for k in oa)
    rows = (tmp_path / "b" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "2", "4"]


def test_gradient_accumulation_runs_and_counts_steps(small_data, tmp_path):
    scores = train(_cfg(small_data, tmp_path / "acc", steps=2, grad_accum=2, eval_every=0,
                        checkpoint_every=0), progress=False)
    assert scores["steps"] == 2
    rows = (tmp_path / "acc" / "metrics.csv").read_text().splitlines()[1:]
    assert rows[-1].split(",")[0] == "2"


def test_finish_phase_restarts_the_lr_and_switches_the_batches(small_data, tmp_path,
                                                                monkeypatch):
    finish = {"steps": 3, "lr": 0.01, "warmup": 1, "augment": {"p_real": 1.0}}
    cfg = _cfg(small_data, tmp_path / "a", finish=finish)
    assert cfg.total_steps == 7
    assert lr_at(3, cfg) < lr_at(2, cfg) < cfg.lr  # the main phase decays towards 0 ...
    assert lr_at(4, cfg) == 0.01 and 0 < lr_at(6, cfg) < 0.01  # ... the finish phase restarts
    drawn = _record_p_real(monkeypatch)
    scores = train(cfg, progress=False)
    assert scores["steps"] == 7 and drawn == [0.35] * 4 + [1.0] * 3
    card = (tmp_path / "a/model/MODEL_CARD.md").read_text()
    assert "finish phase of 3 steps restarting at lr 0.01" in card and "p_real 1.0" in card
    # killed in the finish phase and started again: the same weights as without the kill
    _kill_at_step(monkeypatch, _cfg(small_data, tmp_path / "b", finish=finish), 6)
    drawn.clear()
    train(_cfg(small_data, tmp_path / "b", finish=finish), progress=False)  # resumes at step 4
    assert drawn == [1.0] * 3
    assert _same_weights(tmp_path / "a", tmp_path / "b")


def test_finish_phases_run_in_order_and_resume_across_them(small_data, tmp_path, monkeypatch):
    finish = [{"steps": 2, "lr": 0.01, "warmup": 1, "augment": {"p_real": 1.0}},
              {"steps": 0, "augment": {"p_real": 0.5}},  # skipped
              {"steps": 3, "lr": 0.005, "warmup": 1, "augment": {"p_real": 0.9}},
              {"steps": 1, "lr": 0.001, "warmup": 1}]  # the run's own augment again
    cfg = _cfg(small_data, tmp_path / "a", finish=finish)
    assert cfg.total_steps == 10
    assert [phase_at(s, cfg) for s in (3, 4, 5, 6, 8, 9, 10)] == [
        (0, 3), (1, 0), (1, 1), (3, 0), (3, 2), (4, 0), (4, 1)]
    assert [lr_at(s, cfg) for s in (4, 6, 9)] == [0.01, 0.005, 0.001]
    drawn = _record_p_real(monkeypatch)
    train(cfg, progress=False)
    assert drawn == [0.35] * 4 + [1.0] * 2 + [0.9] * 3 + [0.35]
    card = (tmp_path / "a/model/MODEL_CARD.md").read_text()
    assert card.count("finish phase of") == 3 and "p_real 0.5" not in card
    assert "3 steps restarting at lr 0.005 (warm-up 1, cosine) with the previous phase's " \
           "augmentation and p_real 0.9;" in card and "with the run's own augmentation" in card
    # killed after step 9 and started again at the step-8 checkpoint, inside the third phase:
    # the same batches and the same weights
    _kill_at_step(monkeypatch, _cfg(small_data, tmp_path / "b", finish=finish), 10)
    drawn.clear()
    train(_cfg(small_data, tmp_path / "b", finish=finish), progress=False)
    assert drawn == [0.9, 0.35]
    assert _same_weights(tmp_path / "a", tmp_path / "b")


def test_finish_phase_errors(small_data, tmp_path):
    with pytest.raises(RodentsegError, match="unknown finish key.*stepz"):
        load_config(None, ["finish.stepz=3"])
    with pytest.raises(RodentsegError, match="finish.steps must be >= 0"):
        load_config(None, ["finish.steps=-1"])
    with pytest.raises(RodentsegError, match=r"finish\[1\].steps must be >= 0"):
        load_config(None, ["finish=[{steps: 1}, {steps: -1}]"])
    with pytest.raises(RodentsegError, match="finish must be a mapping .* or a list"):
        load_config(None, ["finish=3"])
    with pytest.raises(RodentsegError, match="unknown augment key.*p_rael"):
        train(_cfg(small_data, tmp_path / "r", finish={"steps": 1, "augment": {"p_rael": 1}}),
              progress=False)
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_config_errors(tmp_path):
    with pytest.raises(RodentsegError, match="unknown config key.*stepz"):
        load_config(None, ["stepz=3"])
    with pytest.raises(RodentsegError, match="unknown split key"):
        load_config(None, ["split.bi=video"])
    with pytest.raises(RodentsegError, match="key=value"):
        load_config(None, ["steps"])
    with pytest.raises(RodentsegError, match="does not exist"):
        load_config(str(tmp_path / "none.yaml"), [])
    with pytest.raises(RodentsegError, match="mixed_precision"):
        load_config(None, ["mixed_precision=fp8"])
    with pytest.raises(RodentsegError, match="unknown recipe 'segformerr'.*scratch-tiny"):
        recipe_factory("segformerr")
    cfg = load_config(str(REPO / "configs/scratch-tiny.yaml"),
                      ["steps=7", "augment.scale=[0.5, 1.0]"])
    assert cfg.steps == 7 and cfg.augment["scale"] == [0.5, 1.0] and cfg.batch_size == 8
    # values of the wrong type are named (YAML 1.1 reads 1e-3 as text: it is taken as a number)
    for item, match in [("steps=abc", "steps must be a whole number; got 'abc'"),
                        ("steps=2.5", "steps must be a whole number"),
                        ("lr=fast", "lr must be a finite number; got 'fast'"),
                        ("lr=.inf", "lr must be a finite number"),
                        ("split.val_fraction=[1]", "split.val_fraction must be a finite number"),
                        ("finish={steps: x}", r"finish.steps must be a whole number"),
                        ("recipe=3", "recipe must be text")]:
        with pytest.raises(RodentsegError, match=match):
            load_config(None, [item])
    cfg = load_config(None, ["lr=1e-3", "steps=4.0", "split.seed='2'"])
    assert cfg.lr == 0.001 and cfg.steps == 4 and cfg.split.seed == 2


def test_cli_reports_a_bad_key(tmp_path, capsys):
    assert main(["train", "--config", str(REPO / "configs/scratch-tiny.yaml"),
                 "--set", "augment.scael=[0.5,1]", "--set", f"out={tmp_path}/r"]) == 2
    assert "unknown augment key" in capsys.readouterr().err


def test_train_without_the_training_stack_says_what_to_install(tmp_path, capsys, monkeypatch):
    import rodentseg.cli as cli

    real = cli._module_exists
    monkeypatch.setattr(cli, "_module_exists", lambda name: name != "peft" and real(name))
    assert main(["train", "--config", str(REPO / "configs/scratch-tiny.yaml"),
                 "--set", f"out={tmp_path}/r"]) == 2
    err = capsys.readouterr().err
    assert "needs peft" in err and 'pip install "rodentseg[train]"' in err
    assert not (tmp_path / "r").exists()


def test_init_starts_from_given_weights(small_data, tmp_path):
    first = tmp_path / "first"
    train(_cfg(small_data, first), progress=False)
    # lr 0: the run must end with exactly the parameters it started from (BatchNorm's running
    # statistics still move)
    train(_cfg(small_data, tmp_path / "again", init=str(first / "model"), lr=0.0), progress=False)
    train(_cfg(small_data, tmp_path / "scratch", lr=0.0), progress=False)
    a, b, c = (load_file(r / "model" / "model.safetensors")
               for r in (first, tmp_path / "again", tmp_path / "scratch"))
    params = [k for k in a if "running_" not in k and "num_batches" not in k]
    assert len(params) > 50
    assert all(torch.equal(a[k], b[k]) for k in params)
    card = (tmp_path / "again" / "model" / "MODEL_CARD.md").read_text()
    assert f"starting from the weights of `{first / 'model'}`" in card
    assert "starting from" not in (first / "model" / "MODEL_CARD.md").read_text()
    assert not any(torch.equal(a[k], c[k]) for k in params if k.endswith("weight"))


def test_init_errors(small_data, tmp_path):
    with pytest.raises(RodentsegError, match="model.safetensors"):
        train(_cfg(small_data, tmp_path / "a", init=str(tmp_path / "none")), progress=False)
    other = tmp_path / "other"
    train(_cfg(small_data, other, model={"hidden_sizes": [8, 16, 32, 64]}), progress=False)
    with pytest.raises(RodentsegError, match="does not fit"):
        train(_cfg(small_data, tmp_path / "b", init=str(other / "model")), progress=False)


def test_a_changed_config_is_not_resumed(small_data, tmp_path, capsys):
    run = tmp_path / "run"
    train(_cfg(small_data, run), progress=False)
    # the same run again: nothing to do, no error; eval_every may change
    train(_cfg(small_data, run, eval_every=4), progress=False)
    with pytest.raises(RodentsegError, match="differs in lr, seed"):
        train(_cfg(small_data, run, lr=0.01, seed=3), progress=False)
    # more finish phases after the old ones extend the run
    longer = {"steps": 2, "lr": 0.0005, "warmup": 1}
    train(_cfg(small_data, run, finish=[longer]), progress=False)
    assert yaml.safe_load((run / "scores.yaml").read_text())["steps"] == 6
    with pytest.raises(RodentsegError, match="differs in finish"):
        train(_cfg(small_data, run, finish=[longer | {"lr": 0.001}]), progress=False)
    # --overwrite starts afresh
    assert main(["train", "--config", str(REPO / "configs/scratch-tiny.yaml"), "--quiet",
                 "--set", f"data={small_data}", "--set", f"out={run}", "--set", "steps=2",
                 "--set", "batch_size=2", "--set", "eval_every=2", "--set", "finish=[]",
                 "--set", "split.val_fraction=0.25", "--overwrite"]) == 0
    assert yaml.safe_load((run / "scores.yaml").read_text())["steps"] == 2
    # ... but never deletes a folder that is not a run
    other = tmp_path / "photos"
    (other / "a").mkdir(parents=True)
    with pytest.raises(RodentsegError, match="not a training run folder"):
        train(_cfg(small_data, other), progress=False, overwrite=True)
    assert (other / "a").is_dir()
