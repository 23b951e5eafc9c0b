"""DIR_OR_GLOB expansion into the sorted list of videos."""

import pytest

from rodentseg.engine import expand_videos
from rodentseg.errors import RodentsegError


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "day2").mkdir()
    for name in ["b.mp4", "a.AVI", "notes.txt", "day2/c.mkv", "day2/d.mp4"]:
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "0001.png").write_bytes(b"x")
    return tmp_path


@pytest.mark.parametrize("args,expected", [
    (["."], ["a.AVI", "b.mp4"]),                           # a directory: its videos, no recursion
    (["*.mp4"], ["b.mp4"]),                                # a glob
    (["**/*.mp4"], ["b.mp4", "day2/d.mp4"]),               # ** recurses
    (["day2/d.mp4", "b.mp4", "*.mp4"], ["b.mp4", "day2/d.mp4"]),  # sorted, each video once
    (["notes.txt"], ["notes.txt"]),                        # a named file is kept as given
    (["imgs"], ["imgs"]),                                  # a folder of images is one video
])
def test_expand(tree, monkeypatch, args, expected):
    monkeypatch.chdir(tree)
    assert [p.as_posix() for p in expand_videos(args)] == expected


@pytest.mark.parametrize("arg,match", [
    ("missing.mp4", "does not exist"),                     # neither file, dir nor pattern
    ("*.mov", "matches no video"),                         # a pattern that matches nothing
    ("empty", "holds no video"),                           # a directory with nothing usable
])
def test_errors(tree, monkeypatch, arg, match):
    monkeypatch.chdir(tree)
    (tree / "empty").mkdir()
    with pytest.raises(RodentsegError, match=match):
        expand_videos([arg])
