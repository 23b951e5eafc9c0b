"""Issue 23, defect 2: nothing was fsynced, so after a power cut a ``run.json`` could stand
beside empty files and that result was skipped forever; ``--overwrite`` left an instant without
a result; SIGTERM (Slurm, systemd, Ray) left the partial folder behind.

Now ``publish`` fsyncs every file and folder before the rename, ``run.json`` lists each file's
size and a result that does not match it is made again, an old result is exchanged with the new
one in one step, and SIGTERM cleans up like Ctrl-C (exit status 143)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
import time

import pytest

from rodentseg.cli import main
from rodentseg.io.results import incomplete, prepare, publish
from rodentseg.segment import SegmentOptions, segment_video
from tests.reliability.conftest import assert_same_result, start_warm, wait_for

OPTS = SegmentOptions(animals=1)


@pytest.fixture(scope="module")
def reference(short_video, default_model, tmp_path_factory):
    """An uninterrupted run, to compare the others with."""
    return segment_video(short_video, tmp_path_factory.mktemp("ref"), default_model, OPTS,
                         progress=False)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [
    lambda r: _truncate(r / "masks" / "000010.png"),  # a mask cut short
    lambda r: (r / "tracks.csv").write_bytes(b""),  # a table left empty by the power cut
    lambda r: (r / "masks.json").unlink(),  # a file that never reached the disk
])
def test_damaged_result_is_made_again_not_skipped(damage, short_video, default_model, reference,
                                                  tmp_path, capsys):
    result = segment_video(short_video, tmp_path, default_model, OPTS, progress=False)
    assert incomplete(result) is None
    damage(result)
    assert incomplete(result) is not None
    segment_video(short_video, tmp_path, default_model, OPTS, progress=False)
    assert "is damaged" in capsys.readouterr().err
    assert incomplete(result) is None
    assert_same_result(result, reference)


def test_run_json_without_file_list_passes_unless_a_file_is_empty(tmp_path):
    """A result written before ``files`` was recorded: kept unless a file in it is empty."""
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "000000.png").write_bytes(b"png")
    (tmp_path / "run.json").write_text("{}")
    assert incomplete(tmp_path) is None
    (tmp_path / "masks" / "000000.png").write_bytes(b"")
    assert incomplete(tmp_path) == "masks/000000.png is empty"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names fds through /proc")
def test_publish_fsyncs_everything_before_the_rename(tmp_path, monkeypatch):
    partial = prepare(tmp_path, "r", {"v": 1}, overwrite=False)
    (partial / "masks").mkdir()
    (partial / "masks" / "000000.png").write_bytes(b"png")
    (partial / "tracks.csv").write_text("frame_idx\n")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    final = publish(partial, {"v": 1})
    renamed = events.index(("rename", str(final)))
    synced = {p for kind, p in events[:renamed] if kind == "fsync"}
    for rel in ("masks/000000.png", "masks", "tracks.csv", "run.json", ""):
        assert str(partial / rel).rstrip("/") in synced, rel
    assert events[renamed + 1:] == [("fsync", str(tmp_path))]  # the rename itself
    assert json.loads((final / "run.json").read_text())["files"] == {
        "masks/000000.png": 3, "tracks.csv": 10}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="renameat2 is Linux's")
def test_overwrite_leaves_no_instant_without_a_result(tmp_path, monkeypatch):
    final = publish(prepare(tmp_path, "r", {"v": 1}, overwrite=False), {"v": 1})
    partial = prepare(tmp_path, "r", {"v": 2}, overwrite=True)
    (partial / "tracks.csv").write_text("new\n")
    seen = []  # at every file system step of publish: is there a complete result?
    for name in ("fsync", "replace", "rename"):
        real = getattr(os, name)

        def spy(*a, _real=real):
            seen.append((final / "run.json").is_file())
            return _real(*a)

        monkeypatch.setattr(os, name, spy)
    real_rmtree = shutil.rmtree
    monkeypatch.setattr(shutil, "rmtree", lambda *a, **k: (seen.append(
        (final / "run.json").is_file()), real_rmtree(*a, **k)))
    publish(partial, {"v": 2})
    assert seen and all(seen)
    assert (final / "tracks.csv").read_text() == "new\n"
    assert json.loads((final / "run.json").read_text())["v"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".r.lock", "r"]  # the old one gone


def test_sigterm_cleans_up_like_ctrl_c(long_video, default_model, tmp_path, capsys):
    """SIGTERM to this process while ``rodentseg segment`` writes: exit 143, no partial folder,
    no result; the run made again is byte-identical to an uninterrupted one."""
    out = tmp_path / "out"
    late = []
    previous = signal.signal(signal.SIGTERM, lambda *a: late.append(a))  # if main had returned

    def terminate_midway():
        wait_for(lambda: list(out.glob(".*.partial-*/masks/*.png")), what="a partial folder")
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_midway, daemon=True)
    killer.start()
    try:
        code = main(["segment", str(long_video), "--out", str(out), "--animals", "1",
                     "--device", "cpu", "--quiet"])
        killer.join()
        time.sleep(0.05)  # a SIGTERM that came after main returned is seen by now
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143 and not late
    assert "terminated" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == [".mouse300.lock"]
    again = segment_video(long_video, out, default_model, OPTS, progress=False)
    assert_same_result(again, segment_video(long_video, tmp_path / "ref", default_model, OPTS,
                                            progress=False))


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [
    (signal.SIGTERM, 143),  # Slurm, systemd, Ray: cleaned up like Ctrl-C
    (signal.SIGKILL, -signal.SIGKILL),  # no cleanup: the next run removes the partial folder
])
def test_killed_process_then_rerun_is_byte_identical(sig, code, long_video, default_model,
                                                     tmp_path):
    out, go = tmp_path / "out", tmp_path / "go"
    p = start_warm(go, "segment", str(long_video), "--out", str(out), "--animals", "1",
                   "--device", "cpu", "--quiet")
    go.touch()
    wait_for(lambda: list(out.glob(".*.partial-*/masks/*.png")), what="a partial folder")
    p.send_signal(sig)
    assert p.wait(timeout=60) == code, p.communicate()
    partials = list(out.glob(".*partial*"))
    assert len(partials) == (sig == signal.SIGKILL) and not (out / long_video.stem).exists()
    again = segment_video(long_video, out, default_model, OPTS, progress=False)
    assert not list(out.glob(".*partial*"))
    assert_same_result(again, segment_video(long_video, tmp_path / "ref", default_model, OPTS,
                                            progress=False))
