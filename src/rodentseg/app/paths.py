"""Opening files by path in the app: only inside the data root given on the command line.

A path typed into the app is resolved (``..`` collapsed, every symlink followed, as
:meth:`pathlib.Path.resolve` does) and must then lie inside the resolved data root. So
``../secret``, ``/etc/passwd`` and a symlink inside the root that points out of it are all
refused, while a symlink that stays inside the root is fine.
"""

from __future__ import annotations

from pathlib import Path

from rodentseg.errors import RodentsegError

#: File suffixes the app opens: videos FFmpeg reads, and single images.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".h264")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def resolve_root(root: str | Path) -> Path:
    """The data root as an absolute, symlink-free directory.

    Raises:
        RodentsegError: it does not exist or is not a directory.
    """
    path = Path(root).expanduser()
    if not path.is_dir():
        raise RodentsegError(f"--data-root must be an existing directory, got {str(root)!r}")
    return path.resolve()


def resolve_under_root(root: str | Path, text: str | Path) -> Path:
    """Resolve a user-given path and check that it stays inside ``root``.

    Args:
        root: the data root (a directory).
        text: a path relative to the root, or absolute (then it must point inside the root).

    Returns:
        The resolved absolute path of an existing file inside the root.

    Raises:
        RodentsegError: an empty path, a path that leaves the root (``..``, an absolute path
            elsewhere, a symlink pointing out), a missing file or a directory. The message never
            says whether a path outside the root exists.
    """
    base = resolve_root(root)
    raw = str(text).strip()
    if not raw:
        raise RodentsegError("expected a path to a video or image under the data root, got ''")
    try:
        candidate = Path(raw)
        full = (candidate if candidate.is_absolute() else base / candidate).resolve()
    except (ValueError, OSError, RuntimeError) as e:  # NUL bytes, symlink loops
        raise RodentsegError(f"cannot read the path {raw!r}: {e}") from None
    if not full.is_relative_to(base):
        raise RodentsegError(f"refused: {raw!r} is outside the data root {base}; expected a "
                             "path inside it (relative paths start at the data root)")
    if not full.exists():
        raise RodentsegError(f"{raw!r} does not exist under the data root {base}")
    if full.is_dir():
        raise RodentsegError(f"{raw!r} is a directory; expected a video or image file")
    return full


def check_openable(path: Path) -> Path:
    """Check the suffix of a file to open (video or image).

    Raises:
        RodentsegError: an unknown suffix (the message lists the accepted ones).
    """
    if path.suffix.lower() not in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
        raise RodentsegError(f"{path.name}: expected a video ({', '.join(VIDEO_SUFFIXES)}) or an "
                             f"image ({', '.join(IMAGE_SUFFIXES)}), got "
                             f"{path.suffix or 'no suffix'}")
    return path
