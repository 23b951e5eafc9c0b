"""Shared by the reliability tests: a small synthetic video, CLI processes started ready to go,
and a byte-for-byte comparison of two result folders."""

from __future__ import annotations

import filecmp
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, write_video

#: A process that imports everything first (about 8 s here), says ``ready`` and runs
#: ``rodentseg ARGS...`` once the file GO exists: processes started together then reach the
#: work within milliseconds of each other.
WARM = """
import sys, time
from pathlib import Path
import rodentseg.models, rodentseg.segment
from rodentseg.cli import main
go = Path(sys.argv[1])
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
sys.exit(main(sys.argv[2:]))
"""


def mouse_video(path: Path, n_frames: int) -> Path:
    """A dark ellipse (28 x 14 px) crossing a light 160x120 frame, 30 fps."""
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    frames = np.full((n_frames, h, w, 3), 200, np.uint8)
    for t in range(n_frames):
        cx, cy = 30 + (t * 0.4) % 100, 60 + 20 * np.sin(t / 10)
        frames[t][((xx - cx) / 14) ** 2 + ((yy - cy) / 7) ** 2 < 1] = 40
    return write_video(path, frames)


@pytest.fixture(scope="session")
def short_video(tmp_path_factory) -> Path:
    """60 frames: a run of well under a second once the model is loaded."""
    return mouse_video(tmp_path_factory.mktemp("videos") / "mouse.mp4", 60)


@pytest.fixture(scope="session")
def long_video(tmp_path_factory) -> Path:
    """300 frames: long enough (a few seconds in a CLI process) to be caught midway."""
    return mouse_video(tmp_path_factory.mktemp("videos") / "mouse300.mp4", 300)


def start_warm(go: Path, *args: str) -> subprocess.Popen:
    """Start ``rodentseg ARGS`` in a process that waits for ``go`` once it has imported."""
    p = subprocess.Popen([sys.executable, "-c", WARM, str(go), *args], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready", p.stderr.read()
    return p


def wait_for(predicate, timeout: float = 60.0, what: str = "") -> None:
    """Poll ``predicate`` every 5 ms until it holds."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


#: Files that differ between two identical runs by design: each NWB file records when it was
#: written (``session_start_time``) and a random ``identifier`` (io/exports.py). Open in
#: docs/reliability.md.
NOT_REPEATABLE = ("nwb/",)


def assert_same_result(a: Path, b: Path) -> None:
    """Every file byte-identical (but :data:`NOT_REPEATABLE`), and ``run.json`` but for its
    timings."""
    names = sorted(p.relative_to(a) for p in a.rglob("*"))
    assert names == sorted(p.relative_to(b) for p in b.rglob("*"))
    for rel in names:
        if (a / rel).is_file() and rel != Path("run.json") and not rel.as_posix().startswith(
                NOT_REPEATABLE):
            assert filecmp.cmp(a / rel, b / rel, shallow=False), rel
    ra, rb = (json.loads((f / "run.json").read_text()) for f in (a, b))
    for run in (ra, rb):
        run.pop("timings")
    assert ra == rb
