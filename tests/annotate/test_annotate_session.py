"""VideoSession mechanics on tiny random SAM-family models and real frames.

The models are random, so no test asks for a good mask: they check shapes, which frames are
computed and in what order, what a correction may and may not change, memory pruning, and how
often the image encoder runs.
"""

import numpy as np
import pytest
import torch

from rodentseg.annotate import load_video_model
from rodentseg.errors import RodentsegError

MOUSE = [[253.0, 221.0]]  # the tracktor mouse on the first frames (x, y)


def _run(session, *args, **kw):
    return [(t, ids.copy(), masks.copy()) for t, ids, masks in session.propagate(*args, **kw)]


def _all(session):
    return {t: session.results(t) for t in range(session.n_frames)}


def test_propagate_both_directions_every_frame_once(sam2_video, clip12):
    with sam2_video.start(clip12) as s:
        s.add_prompt(5, 1, points=MOUSE, labels=[1])
        s.add_prompt(5, 2, box=[100, 100, 200, 180])
        out = _run(s, 5, "both")
        order = [t for t, _, _ in out]
        assert order == [5, 6, 7, 8, 9, 10, 11, 4, 3, 2, 1, 0]  # forward first, then backward
        for t, ids, masks in out:
            assert ids.tolist() == [1, 2] and ids.dtype == np.int64
            assert masks.shape == (2, 480, 640) and masks.dtype == bool
        # propagated masks are not copies of the prompted frame's masks
        assert not np.array_equal(out[1][2], out[0][2])
        assert s.model_calls == 2 + 2 * 11  # two prompts, then 11 frames x 2 objects


def test_two_objects_keep_separate_ids(sam2_video, clip12):
    with sam2_video.start(clip12) as s:
        a = s.add_prompt(0, 7, points=MOUSE)
        b = s.add_prompt(0, 3, box=[400, 300, 480, 380])
        assert a.obj_ids.tolist() == [7] and b.obj_ids.tolist() == [3, 7]
        assert np.array_equal(b.masks[1], a.masks[0])  # adding object 3 left object 7 alone
        for t, ids, masks in s.propagate(0, "forward"):
            assert ids.tolist() == [3, 7]
            assert not np.array_equal(masks[0], masks[1])
        # the same object alone gives the same masks: objects do not leak into each other
        with sam2_video.start(clip12) as alone:
            alone.add_prompt(0, 7, points=MOUSE)
            for t, ids, masks in alone.propagate(0, "forward"):
                assert np.array_equal(masks[0], s.results(t).masks[1])


def test_correction_changes_nothing_before_k_and_sticks(sam2_video, clip12):
    fix = np.zeros((480, 640), bool)
    fix[200:250, 230:290] = True  # the corrected mask at frame k
    k = 7
    with sam2_video.start(clip12) as s:
        s.add_prompt(2, 1, points=MOUSE)
        _run(s)
        before = _all(s)
        redone = [t for t, _, _ in s.correct(k, 1, mask=fix)]
        assert redone == list(range(k, 12))  # forward from k only: away from origin 2
        after = _all(s)
        for t in range(k):
            assert np.array_equal(after[t].masks, before[t].masks), t
        assert np.array_equal(after[k].masks[0], fix)  # the correction is the mask at k
        assert any(not np.array_equal(after[t].masks, before[t].masks) for t in range(k + 1, 12))
        _run(s, 2, "both")  # a later full pass from the origin
        again = _all(s)
        for t in range(k, 12):
            assert np.array_equal(again[t].masks, after[t].masks), t
        assert s.details(k)[1].prompted


def test_correction_before_origin_goes_backward(sam2_video, clip12):
    with sam2_video.start(clip12) as s:
        s.add_prompt(8, 1, points=MOUSE)
        _run(s)
        before = _all(s)
        redone = [t for t, _, _ in s.correct(3, 1, points=[[250, 220], [100, 100]],
                                             labels=[1, 0])]
        assert redone == [3, 2, 1, 0]
        after = _all(s)
        for t in range(4, 12):
            assert np.array_equal(after[t].masks, before[t].masks), t


def test_pruned_session_matches_unpruned_and_stays_small(sam2_video, tracktor_clip):
    kept = {}
    for prune in (False, True):
        with sam2_video.start(tracktor_clip, prune=prune) as s:
            s.add_prompt(0, 1, points=MOUSE)
            kept[prune] = [m for _, _, m in _run(s, 0, "forward")]
            state = s.objects[1].state.output_dict_per_obj[0]
            n_outputs = len(state["non_cond_frame_outputs"])
            frames = len(s.objects[1].state.processed_frames or {})
            high_res = sum("high_res_masks" in o for o in state["non_cond_frame_outputs"].values())
            if prune:
                assert n_outputs <= sam2_video.memory_window + 1 and frames == 0 and high_res == 0
            else:
                assert n_outputs == 39 and frames == 39 and high_res == 39  # every frame kept
    assert len(kept[True]) == 40
    for a, b in zip(kept[False], kept[True]):
        assert np.array_equal(a, b)


