"""The whole-video run with the default model, and clicks/propagation with a SAM-family model
(the tiny random Sam2Video of tests/annotate, loaded through save_pretrained/from_pretrained)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from rodentseg.app.render import draw_tracks
from rodentseg.app.state import AppModel, AppSession
from tests.annotate.conftest import clip12, sam2_video, sam2_video_dir  # noqa: F401 (fixtures)


@pytest.fixture
def clip_session(default_model, clip12, tmp_path):  # noqa: F811
    s = AppSession(AppModel("rodentseg-tiny", segmenter=default_model, device="cpu"),
                   clip12.parent, work_root=tmp_path)
    s.open_path(clip12.name)
    yield s
    s.close()


@pytest.mark.slow  # 12 frames through `segment` with overlay and readouts: 5-15 s here
def test_whole_video_run_gives_tracks_and_summary(clip_session):
    calls = []
    result = clip_session.run_segment(animals=1, on_batch=calls.append)
    assert calls[-1] == 12  # frames done, for the progress bar
    with (result / "tracks.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and {r["track_id"] for r in rows} == {"1"}
    with (result / "summary.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 1
    frame = clip_session.source.frame(0)
    picture = draw_tracks(frame, result / "tracks.csv")
    assert picture.shape == frame.shape
    x, y = round(float(rows[0]["cx"])), round(float(rows[0]["cy"]))
    blue = np.array([31, 119, 180])  # colour of track 1, drawn along its path
    near = picture[y - 3:y + 4, x - 3:x + 4].reshape(-1, 3).astype(int)
    assert (np.abs(near - blue).sum(1) < 40).any()


@pytest.mark.slow  # tiny SAM 2 load + 2 objects x 6 frames: 7-18 s on this shared machine
def test_sam_backend_clicks_and_bounded_propagation(sam2_video, clip12, tmp_path):  # noqa: F811
    s = AppSession(AppModel("tiny-sam2", video_model=sam2_video, device="cpu"), clip12.parent,
                   work_root=tmp_path)
    try:
        s.open_path(clip12.name)
        assert s.backend.kind == "sam"
        s.click(253, 222)
        s.new_object()
        s.click(400, 300)
        obj = s.backend.session.objects
        assert sorted(obj) == [1, 2] and obj[1].prompts[0].points.tolist() == [[253, 222]]
        assert s.propagate(5) == 5
        store = s.backend.store
        assert store.frames[:6] == list(range(6)) and max(store.frames) == 5  # bounded
        assert all(set(store.get(t)) == {1, 2} for t in range(6))
        s.goto(3)
        s.set_mode("background point")
        s.select_object(1)
        s.click(100, 100)  # a correction on frame 3: a prompted frame of object 1
        assert sorted(obj[1].prompts) == [0, 3] and store.get(3)[1].prompted
        s.goto(0)
        s.undo()
        assert sorted(obj[1].prompts) == [0]
        saved = s.save()
        assert (saved.result / "masks.json").exists() and saved.last == 5
    finally:
        s.close()
