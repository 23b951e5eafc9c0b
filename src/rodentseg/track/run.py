"""``rodentseg track``: relink per-frame instance masks into stable identities.

Input: instance masks whose ids mean nothing from one frame to the next (a folder of label
PNGs ``NNNNNN.png``, pixel = instance id, 0 = background; or a COCO JSON with RLE or polygon
segmentations, e.g. exported from CVAT, SAM 2 or any detector), optionally the video they come
from (appearance cues and ``overlay.mp4``). Output: ``OUT/<name>/`` in the layout of
:mod:`rodentseg.io.results`, the same as ``rodentseg segment`` writes, plus the readouts of
:func:`rodentseg.track.readouts.finalize`. The output holds the frames that have masks, under
their own frame indices; the overlay shows those frames only.
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rodentseg import __version__
from rodentseg.errors import RodentsegError
from rodentseg.io.masks import iter_coco_frames, iter_label_pngs
from rodentseg.io.results import ResultWriter, discard_on_error, prepare, publish
from rodentseg.io.video import hash_into, probe, read_frames
from rodentseg.track.readouts import finalize
from rodentseg.track.tracker import Tracker
from rodentseg.types import FrameMasks

DEFAULT_FPS = 30.0


@dataclass(frozen=True)
class TrackOptions:
    """Options of a track run (all recorded in ``run.json``).

    Attributes:
        animals: known number of animals (1..255), or None to keep every animal found.
        fps: frame rate for times and speeds; None = the video's, else 30.
        px_per_cm: image scale for speeds in cm/s, or None.
        overlay: write ``overlay.mp4`` (only with a video).
    """

    animals: int | None = None
    fps: float | None = None
    px_per_cm: float | None = None
    overlay: bool = True

    def __post_init__(self):
        if self.animals is not None and not 1 <= self.animals <= 255:
            raise RodentsegError(f"--animals must be between 1 and 255, got {self.animals}")
        for name in ("fps", "px_per_cm"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise RodentsegError(f"--{name.replace('_', '-')} must be > 0, got {v}")


def hash_masks(path: Path) -> str:
    """sha256 of a file's contents, or of a folder's PNG names and contents (sorted by name)."""
    h = hashlib.sha256()
    files = sorted(path.glob("*.png")) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(p.name.encode() + b"\0")
        hash_into(h, p)
    return h.hexdigest()


def open_instance_masks(path: str | Path) -> tuple[Iterator[FrameMasks], int]:
    """The frames of a mask folder or COCO JSON, in frame order, and how many there are.

    Raises:
        RodentsegError: the path is neither a folder of PNGs nor a ``.json`` file, a file is
            unreadable, or frame indices repeat or go backwards (raised while iterating).
    """
    path = Path(path)
    if path.is_dir():
        frames, count = iter_label_pngs(path), len(list(path.glob("*.png")))
    elif path.is_file() and path.suffix.lower() == ".json":
        frames, count = iter_coco_frames(path, id_key="id"), None
    else:
        what = ("does not exist" if not path.exists()
                else f"is a {path.suffix or 'suffix-less'} file")
        raise RodentsegError(f"expected a folder of instance PNGs (NNNNNN.png) or a COCO .json "
                             f"of instance masks, but {path} {what}")

    def ordered() -> Iterator[FrameMasks]:
        last = -1
        try:
            for fm in frames:
                if fm.frame_idx <= last:
                    raise RodentsegError(f"{path}: frame {fm.frame_idx} comes after frame {last};"
                                         " expected each frame index once, in increasing order")
                last = fm.frame_idx
                yield fm
        except ValueError as e:  # e.g. an instance id < 1 in the COCO file
            raise RodentsegError(f"{path}: {e}") from None

    return ordered(), count if count is not None else 0


def _video_frames(video: Path | None) -> Iterator[tuple[int, np.ndarray]] | None:
    if video is None:
        return None
    return ((first + k, f) for first, batch in read_frames(video, 8) for k, f in enumerate(batch))


def track_masks(masks: str | Path, out: str | Path, video: str | Path | None = None,
                opts: TrackOptions = TrackOptions(), name: str | None = None,
                overwrite: bool = False, progress: bool = True) -> Path:
    """Relink instance masks into stable ``track_id`` s; see the module docstring.

    Args:
        masks: folder of instance PNGs or a COCO JSON.
        out: parent output folder; the result goes to ``out/<name>/``.
        video: the video the masks belong to, or None.
        opts: run options.
        name: result folder name; default the video's stem, else the mask folder's / file's
            (the parent's name when that is ``masks`` or ``masks.json``).
        overwrite: replace a finished result of a different run.
        progress: show a progress bar on stderr.

    Returns:
        The result folder.

    Raises:
        RodentsegError: unreadable masks or video, masks of another size than the video or
            beyond its last frame, frames out of order, the result folder would replace the
            input masks, or a different finished result without ``overwrite``. Nothing under
            ``out/<name>/`` changes when it is raised.
    """
    masks, out = Path(masks), Path(out)
    video = Path(video) if video is not None else None
    if name is None:
        base = masks.parent if masks.name in ("masks", "masks.json") else masks
        name = video.stem if video is not None else base.stem
    frames, count = open_instance_masks(masks)
    if masks.resolve().is_relative_to((out / name).resolve()):
        raise RodentsegError(f"the result {out / name} would replace the input masks {masks}; "
                             "choose another --out or --name")
    info = probe(video) if video is not None else None
    fps = opts.fps or (info.fps if info else DEFAULT_FPS)
    signature = {"command": "track", "masks_sha256": hash_masks(masks),
                 "video_sha256": hash_masks(video) if video else None, "options": asdict(opts)}
    partial = prepare(out, name, signature, overwrite)
    if partial is None:
        if progress:
            print(f"{masks}: already done in {out / name} (same masks, video and options); skipped")
        return out / name
    t_start = time.perf_counter()
    tracker = Tracker(n_animals=opts.animals)
    writer, n, last, size = None, 0, -1, None
    with discard_on_error(partial), ExitStack() as stack:
        vframes = _video_frames(video)
        if vframes is not None:
            stack.callback(vframes.close)
        for fm in tqdm(frames, total=count or None, unit="frame", desc=masks.name,
                       disable=not progress, dynamic_ncols=True):
            if size is None:
                size = fm.shape
                if info is not None and size != (info.height, info.width):
                    raise RodentsegError(f"masks are {size[1]}x{size[0]} but {video} is "
                                         f"{info.width}x{info.height}; expected the masks of "
                                         "this video")
                writer = stack.enter_context(ResultWriter(
                    partial, size[1], size[0], fps, overlay=opts.overlay and video is not None))
            elif fm.shape != size:
                raise RodentsegError(f"frame {fm.frame_idx} of {masks} is {fm.shape[1]}x"
                                     f"{fm.shape[0]}, earlier frames are {size[1]}x{size[0]}")
            rgb = None
            if vframes is not None:
                for i, rgb in vframes:
                    if i == fm.frame_idx:
                        break
                else:
                    raise RodentsegError(f"{masks} has frame {fm.frame_idx} but {video} ends "
                                         "before it; expected the masks of this video")
            result = tracker.update(fm.frame_idx, fm.masks, fm.scores, frame=rgb)
            writer.write(result, rgb)
            n, last = n + 1, fm.frame_idx
        if writer is None:
            raise RodentsegError(f"{masks} holds no frames")
        writer.close()
        n_frames = max(info.frame_count, last + 1) if info else last + 1
        finalize(partial, fps, size[1], size[0], opts.px_per_cm, tracker.events, n_frames,
                 video=video, name=name)
    run = {"rodentseg_version": __version__, **signature, "masks": str(masks.resolve()),
           "video": str(video.resolve()) if video else None, "fps": fps,
           "fps_source": "option" if opts.fps else ("video" if info else "default"),
           "frame_count": n, "width": size[1], "height": size[0],
           "python": platform.python_version(),
           "events_dropped": tracker.log.dropped,
           "timings": {"total_s": round(time.perf_counter() - t_start, 3)}}
    return publish(partial, run)