def test_image_encoder_runs_once_per_frame(sam2_video, clip12):
    calls = []
    hook = sam2_video.model.vision_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        with sam2_video.start(clip12) as s:
            for oid, x in ((1, 250), (2, 400), (3, 500)):
                s.add_prompt(4, oid, points=[[x, 200]])
            assert len(calls) == 1  # three prompts on one frame: one encoder pass
            _run(s, 4, "both")
        assert len(calls) == 12  # 3 objects x 12 frames, one encoder pass per frame
    finally:
        hook.remove()


@pytest.mark.parametrize("family", [
    "edgetam_video_dir",  # EdgeTamVideoModel with a Hiera backbone (RepViT needs timm)
    "sam3_tracker_dir",  # Sam3TrackerVideoModel, ViT backbone at 112 px
])
def test_other_video_families(family, request, clip12):
    model = load_video_model(str(request.getfixturevalue(family)), "cpu")
    with model.start(clip12) as s:
        s.add_prompt(3, 1, points=MOUSE)
        s.add_prompt(3, 2, box=[100, 100, 200, 180])
        out = _run(s, 3, "both")
    assert sorted(t for t, _, _ in out) == list(range(12))
    assert all(m.shape == (2, 480, 640) for _, _, m in out)


def test_consistency_check_fills_fb_iou(sam2_video, clip12):
    with sam2_video.start(clip12) as s:
        s.add_prompt(3, 1, points=MOUSE)
        _run(s)
        before = _all(s)
        n = s.check_consistency()
        assert n == 7 + 2  # forward run 3..11 checks 10..4; backward run 2..0 checks 1..2
        fb = {t: s.details(t)[1].fb_iou for t in range(12)}
        checked = sorted(t for t, v in fb.items() if not np.isnan(v))
        assert checked == [1, 2, 4, 5, 6, 7, 8, 9, 10]  # not the seeds 0, 11, nor prompted 3
        assert all(0 <= fb[t] <= 1 for t in checked)
        for t in range(12):  # the check changes no mask
            assert np.array_equal(s.results(t).masks, before[t].masks)


@pytest.mark.parametrize("kwargs,match", [
    (dict(frame_idx=12, obj_id=1, points=MOUSE), "outside the video"),  # 12 frames: 0..11
    (dict(frame_idx=0, obj_id=1, points=[[700, 10]]), "outside the 640x480 frame"),
    (dict(frame_idx=0, obj_id=1, points=MOUSE, labels=[1, 0]), "one 1 .* per point"),
    (dict(frame_idx=0, obj_id=1, box=[50, 50, 10, 80]), "x1 > x0"),
    (dict(frame_idx=0, obj_id=1, mask=np.zeros((480, 640), bool)), "empty"),
    (dict(frame_idx=0, obj_id=1, mask=np.ones((48, 64), bool)), "frame size"),
    (dict(frame_idx=0, obj_id=1, mask=np.ones((480, 640), bool), points=MOUSE), "stands alone"),
    (dict(frame_idx=0, obj_id=0, points=MOUSE), "between 1 and 255"),
    (dict(frame_idx=0, obj_id=1), "no prompt"),
])
def test_bad_prompts(sam2_video, clip12, kwargs, match):
    with sam2_video.start(clip12) as s:
        with pytest.raises(RodentsegError, match=match):
            s.add_prompt(**kwargs)
        assert s.obj_ids == [] and s.model_calls == 0


def test_propagate_and_correct_need_objects(sam2_video, clip12):
    with sam2_video.start(clip12) as s:
        with pytest.raises(RodentsegError, match="prompt an object first"):
            next(s.propagate())
        with pytest.raises(RodentsegError, match="cannot correct object 4"):
            s.correct(2, 4, points=MOUSE)


def test_loader_errors(tmp_path, gdino_dir):
    with pytest.raises(RodentsegError, match="unknown model 'sam9'"):
        load_video_model("sam9", "cpu")
    with pytest.raises(RodentsegError, match="cannot track video"):
        load_video_model(str(gdino_dir), "cpu")
    (tmp_path / "config.json").write_text((gdino_dir / "config.json").read_text())
    with pytest.raises(RodentsegError):  # a config without weights
        load_video_model(str(tmp_path), "cpu")


def test_strict_loading_rejects_missing_weights(sam2_video_dir, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(sam2_video_dir, tmp_path / "m")
    sd = load_file(tmp_path / "m" / "model.safetensors")
    sd.pop(next(k for k in sd if k.startswith("memory_attention")))
    save_file(sd, tmp_path / "m" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(RodentsegError, match="missing_keys"):
        load_video_model(str(tmp_path / "m"), "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16(sam2_video_dir, clip12):
    model = load_video_model(str(sam2_video_dir), "cuda")
    with model.start(clip12) as s:
        s.add_prompt(0, 1, points=MOUSE)
        out = _run(s, 0, "forward")
    assert len(out) == 12 and out[0][2].shape == (1, 480, 640)
