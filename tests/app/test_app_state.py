"""One user's app session with the default model: clicks, propagation, corrections, review,
save, and isolation between sessions. No browser: the session object is driven directly.

The two-mouse clip is the tracktor video with its mirror image laid over it (the darker pixel
wins), so a second, real-looking mouse moves in the mirrored direction 130 px away.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from rodentseg.app.state import CLICK_MODES, AppModel, AppSession
from rodentseg.errors import RodentsegError
from tests.conftest import TRACKTOR_VIDEO, write_video

A, B = (253, 222), (386, 222)  # the mouse and its mirror image on frame 0 (x, y)


@pytest.fixture(scope="module")
def two_mice(tmp_path_factory):
    if not TRACKTOR_VIDEO.exists():
        pytest.skip(f"test data {TRACKTOR_VIDEO} not present")
    from rodentseg.io.video import read_frames

    _, frames = next(read_frames(TRACKTOR_VIDEO, 24))
    folder = tmp_path_factory.mktemp("root")
    write_video(folder / "two_mice.mp4", np.minimum(frames, frames[:, :, ::-1]))
    return folder


@pytest.fixture(scope="module")
def app_model(default_model):
    return AppModel("rodentseg-tiny", segmenter=default_model, device="cpu")


@pytest.fixture
def session(app_model, two_mice, tmp_path):
    s = AppSession(app_model, two_mice, work_root=tmp_path)
    s.open_path("two_mice.mp4")
    yield s
    s.close()


def centroid_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean())


def test_click_gives_a_mask_and_records_latency(session):
    image = session.click(*A)
    info = session.mask_info()
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert 300 < info["areas"]["1"] < 3000
    assert session.last_latency_ms > 0 and info["latency_ms"] is not None
    assert session.backend.model_calls == 1  # the prefetch of the shown frame served the click
    assert not np.array_equal(image, session.source.frame(0))  # the overlay shows the mask


def test_two_click_box_selects_the_animal_inside(session):
    session.set_mode(CLICK_MODES[2])
    session.click(A[0] - 40, A[1] - 40)
    assert session.pending_corner is not None and session.mask_info()["areas"] == {}
    session.click(A[0] + 40, A[1] + 40)
    fm = session.backend.store.frame_masks(0)
    assert fm.obj_ids.tolist() == [1] and session.pending_corner is None
    xs = np.nonzero(fm.masks[0])[1]
    assert xs.min() >= A[0] - 40 and xs.max() < A[0] + 40
    assert abs(centroid_x(fm.masks[0]) - A[0]) < 15
    with pytest.raises(RodentsegError, match="differ in x and in y"):
        session.click(10, 10)
        session.click(10, 50)


def test_background_click_removes_and_undo_restores(session):
    session.click(*A)
    area = session.mask_info()["areas"]["1"]
    session.new_object()
    session.click(*B)
    session.select_object(1)
    session.set_mode(CLICK_MODES[1])
    session.click(*B)  # animal 1's background click on animal 2: changes nothing of 1
    assert session.mask_info()["areas"]["1"] == area
    session.select_object(2)
    session.click(*B)  # animal 2's own background click removes it
    assert set(session.mask_info()["areas"]) == {"1"}
    session.undo()
    assert set(session.mask_info()["areas"]) == {"1", "2"}


def test_propagation_keeps_ids_and_a_correction_repropagates_from_its_frame(session):
    session.click(*A)
    session.new_object()
    session.click(*B)
    assert session.propagate(14) == 14
    store = session.backend.store
    assert store.frames == list(range(15))
    for t in range(15):
        fm = store.frame_masks(t)
        assert fm.obj_ids.tolist() == [1, 2], t
        assert centroid_x(fm.masks[0]) < 320 < centroid_x(fm.masks[1]), t  # never swapped
    before = [store.frame_masks(t).masks for t in range(7)]
    session.goto(7)  # correction: swap the identities from frame 7 on
    fm7 = store.frame_masks(7)
    pa = [(int(np.nonzero(m)[1].mean()), int(np.nonzero(m)[0].mean())) for m in fm7.masks]
    session.select_object(1)
    session.click(*pa[1])
    session.select_object(2)
    session.click(*pa[0])
    assert session.propagate(7) == 7
    for t in range(7, 15):
        fm = store.frame_masks(t)
        assert centroid_x(fm.masks[0]) > 320 > centroid_x(fm.masks[1]), t
    for t in range(7):  # frames before the correction are untouched
        assert np.array_equal(store.frame_masks(t).masks, before[t])


def test_review_queue_ranks_propagated_frames_and_jumps(session):
    session.click(*A)
    session.propagate(8)
    rows = session.review
    assert sorted(r[1] for r in rows) == list(range(9))
    assert [r[4] for r in rows if r[1] == 0] == ["prompted"]  # the clicked frame ranks last
    assert rows[-1][1] == 0
    t = session.next_review_frame()
    assert t == rows[0][1] and session.frame_idx == t


def test_nothing_to_propagate_without_a_click(session):
    with pytest.raises(RodentsegError, match="nothing to propagate"):
        session.propagate(5)


def test_save_writes_the_output_layout_and_a_training_dataset(session, tmp_path):
    from rodentseg.io.masks import iter_coco_frames
    from rodentseg.train.datasets import load_dataset
    from rodentseg.train.scratch import luma_frames

    session.out = tmp_path / "out"
    session.click(*A)
    session.new_object()
    session.click(*B)
    session.propagate(5)
    saved = session.save()
    assert (saved.first, saved.last) == (0, 5)
    res = saved.result
    labels = [np.asarray(Image.open(res / "masks" / f"{t:06d}.png")) for t in range(6)]
    assert all(set(np.unique(lab)) == {0, 1, 2} for lab in labels)
    coco = list(iter_coco_frames(res / "masks.json"))
    assert [f.frame_idx for f in coco] == list(range(6))
    assert all(f.obj_ids.tolist() == [1, 2] for f in coco)
    header = (res / "tracks.csv").read_text().splitlines()[0]
    assert header.startswith("frame_idx,time_s,track_id")
    run = json.loads((res / "run.json").read_text())
    assert run["command"] == "app" and run["prompted_frames"] == [0] and run["frame_count"] == 6
    for f in ("overlay.mp4", "summary.csv", "review.csv"):
        assert (res / f).stat().st_size > 0
    data = luma_frames(load_dataset(saved.dataset))
    assert data.frames.shape == (6, 480, 640) and data.masks.sum((1, 2)).min() > 600
    assert (tmp_path / "out" / "two_mice" / "masks.json").exists()
    assert (tmp_path / "out" / "two_mice-dataset" / "frames" / "000005.png").exists()


def test_a_save_stopped_midway_leaves_the_last_save_whole(session):
    session.click(*A)
    session.propagate(5)
    first = session.save()
    before = sorted(p.name for p in first.result.rglob("*"))

    def stop(t):
        if t == 3:
            raise KeyboardInterrupt  # the user closed the app while saving

    session.propagate(8)
    with pytest.raises(KeyboardInterrupt):
        session.save(on_frame=stop)
    saved = first.result.parent
    assert sorted(p.name for p in saved.iterdir()) == ["two_mice", "two_mice-dataset"]
    assert sorted(p.name for p in first.result.rglob("*")) == before  # frames 0-5, untouched
    assert json.loads((first.result / "run.json").read_text())["frame_count"] == 6


def test_sessions_do_not_share_anything(app_model, two_mice, tmp_path):
    a = AppSession(app_model, two_mice, work_root=tmp_path)
    b = AppSession(app_model, two_mice, work_root=tmp_path)
    try:
        a.open_path("two_mice.mp4")
        b.open_path("two_mice.mp4")
        a.click(*A)
        a.new_object()
        assert b.mask_info()["areas"] == {} and b.obj_ids == [1]
        assert b.backend.prompts == {} and b.backend.store.frames == []
        assert a.work != b.work and a.backend.store.folder != b.backend.store.folder
        a.close()
        assert not a.work.exists()
        b.click(*B)
        assert b.mask_info()["areas"]["1"] > 300
    finally:
        b.close()


def test_errors_are_clear(session):
    with pytest.raises(RodentsegError, match="outside the data root"):
        session.open_path("../../etc/passwd")
    with pytest.raises(RodentsegError, match="outside the 640x480 frame"):
        session.click(700, 10)
    with pytest.raises(RodentsegError, match="outside the video"):
        session.goto(24)
    with pytest.raises(RodentsegError, match="unknown animal"):
        session.select_object(7)
    with pytest.raises(RodentsegError, match="nothing to save"):
        session.save()
