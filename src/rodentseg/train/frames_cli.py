"""``rodentseg frames VIDEO --out DIR``: a video's frames as PNG files, for labelling and training.

Writes ``DIR/frames/NNNNNNNNN.png`` (9-digit 0-based frame index, 8-bit RGB) while decoding the
video as a stream (:func:`rodentseg.io.video.read_frames`), so memory does not grow with its
length. Each file is written under a temporary name and renamed, so a killed run leaves only
whole PNGs; running again skips the files already there (resume). Frames before ``--start``
are decoded and dropped (the stream is not seeked), so a late start costs decoding time.

:class:`VideoFrames` is the other way to use a video for training: frames decoded on demand by
index, with no files written (each access seeks to the previous keyframe and decodes from it).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from rodentseg.errors import RodentsegError
from rodentseg.io.video import image_files, probe, read_frames

#: Digits of the frame index in the written file names.
INDEX_DIGITS = 9


class VideoFrames(Sequence):
    """The frames of a video file, or of a folder of images, by index: ``vf[i]`` ->
    (H, W, 3) uint8 RGB.

    A video is indexed once by :class:`rodentseg.annotate.frames.FrameSource` (packet
    timestamps, no decoding); each ``vf[i]`` seeks to the keyframe before frame ``i`` and decodes
    up to it, so random access costs up to one group of pictures of decoding (measured on the
    tracktor video, keyframes every 250 frames: 0.04 s next to a keyframe, ~0.3 s 100 frames
    after one). For several epochs, cache the dataset (``cache=True``) or extract the frames
    once with ``rodentseg frames``. Iterating (``for frame in vf``) decodes one stream, without
    seeking. Frame indices count decoded frames from 0, as
    :func:`rodentseg.io.video.read_frames` does.

    Args:
        video: a video file FFmpeg reads, or a folder of images (frames in name order).

    Attributes:
        path, height, width (pixels), fps.

    Raises:
        RodentsegError: missing or unreadable video, no video stream, no frames, a folder
            without images; on access, an index outside the video or a decoding error.
    """

    def __init__(self, video: str | Path):
        self.path = Path(video)
        info = probe(self.path)
        self.height, self.width, self.fps = info.height, info.width, info.fps
        if self.path.is_dir():
            self._files: list[Path] | None = image_files(self.path)
            self._source = None
        else:
            from rodentseg.annotate.frames import FrameSource

            self._files, self._source = None, FrameSource(self.path)

    def __len__(self) -> int:
        return len(self._files) if self._files is not None else self._source.n_frames

    def __iter__(self):
        """All frames in order, decoded as one stream (no seeking)."""
        if self._source is not None:
            for _, frame in self._source.forward():
                yield frame
        else:
            for i in range(len(self)):
                yield self[i]

    def __getitem__(self, idx: int) -> np.ndarray:
        if not 0 <= idx < len(self):
            raise RodentsegError(f"frame {idx} is outside {self.path.name} (frames 0.."
                                 f"{len(self) - 1})")
        if self._source is not None:
            return self._source.frame(int(idx))
        p = self._files[idx]
        try:
            with Image.open(p) as im:
                frame = np.asarray(im.convert("RGB"))
        except OSError as e:
            raise RodentsegError(f"{p} is not a readable image: {e}") from None
        if frame.shape[:2] != (self.height, self.width):
            raise RodentsegError(f"{p} is {frame.shape[1]}x{frame.shape[0]}, expected "
                                 f"{self.width}x{self.height} like {self._files[0].name}")
        return frame


def frame_path(out: Path, idx: int) -> Path:
    """``out/frames/NNNNNNNNN.png`` of frame ``idx``."""
    return Path(out) / "frames" / f"{idx:0{INDEX_DIGITS}d}.png"


def extract_frames(video: str | Path, out: str | Path, every: int = 1, start: int = 0,
                   end: int | None = None, progress: bool = True) -> tuple[int, int]:
    """Write frames ``start <= idx < end`` with ``(idx - start) % every == 0`` as PNGs.

    Args:
        video: a video file, or a folder of images.
        out: output folder; frames go to ``out/frames/`` (created).
        every: keep one frame in ``every``.
        start, end: 0-based frame range, ``end`` exclusive (None = to the end).
        progress: show a progress bar (frames decoded).

    Returns:
        ``(written, skipped)``: files written now, and wanted files that were already there.

    Raises:
        RodentsegError: bad range, unreadable/corrupt video (from :mod:`rodentseg.io.video`),
            an output folder that cannot be written.
    """
    if every < 1 or start < 0 or (end is not None and end <= start):
        raise RodentsegError(f"expected every >= 1 and 0 <= start < end; got every={every}, "
                             f"start={start}, end={end}")
    info = probe(video)
    stop = info.frame_count if end is None else min(end, info.frame_count)
    wanted = range(start, stop, every)
    fdir = Path(out) / "frames"
    try:
        fdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RodentsegError(f"cannot create {fdir}: {e.strerror or e}") from None
    if info.frame_count_exact and all(frame_path(out, i).is_file() for i in wanted):
        return 0, len(wanted)  # a finished extraction: nothing to decode
    written = skipped = 0
    bar = tqdm(total=stop if info.frame_count_exact else None, unit="frame", desc="frames",
               disable=not progress, dynamic_ncols=True)
    try:
        for first, batch in read_frames(video, batch_size=8):
            for k, frame in enumerate(batch):
                idx = first + k
                if idx < start or (idx - start) % every or (end is not None and idx >= end):
                    continue
                target = frame_path(out, idx)
                if target.is_file():
                    skipped += 1
                    continue
                tmp = target.with_name(f".{target.stem}.tmp.png")
                Image.fromarray(frame).save(tmp, compress_level=1)
                os.replace(tmp, target)
                written += 1
            bar.update(min(first + len(batch), stop) - bar.n if bar.total else len(batch))
            if end is not None and first + len(batch) >= end:
                break  # read_frames stops cleanly when not exhausted
    except OSError as e:
        raise RodentsegError(f"cannot write frames to {fdir}: {e.strerror or e}") from None
    finally:
        bar.close()
    return written, skipped


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``frames`` to the ``rodentseg`` subcommands (sets ``func`` = :func:`run_frames`)."""
    p = subparsers.add_parser(
        "frames", help="write a video's frames as PNG files",
        description="Decode VIDEO and write OUT/frames/NNNNNNNNN.png (9-digit frame index, "
                    "RGB). Files already there are kept (an interrupted run resumes).")
    p.add_argument("video", type=Path, metavar="VIDEO", help="video file or folder of images")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--every", type=int, default=1, help="keep one frame in N (default 1)")
    p.add_argument("--start", type=int, default=0, help="first frame index (default 0)")
    p.add_argument("--end", type=int, default=None, help="stop before this frame index")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_frames)
    return p


def run_frames(args: argparse.Namespace) -> int:
    """Run ``rodentseg frames`` from parsed arguments; returns the exit status (0)."""
    written, skipped = extract_frames(args.video, args.out, args.every, args.start, args.end,
                                      progress=not args.quiet)
    print(f"wrote {written} frames to {args.out / 'frames'}"
          + (f" ({skipped} already there)" if skipped else ""))
    return 0
