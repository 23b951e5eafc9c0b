"""`rodentseg segment` end to end on a real clip: output layout, round trips, resume, bad input."""

import csv
import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from rodentseg.cli import main
from rodentseg.io.masks import iter_coco_frames
from rodentseg.io.results import TRACK_COLUMNS
from rodentseg.io.video import probe, read_frames
from rodentseg.segment import SegmentOptions, segment_video, summary_line
from rodentseg.types import body_centroid
from tests.conftest import TRACKTOR_VIDEO, needs, write_video


@pytest.fixture(scope="module")
def result(tracktor_clip, default_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg")
    return segment_video(tracktor_clip, out, default_model, SegmentOptions(animals=1),
                         progress=False)


def test_layout(result):
    assert sorted(p.name for p in result.iterdir()) == [
        "heatmap_1.png", "masks", "masks.json", "nwb", "overlay.mp4", "run.json", "summary.csv",
        "swaps.csv", "tracks.csv", "tracks.dlc.csv", "tracks.nc", "tracks.sleap.h5"]
    pngs = sorted(p.name for p in (result / "masks").iterdir())
    assert pngs == [f"{i:06d}.png" for i in range(40)]
    img = Image.open(result / "masks" / "000000.png")
    assert img.mode == "L" and img.size == (640, 480)
    assert not list(result.parent.glob(".*partial*"))


def test_one_mouse_found_in_every_frame(result):
    rows = list(csv.DictReader((result / "tracks.csv").open()))
    assert list(rows[0])[: len(TRACK_COLUMNS)] == TRACK_COLUMNS  # readouts follow
    assert [int(r["frame_idx"]) for r in rows] == list(range(40))
    assert {r["track_id"] for r in rows} == {"1"}
    areas = np.array([int(r["area_px"]) for r in rows])
    assert 200 < areas.min() and areas.max() < 2000  # the tracktor mouse is ~40 px long


def test_png_rle_and_table_agree(result):
    rows = {int(r["frame_idx"]): r for r in csv.DictReader((result / "tracks.csv").open())}
    for fm in iter_coco_frames(result / "masks.json"):
        label = np.asarray(Image.open(result / "masks" / f"{fm.frame_idx:06d}.png"))
        assert (fm.to_label_image() == label).all()  # RLE round trip = PNG, pixel for pixel
        r = rows[fm.frame_idx]
        ys, xs = np.nonzero(label == int(r["track_id"]))
        assert int(r["area_px"]) == len(xs)
        cx, cy = body_centroid(label == int(r["track_id"]))  # the body, tail left out
        assert (float(r["cx"]), float(r["cy"])) == pytest.approx((cx, cy), abs=0.01)
        assert (int(r["x0"]), int(r["y0"]), int(r["x1"]), int(r["y1"])) == (
            xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert float(r["time_s"]) == pytest.approx(fm.frame_idx / 30, abs=1e-3)
    coco = json.loads((result / "masks.json").read_text())
    assert len(coco["annotations"]) == len(rows)
    for ann in coco["annotations"]:  # COCO area and [x, y, w, h] box of each mask
        label = np.asarray(Image.open(result / "masks" / f"{ann['image_id']:06d}.png"))
        ys, xs = np.nonzero(label == ann["track_id"])
        assert ann["area"] == len(xs) and ann["bbox"] == [
            xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_run_json_and_overlay(result, default_model):
    run = json.loads((result / "run.json").read_text())
    assert run["frame_count"] == 40 and run["fps"] == 30.0
    assert run["weights_sha256"] == default_model.weights_sha256
    assert len(run["video_sha256"]) == 64 and run["options"]["animals"] == 1
    assert probe(result / "overlay.mp4").frame_count == 40
    frame = next(read_frames(result / "overlay.mp4", 40))[1]
    label = np.asarray(Image.open(result / "masks" / "000010.png"))
    tinted = frame[10][label > 0].astype(int)
    assert (tinted[:, 2] - tinted[:, 0]).mean() > 20  # track 1 is drawn blue over a grey mouse


def test_rerun_skips_finished(result, tracktor_clip, default_model, capsys):
    before = (result / "run.json").stat().st_mtime_ns
    segment_video(tracktor_clip, result.parent, default_model, SegmentOptions(animals=1))
    assert (result / "run.json").stat().st_mtime_ns == before
    assert "already done" in capsys.readouterr().out


def test_other_options_need_overwrite(tracktor_clip, default_model, tmp_path):
    first = segment_video(tracktor_clip, tmp_path, default_model, SegmentOptions(overlay=False),
                          progress=False)
    snapshot = (first / "run.json").read_text()
    code = main(["segment", str(tracktor_clip), "--out", str(tmp_path), "--quiet"])
    assert code == 2 and (first / "run.json").read_text() == snapshot  # nothing lost
    code = main(["segment", str(tracktor_clip), "--out", str(tmp_path), "--quiet", "--overwrite"])
    assert code == 0 and (first / "overlay.mp4").is_file()
    assert [p.name for p in tmp_path.glob(".*")] == [".tracktor40.lock"]  # empty, kept


def test_killed_run_is_redone(tracktor_clip, default_model, tmp_path):
    stale = tmp_path / f".{tracktor_clip.stem}.partial"
    (stale / "masks").mkdir(parents=True)
    (stale / "masks" / "000000.png").write_bytes(b"half-written")
    out = segment_video(tracktor_clip, tmp_path, default_model, SegmentOptions(overlay=False),
                        progress=False)
    assert not stale.exists() and len(list((out / "masks").iterdir())) == 40


def test_failure_midway_leaves_no_result(tracktor_clip, default_model, tmp_path, monkeypatch):
    from rodentseg.io import results

    calls = {"n": 0}
    real = results.write_label_png

    def flaky(path, fm):
        calls["n"] += 1
        if calls["n"] > 20:
            raise OSError(28, "No space left on device")
        real(path, fm)

    monkeypatch.setattr(results, "write_label_png", flaky)
    with pytest.raises(OSError):
        segment_video(tracktor_clip, tmp_path, default_model, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == [".tracktor40.lock"]  # empty, kept


def test_cli_bad_inputs(tracktor_clip, tmp_path, capsys):
    cases = {
        "missing": (["segment", str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "o")],
                    "nope.mp4 does not exist; expected a video file"),
        "not a video": (["segment", str(tmp_path / "notes.mp4"), "--out", str(tmp_path / "o")],
                        "not a video"),
        "out is a file": (["segment", str(tracktor_clip), "--out", str(tmp_path / "f" / "x")],
                          "cannot write to output directory"),
        "unknown model": (["segment", str(tracktor_clip), "--out", str(tmp_path / "o"),
                           "--model", "mousenet"], "expected one of \\['rodentseg-tiny'\\]"),
    }
    (tmp_path / "notes.mp4").write_text("hello")
    (tmp_path / "f").write_text("a file where a folder should be")
    for name, (argv, message) in cases.items():
        assert main(argv + ["--quiet"]) == 2, name
        err = capsys.readouterr().err
        assert pytest.importorskip("re").search(message, err), (name, err)
        assert "Traceback" not in err


def test_cli_bad_video_does_not_stop_the_others(tracktor_clip, tmp_path, capsys):
    good = tmp_path / "good.mp4"
    shutil.copy(tracktor_clip, good)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(tracktor_clip.read_bytes()[:5000])
    code = main(["segment", str(bad), str(good), "--out", str(tmp_path / "o"), "--quiet",
                 "--no-overlay"])
    err = capsys.readouterr().err
    assert code == 2 and "1 of 2 videos failed" in err and "bad.mp4" in err
    assert (tmp_path / "o" / "good" / "run.json").is_file()
    assert not (tmp_path / "o" / "bad").exists()


@pytest.mark.parametrize("argv,message", [
    (["--animals", "0"], "positive integer"),   # argparse rejects before anything runs
    (["--batch-size", "x"], "positive integer"),
])
def test_cli_bad_options(tracktor_clip, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        main(["segment", str(tracktor_clip), "--out", str(tmp_path)] + argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.fixture(scope="module")
def specks_clip(tmp_path_factory):
    """52 tracktor frames where the tracker finds more than the mouse: 118-149 (a dark fold
    outside the arena, a track of 12 frames in this clip) then 365-384 (a cut-off tail tip on
    373-374, clip frames 40-41)."""
    frames = []
    for first, batch in read_frames(TRACKTOR_VIDEO, 8):
        frames += [f for k, f in enumerate(batch)
                   if 118 <= first + k < 150 or 365 <= first + k < 385]
        if first + len(batch) >= 385:
            break
    return write_video(tmp_path_factory.mktemp("clips") / "tracktor_specks.mp4", np.stack(frames))


@needs(TRACKTOR_VIDEO)
@pytest.mark.slow
def test_demo_run_finds_one_animal_and_says_so(specks_clip, tmp_path, capsys):
    """`rodentseg segment VIDEO --out DIR`, no --animals: one mouse, specks gone, one line."""
    assert main(["segment", str(specks_clip), "--out", str(tmp_path), "--quiet",
                 "--no-overlay"]) == 0
    out, err = capsys.readouterr()
    result = tmp_path / "tracktor_specks"
    assert re.fullmatch(rf"tracktor_specks: 1 animal \(\d+ other tracks merged or dropped\), "
                        rf"52 frames in \d+ s \([\d.]+ frames/s\) -> {re.escape(str(result))}\n",
                        out), out
    assert "frame/s" not in err  # --quiet: no progress bar, the summary line still printed
    rows = list(csv.DictReader((result / "tracks.csv").open()))
    assert {r["track_id"] for r in rows} == {"1"} and len(rows) == 52
    run = json.loads((result / "run.json").read_text())
    assert run["animals_found"] == 1 and run["tracks_not_animals"] >= 2
    assert run["masks_merged"] >= 1 and run["masks_dropped"] >= 10  # tail tip; the fold
    for f in (40, 41):  # the tail tip's pixels are the mouse's in every output
        label = np.asarray(Image.open(result / "masks" / f"{f:06d}.png"))
        assert set(np.unique(label)) == {0, 1} and int(rows[f]["area_px"]) == (label == 1).sum()
    assert all((fm.to_label_image() == np.asarray(
        Image.open(result / "masks" / f"{fm.frame_idx:06d}.png"))).all()
        for fm in iter_coco_frames(result / "masks.json"))
    assert summary_line(result) == out.strip()


def test_summary_line_counts_animals(tmp_path):
    """The line is made from run.json; a result made before it counted animals uses
    summary.csv."""
    res = tmp_path / "cage3"
    res.mkdir()
    run = {"frame_count": 900, "timings": {"total_s": 30.0}, "animals_found": 2,
           "tracks_not_animals": 0}
    (res / "run.json").write_text(json.dumps(run))
    assert summary_line(res) == f"cage3: 2 animals, 900 frames in 30 s (30.0 frames/s) -> {res}"
    del run["animals_found"]
    (res / "run.json").write_text(json.dumps(run))
    (res / "summary.csv").write_text("track_id,frames\n1,900\n")
    assert summary_line(res).startswith("cage3: 1 animal, 900 frames")
