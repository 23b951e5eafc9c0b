"""Arena, zones and the batch summary: hand-computed time in zone, entries and latency."""

import csv
import json
import math

import numpy as np
import pytest
from PIL import Image

from rodentseg.cli import main
from rodentseg.errors import RodentsegError
from rodentseg.io.video import VideoWriter
from rodentseg.track.zones import Zone, centre_zones, find_arena, load_zones, zone_readouts

SQUARE = Zone("box", np.array([[0, 0], [100, 0], [100, 100], [0, 100]], float))
FPS = 10.0


def test_readouts_by_hand():
    # frames 0-4 inside, 5-7 outside, 8-9 inside, 10 gap (not seen), 11 inside
    frames = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11])
    xy = np.array([[50, 50]] * 5 + [[150, 50]] * 3 + [[50, 50]] * 2 + [[60, 60]], float)
    r = zone_readouts(frames, xy, FPS, [SQUARE])["box"]
    assert r.time_s == pytest.approx(8 / FPS)  # 5 + 2 + 1 frames inside
    assert r.entries == 2  # starts inside (1), back in at frame 8 (2); the gap is no exit
    assert r.latency_s == 0.0
    late = zone_readouts(frames[5:], xy[5:], FPS, [SQUARE])["box"]
    assert late.entries == 1 and late.latency_s == pytest.approx(8 / FPS)
    never = zone_readouts(frames[5:8], xy[5:8], FPS, [SQUARE])["box"]
    assert never.time_s == 0 and never.entries == 0 and math.isnan(never.latency_s)


def test_rows_outside_the_arena_are_not_counted():
    arena = Zone("arena", np.array([[0, 0], [120, 0], [120, 120], [0, 120]], float))
    frames = np.arange(4)
    xy = np.array([[50, 50], [110, 50], [500, 50], [50, 50]], float)  # frame 2: a reflection
    r = zone_readouts(frames, xy, FPS, [SQUARE], arena)["box"]
    assert r.time_s == pytest.approx(2 / FPS) and r.entries == 2  # in, out (110), in


def test_centre_and_periphery_split_the_arena_by_area():
    centre, periphery = centre_zones(SQUARE, 0.25)
    assert centre.area() == pytest.approx(0.25 * SQUARE.area())
    assert periphery.area() == pytest.approx(0.75 * SQUARE.area())
    assert centre.contains(np.array([[50, 50]]))[0] and not periphery.contains([[50, 50]])[0]
    assert periphery.contains(np.array([[5, 5]]))[0] and not centre.contains([[5, 5]])[0]
    with pytest.raises(RodentsegError, match=r"\(0, 1\)"):
        centre_zones(SQUARE, 1.5)


def _disk_scene(h=120, w=160, r=50):
    yy, xx = np.mgrid[:h, :w]
    return (np.hypot(xx - 80, yy - 60) <= r), yy, xx


def test_find_arena_on_a_light_floor_in_a_dark_surround():
    floor, _, _ = _disk_scene()
    background = np.where(floor, 200.0, 30.0)
    background[10:110:20, 20:140] = 210  # light stripes off the floor are not the arena
    points = np.array([[80, 60], [100, 70], [70, 40]], float)
    arena = find_arena(background, points)
    assert arena.area() == pytest.approx(math.pi * 50**2, rel=0.06)
    # the reverse tones: a dark floor in a light room
    arena = find_arena(255 - background, points)
    assert arena.area() == pytest.approx(math.pi * 50**2, rel=0.06)
    with pytest.raises(RodentsegError, match="positions"):
        find_arena(background, np.zeros((0, 2)))


def test_load_zones_errors(tmp_path):
    bad = tmp_path / "z.json"
    bad.write_text("{not json")
    with pytest.raises(RodentsegError, match="expected a JSON file"):
        load_zones(bad)
    bad.write_text(json.dumps({"zones": {"a": [[0, 0], [1, 1]]}}))
    with pytest.raises(RodentsegError, match="at least 3"):
        load_zones(bad)
    bad.write_text(json.dumps({"zone": {}}))
    with pytest.raises(RodentsegError, match="'arena' and/or 'zones'"):
        load_zones(bad)


def _scene(folder, path):
    """A video of a dark disc walking ``path`` ((T, 2) x, y) on a light round floor, and its
    instance masks; returns (video, masks folder)."""
    floor, yy, xx = _disk_scene()
    video, masks = folder / "walk.mp4", folder / "masks"
    masks.mkdir(parents=True)
    writer = VideoWriter(video, 160, 120, FPS)
    for t, (x, y) in enumerate(path):
        mouse = np.hypot(xx - x, yy - y) <= 4
        grey = np.where(mouse, 20, np.where(floor, 200, 30)).astype(np.uint8)
        writer.write(np.repeat(grey[..., None], 3, 2))
        Image.fromarray(mouse.astype(np.uint8)).save(masks / f"{t:06d}.png")
    writer.close()
    return video, masks


def test_summarize_a_batch_by_hand(tmp_path):
    # 20 frames in the centre, 20 near the wall (40 px from the middle of a 50 px floor:
    # the centre of half the area has a radius of 35 px), 20 back in the centre
    path = [(80, 60)] * 20 + [(120, 60)] * 20 + [(80, 60)] * 20
    video, masks = _scene(tmp_path / "a", path)
    for name in ("one", "two"):
        assert main(["track", str(masks), "--video", str(video), "--out", str(tmp_path / "r"),
                     "--name", name, "--animals", "1", "--no-overlay", "--quiet"]) == 0
    table = tmp_path / "table.csv"
    assert main(["summarize", str(tmp_path / "r" / "one"), str(tmp_path / "r" / "two"),
                 "--out", str(table), "--quiet"]) == 0
    rows = list(csv.DictReader(table.open()))
    assert [r["result"] for r in rows] == ["one", "two"]  # one row per video and animal
    r = rows[0]
    assert float(r["centre_time_s"]) == pytest.approx(40 / FPS)
    assert int(r["centre_entries"]) == 2 and float(r["centre_latency_s"]) == 0
    assert float(r["periphery_time_s"]) == pytest.approx(20 / FPS)
    assert int(r["periphery_entries"]) == 1
    assert float(r["periphery_latency_s"]) == pytest.approx(20 / FPS)
    assert float(r["distance_px"]) == pytest.approx(80, abs=2)  # out 40 px and back
    pictures = tmp_path / "table.zones"
    assert (pictures / "one.png").is_file()
    # the polygons used come back through --zones, with a zone of one's own
    used = json.loads((pictures / "one.json").read_text())
    used["zones"] = {"right": [[100, 0], [160, 0], [160, 120], [100, 120]]}
    (tmp_path / "mine.json").write_text(json.dumps(used))
    assert main(["summarize", str(tmp_path / "r" / "one"), "--out", str(table),
                 "--zones", str(tmp_path / "mine.json"), "--quiet"]) == 0
    (r,) = list(csv.DictReader(table.open()))
    assert float(r["right_time_s"]) == pytest.approx(20 / FPS) and int(r["right_entries"]) == 1
    assert "centre_time_s" not in r


def test_summarize_bad_inputs(tmp_path, capsys):
    assert main(["summarize", str(tmp_path), "--out", str(tmp_path / "t.csv")]) == 2
    assert "expected a rodentseg result folder" in capsys.readouterr().err
    assert not (tmp_path / "t.csv").exists()
