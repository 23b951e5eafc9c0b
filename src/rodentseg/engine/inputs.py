"""Turn ``DIR_OR_GLOB`` arguments into the sorted list of videos to process."""

from __future__ import annotations

import glob
from pathlib import Path

from rodentseg.errors import RodentsegError
from rodentseg.io.video import IMAGE_EXTS

#: File endings treated as videos when a directory or glob is expanded (case-insensitive).
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm",
                    ".flv", ".ts", ".mts", ".h264", ".mj2")


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def _has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def expand_videos(args: list[str | Path]) -> list[Path]:
    """Expand files, directories and glob patterns into a sorted list of videos.

    Args:
        args: each one is

            - a file: kept as given (whatever its ending; FFmpeg decides later);
            - a directory: every file in it (not in sub-directories) whose ending is in
              :data:`VIDEO_EXTENSIONS`; a directory with no videos but with images is one
              image-folder video (as :func:`rodentseg.io.video.read_frames` reads it);
            - a glob pattern (``*``, ``?``, ``[``; ``**`` recurses): the matching files with a
              video ending (quote it so that the shell does not expand it first).

    Returns:
        The videos, sorted by path, each once (duplicates after resolving are dropped).

    Raises:
        RodentsegError: an argument that is not an existing file or directory and matches
            nothing, or a directory or pattern without any video (the message lists the
            endings looked for).
    """
    found: dict[Path, Path] = {}
    for arg in args:
        text = str(arg)
        path = Path(text)
        if path.is_file():
            hits = [path]
        elif path.is_dir():
            hits = sorted(p for p in path.iterdir() if _is_video(p))
            if not hits:
                if any(p.suffix.lower() in IMAGE_EXTS for p in path.iterdir()):
                    hits = [path]
                else:
                    raise RodentsegError(
                        f"directory {path} holds no video (looked for {', '.join(VIDEO_EXTENSIONS)}"
                        " files) and no images; pass the folder that contains the videos, or "
                        "a pattern such as 'DIR/**/*.mp4'")
        elif _has_glob(text):
            hits = sorted(Path(p) for p in glob.glob(text, recursive=True) if _is_video(Path(p)))
            if not hits:
                raise RodentsegError(f"the pattern {text!r} matches no video file (looked for "
                                     f"{', '.join(VIDEO_EXTENSIONS)}); check the path, and quote "
                                     "the pattern so that the shell passes it unchanged")
        else:
            raise RodentsegError(f"{text} does not exist; expected a video file, a directory of "
                                 "videos or a glob pattern such as 'videos/*.mp4'")
        for h in hits:
            found.setdefault(h.resolve(), h)
    return sorted(found.values())
