"""Frames of a video in any order, decoded on demand with PyAV, never the whole video in memory.

Propagation runs forward and backward from a prompted frame, and prompts land on arbitrary
frames, so annotation needs random access. :class:`FrameSource` indexes the presentation
timestamps of the video packets once (demuxing only, no decoding), then seeks to the keyframe
before a wanted frame and decodes from there. Backward iteration decodes chunks of ``chunk``
frames forward and hands them out in reverse, so memory is bounded by ``chunk`` frames.
Containers without timestamps are decoded from the start instead (correct, slower).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np

from rodentseg.errors import RodentsegError
from rodentseg.io.video import probe


class FrameSource:
    """Random and reverse access to the frames of one video.

    Args:
        path: the video file.
        chunk: frames decoded at a time when iterating backward (memory = chunk x H x W x 3).

    Attributes:
        n_frames: decodable frames (from the packet index; frame indices are 0-based in
            presentation order, as :func:`rodentseg.io.video.read_frames` counts them).
        height, width, fps: from the container.

    Raises:
        RodentsegError: missing or unreadable file, no video stream, or no frames.
    """

    def __init__(self, path: str | Path, chunk: int = 32):
        self.path = Path(path)
        self.info = probe(self.path)
        self.height, self.width, self.fps = self.info.height, self.info.width, self.info.fps
        self.chunk = max(1, int(chunk))
        self._pts: list[int] | None = None
        self._index()

    def _index(self) -> None:
        pts = []
        seekable = True
        with av.open(str(self.path)) as c:
            s = c.streams.video[0]
            for packet in c.demux(s):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    seekable = False
                pts.append(packet.pts)
        if seekable and len(set(pts)) == len(pts):
            self._pts = sorted(pts)
            self._idx_of = {p: i for i, p in enumerate(self._pts)}
            self.n_frames = len(self._pts)
        else:
            self._pts = None
            self.n_frames = sum(1 for _ in self._decode(0, None))
        if self.n_frames == 0:
            raise RodentsegError(f"{self.path} contains no decodable video frames")

    def _decode(self, start: int, stop: int | None) -> Iterator[tuple[int, np.ndarray]]:
        """Frames start <= idx < stop in order (stop None = to the end)."""
        with av.open(str(self.path)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            counted = self._pts is None
            if not counted and start > 0:
                c.seek(self._pts[start], stream=s, backward=True, any_frame=False)
            n = 0
            try:
                for frame in c.decode(s):
                    if counted:
                        idx = n
                        n += 1
                    else:
                        if frame.pts is None or frame.pts not in self._idx_of:
                            raise RodentsegError(
                                f"{self.path}: a decoded frame has a timestamp ({frame.pts}) "
                                "that no packet declared; re-encode the video (e.g. ffmpeg -i "
                                "in.avi -c:v libx264 out.mp4)")
                        idx = self._idx_of[frame.pts]
                    if idx < start:
                        continue
                    if stop is not None and idx >= stop:
                        break
                    yield idx, frame.to_ndarray(format="rgb24")
            except av.error.FFmpegError as e:
                raise RodentsegError(f"{self.path} is corrupt: decoding failed near frame "
                                     f"{start + n}: {e}") from None

    def _check(self, idx: int) -> int:
        if not 0 <= idx < self.n_frames:
            raise RodentsegError(f"frame {idx} is outside the video {self.path.name} "
                                 f"(frames 0..{self.n_frames - 1})")
        return int(idx)

    def frame(self, idx: int) -> np.ndarray:
        """Frame ``idx`` as (H, W, 3) uint8 RGB."""
        idx = self._check(idx)
        for i, f in self._decode(idx, idx + 1):
            return f
        raise RodentsegError(f"{self.path}: frame {idx} could not be decoded")

    def forward(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_idx, (H, W, 3) uint8 RGB)`` for start <= idx < stop, ascending."""
        stop = self.n_frames if stop is None else min(stop, self.n_frames)
        if start < stop:
            yield from self._decode(self._check(start), stop)

    def backward(self, start: int, stop: int = -1) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_idx, frame)`` for start >= idx > stop, descending, ``chunk`` at a time."""
        hi = min(start, self.n_frames - 1)
        while hi > stop:
            lo = max(stop + 1, hi - self.chunk + 1)
            frames = list(self._decode(lo, hi + 1))
            yield from reversed(frames)
            hi = lo - 1
