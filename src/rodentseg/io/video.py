"""Streaming video read and write on PyAV: frames are decoded when needed and encoded when made,
so memory does not grow with the length of the video.

A folder of images (``.png``, ``.jpg``, ``.tif`` ..., e.g. a DeepLabCut ``labeled-data`` folder)
is read as a video too: frames in file-name order, at a nominal :data:`IMAGE_FOLDER_FPS`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from rodentseg.errors import RodentsegError
from rodentseg.io.atomic import AtomicWriter

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: Frame rate assumed for a folder of images (it has none of its own).
IMAGE_FOLDER_FPS = 30.0


def image_files(folder: Path) -> list[Path]:
    """The images of a folder in name order.

    Raises:
        RodentsegError: the folder holds no image.
    """
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise RodentsegError(f"expected a video file or a folder of images "
                             f"({', '.join(IMAGE_EXTS)}); {folder} is a directory with no images")
    return files


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream.

    Attributes:
        path: the file.
        width, height: frame size in pixels.
        fps: average frame rate (frames per second).
        frame_count: frames declared by the container, or estimated from duration x fps when
            it declares none (``frame_count_exact`` tells which).
        duration_s: duration in seconds (frame_count / fps when the container gives none).
        codec: decoder name (e.g. ``h264``).
        pix_fmt: pixel format of the stream (``gray`` for grey-scale video).
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int
    frame_count_exact: bool
    duration_s: float
    codec: str
    pix_fmt: str


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise RodentsegError(f"video not found: {path} (expected a path to a video file)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise RodentsegError(
            f"{path} is not a video FFmpeg can read (expected e.g. .mp4/.avi/.mkv): {e}"
        ) from None
    if not container.streams.video:
        kinds = [s.type for s in container.streams]
        container.close()
        raise RodentsegError(f"{path} has no video stream (an empty, zero-frame file?); "
                             f"expected a video, found streams: {kinds or 'none'}")
    return container


def probe(path: str | Path) -> VideoInfo:
    """Read the header of a video without decoding it.

    Raises:
        RodentsegError: missing file, a directory, not a video, no video stream, or a folder
            whose first image cannot be read. (A video whose frames cannot be decoded is
            reported by :func:`read_frames`.)
    """
    path = Path(path)
    if path.is_dir():
        files = image_files(path)
        try:
            with Image.open(files[0]) as im:
                w, h, mode = im.width, im.height, im.mode
        except OSError as e:  # PIL.UnidentifiedImageError too
            raise RodentsegError(f"{files[0]} is not a readable image ({e}); expected the first "
                                 f"image of the folder {path} to give the frame size") from None
        return VideoInfo(path, w, h, IMAGE_FOLDER_FPS, len(files), True,
                         len(files) / IMAGE_FOLDER_FPS, "images", mode.lower())
    with _open(path) as c:
        s = c.streams.video[0]
        fps = float(s.average_rate or s.guessed_rate or 0) or 30.0
        if s.duration is not None and s.time_base is not None:
            duration = float(s.duration * s.time_base)
        elif c.duration is not None:
            duration = c.duration / av.time_base
        else:
            duration = 0.0
        exact = bool(s.frames)
        count = int(s.frames) if exact else int(round(duration * fps))
        return VideoInfo(path, s.codec_context.width, s.codec_context.height, fps, count, exact,
                         duration or count / fps, s.codec_context.name,
                         s.codec_context.pix_fmt or "unknown")


def read_frames(path: str | Path, batch_size: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a video one batch at a time.

    Args:
        path: the video file, or a folder of images.
        batch_size: frames per yielded batch (the last batch may be shorter).

    Yields:
        ``(first_frame_idx, frames)`` with frames (B, H, W, 3) uint8 RGB; grey video is
        expanded to three equal channels.

    Raises:
        RodentsegError: unreadable file, a decoding error (the frame index where it happened),
            a video with no frames, or fewer frames than the container declares (truncated).
    """
    path = Path(path)
    info = probe(path)
    if path.is_dir():
        yield from _read_images(path, info, batch_size)
        return
    n = 0
    batch: list[np.ndarray] = []
    with _open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        try:
            for frame in c.decode(s):
                batch.append(frame.to_ndarray(format="rgb24"))
                if len(batch) == batch_size:
                    yield n, np.stack(batch)
                    n += len(batch)
                    batch = []
        except av.error.FFmpegError as e:
            raise RodentsegError(
                f"{path} is corrupt: decoding failed after frame {n + len(batch)}: {e}"
            ) from None
    if batch:
        yield n, np.stack(batch)
        n += len(batch)
    if n == 0:
        raise RodentsegError(f"{path} contains no decodable video frames")
    if info.frame_count_exact and n < info.frame_count:
        raise RodentsegError(
            f"{path} is truncated or corrupt: the container declares {info.frame_count} frames "
            f"but only {n} could be decoded"
        )


def _read_images(folder: Path, info: VideoInfo, batch_size: int):
    files = image_files(folder)
    for first in range(0, len(files), batch_size):
        batch = []
        for p in files[first:first + batch_size]:
            try:
                with Image.open(p) as im:
                    frame = np.asarray(im.convert("RGB"))
            except OSError as e:
                raise RodentsegError(f"{p} is not a readable image: {e}") from None
            if frame.shape[:2] != (info.height, info.width):
                raise RodentsegError(f"{p} is {frame.shape[1]}x{frame.shape[0]}, expected "
                                     f"{info.width}x{info.height} like {files[0].name}")
            batch.append(frame)
        yield first, np.stack(batch)


def hash_into(h, path: Path, chunk: int = 1 << 20) -> None:
    """Feed a file's bytes into the hashlib object ``h``, in chunks (constant memory)."""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of one file, read in chunks (constant memory)."""
    h = hashlib.sha256()
    hash_into(h, Path(path))
    return h.hexdigest()


def sha256_input(path: str | Path) -> str:
    """Hex sha256 of a video file, or of a folder's images (names and bytes, in order)."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    h = hashlib.sha256()
    for p in image_files(path):
        h.update(p.name.encode())
        hash_into(h, p)
    return h.hexdigest()


class VideoWriter(AtomicWriter):
    """Encode RGB frames to a video file as they are produced (H.264 by default).

    The file is written under a temporary name and renamed into place on a clean close, so an
    interrupted run never leaves a half-written video under the final name.

    Args:
        path: output file (``.mp4``).
        width, height: frame size in pixels (even numbers for yuv420p; odd sizes are padded).
        fps: frame rate.
        codec: FFmpeg encoder name; ``libx264`` with preset ``ultrafast``.
    """

    def __init__(self, path: str | Path, width: int, height: int, fps: float,
                 codec: str = "libx264", crf: int = 23):
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.stem + ".tmp" + self.path.suffix)
        self._c = av.open(str(self._tmp), mode="w")
        rate = Fraction(fps).limit_denominator(1001)
        self._s = self._c.add_stream(codec, rate=rate)
        self._s.width, self._s.height = width + width % 2, height + height % 2
        self._s.pix_fmt = "yuv420p"
        self._s.thread_type = "AUTO"
        if codec == "libx264":
            self._s.options = {"preset": "ultrafast", "crf": str(crf)}
        self._pad = (width % 2, height % 2)

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        if any(self._pad):
            frame = np.pad(frame, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._s.encode(vf):
            self._c.mux(packet)

    def close(self) -> None:
        for packet in self._s.encode():
            self._c.mux(packet)
        self._c.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the unfinished file (also when closing it fails, as on a full disk)."""
        try:
            self._c.close()
        finally:
            self._tmp.unlink(missing_ok=True)
