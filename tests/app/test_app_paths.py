"""Opening by path stays inside the data root; the app listens on localhost by default."""

from __future__ import annotations

import os

import pytest

from rodentseg.app.paths import check_openable, resolve_root, resolve_under_root
from rodentseg.cli import build_parser, main
from rodentseg.errors import RodentsegError


@pytest.fixture
def tree(tmp_path):
    """root/ with a video, a sub-folder, a symlink out of the root and one that stays in;
    secret.mp4 next to the root (outside it)."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "mice.mp4").write_bytes(b"x")
    (tmp_path / "secret.mp4").write_bytes(b"s")
    os.symlink(tmp_path / "secret.mp4", root / "link_out.mp4")
    os.symlink(tmp_path, root / "dir_out")
    os.symlink(root / "sub" / "mice.mp4", root / "link_in.mp4")
    return root


@pytest.mark.parametrize("text", [
    "../secret.mp4",               # parent directory
    "sub/../../secret.mp4",        # .. after a real folder
    "link_out.mp4",                # symlink to a file outside
    "dir_out/secret.mp4",          # symlinked folder leading outside
    "/etc/passwd",                 # absolute path elsewhere
])
def test_paths_leaving_the_root_are_refused(tree, text):
    with pytest.raises(RodentsegError, match="outside the data root"):
        resolve_under_root(tree, text)


def test_absolute_path_outside_is_refused_even_when_it_exists(tree):
    outside = tree.parent / "secret.mp4"
    assert outside.exists()
    with pytest.raises(RodentsegError, match="outside the data root"):
        resolve_under_root(tree, str(outside))


@pytest.mark.parametrize("text,expected", [
    ("sub/mice.mp4", "sub/mice.mp4"),             # relative to the root
    ("./sub/../sub/mice.mp4", "sub/mice.mp4"),    # .. that stays inside
    ("link_in.mp4", "sub/mice.mp4"),              # symlink within the root
])
def test_paths_inside_the_root_resolve(tree, text, expected):
    assert resolve_under_root(tree, text) == (tree / expected).resolve()


def test_absolute_path_inside_the_root_is_accepted(tree):
    assert resolve_under_root(tree, str(tree / "sub" / "mice.mp4")) == tree / "sub" / "mice.mp4"


@pytest.mark.parametrize("text,match", [
    ("", "expected a path"),                # nothing typed
    ("nope.mp4", "does not exist"),          # missing inside the root
    ("sub", "is a directory"),               # a folder
    ("bad\0name.mp4", "cannot read the path"),  # NUL byte
])
def test_bad_paths_raise_clear_errors(tree, text, match):
    with pytest.raises(RodentsegError, match=match):
        resolve_under_root(tree, text)


def test_root_must_be_a_directory(tmp_path):
    with pytest.raises(RodentsegError, match="--data-root"):
        resolve_root(tmp_path / "missing")


def test_only_videos_and_images_open(tmp_path):
    assert check_openable(tmp_path / "a.MP4").name == "a.MP4"
    with pytest.raises(RodentsegError, match="expected a video"):
        check_openable(tmp_path / "notes.txt")


def test_app_listens_on_localhost_by_default():
    args = build_parser().parse_args(["app"])
    assert args.host == "127.0.0.1"
    assert args.port == 7860
    assert str(args.data_root) == "."
    assert args.model == "rodentseg-tiny"
    assert args.func.__name__ == "run_app"


def test_app_host_and_port_are_options():
    args = build_parser().parse_args(["app", "--host", "0.0.0.0", "--port", "8001"])
    assert (args.host, args.port) == ("0.0.0.0", 8001)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["app", "--port", "70000"])


def test_app_with_missing_data_root_exits_2_before_serving(tmp_path, capsys):
    assert main(["app", "--data-root", str(tmp_path / "missing")]) == 2
    assert "--data-root must be an existing directory" in capsys.readouterr().err
