"""The result folder every command writes (segment, track, annotate), written atomically.

Layout of ``OUT/<name>/``:

- ``masks/NNNNNN.png``: 8-bit label image per frame, pixel = ``track_id`` (0 = background);
- ``masks.json``: the same masks as COCO RLE, ``image_id`` = frame index, ``track_id`` per
  annotation;
- ``tracks.csv``: one row per animal per frame (:data:`TRACK_COLUMNS`; pixels, box ``xyxy``
  with x1/y1 exclusive, ``time_s`` = frame_idx / fps; ``area_px`` and the box cover the whole
  mask, ``cx, cy`` is the body centroid without the tail, :func:`rodentseg.types.body_centroid`);
- ``overlay.mp4``: the video with coloured masks and ids (when frames are given);
- ``run.json``: version, inputs and their hashes, options, timings.

``run.json`` also lists every other file of the folder with its size (``files``), so a result
whose files did not all reach the disk is not taken for a finished one.

Every command goes through the same three steps:

1. :func:`prepare` takes the lock ``OUT/.<name>.lock`` (a second run for the same result is
   refused while the first holds it), decides what to do with what is already there (skip a
   complete identical result, refuse a different one without ``overwrite``, redo a damaged one)
   and makes a fresh partial folder ``OUT/.<name>.partial-<random>/``, unique to the run;
2. the command writes into the partial folder inside ``with discard_on_error(partial):``, which
   removes it and releases the lock when the block raises (Ctrl-C; SIGTERM in the CLI);
3. :func:`publish` writes ``run.json``, flushes every file and folder to the disk (fsync), moves
   the folder to ``OUT/<name>/`` (exchanging it with an old result in one step where the OS
   can) and releases the lock. The lock file stays (empty; removing it would race with a
   run that just opened it).

A run killed at any point (kill -9, power cut) leaves the old result or the new one, complete,
plus at most a partial folder, which the next run for that name removes.
"""

from __future__ import annotations

import csv
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from rodentseg.errors import RodentsegError
from rodentseg.io.atomic import AtomicWriter
from rodentseg.io.masks import CocoWriter, write_label_png
from rodentseg.io.video import VideoWriter
from rodentseg.overlay import OverlayPainter
from rodentseg.types import FrameMasks, body_centroid, mask_box

TRACK_COLUMNS = ["frame_idx", "time_s", "track_id", "area_px", "cx", "cy",
                 "x0", "y0", "x1", "y1", "score"]


def track_rows(fm: FrameMasks, fps: float) -> list[list]:
    """The ``tracks.csv`` rows of one frame (one per object, ordered by id)."""
    rows = []
    for oid, m, s in zip(fm.obj_ids, fm.masks, fm.scores):
        box = mask_box(m)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        crop = m[y0:y1, x0:x1]  # the box is searched once; the centroid is found in the crop
        cx, cy = body_centroid(crop)
        rows.append([fm.frame_idx, round(fm.frame_idx / fps, 4), int(oid), int(crop.sum()),
                     round(cx + x0, 2), round(cy + y0, 2), x0, y0, x1, y1, round(float(s), 4)])
    return rows


class ResultWriter(AtomicWriter):
    """Writes frames of masks into a (partial) result folder, one frame at a time.

    Args:
        folder: the partial folder (created).
        width, height: frame size in pixels.
        fps: frame rate, for ``time_s`` and the overlay.
        overlay: write ``overlay.mp4`` (then :meth:`write` needs each frame's pixels).

    Attributes:
        track_ids: the ids written so far.
    """

    def __init__(self, folder: Path, width: int, height: int, fps: float, overlay: bool = True):
        self.folder = Path(folder)
        (self.folder / "masks").mkdir(parents=True, exist_ok=True)
        self.fps = fps
        self._coco = CocoWriter(self.folder / "masks.json", width, height)
        self._tf = (self.folder / "tracks.csv").open("w", newline="")
        self._table = csv.writer(self._tf)
        self._table.writerow(TRACK_COLUMNS)
        self._video = VideoWriter(self.folder / "overlay.mp4", width, height, fps) if overlay \
            else None
        self._paint = OverlayPainter(fps, height)
        self.track_ids: set[int] = set()

    def write(self, fm: FrameMasks, frame: np.ndarray | None = None) -> None:
        """Record one frame's masks; ``frame`` (H, W, 3) uint8 RGB is needed for the overlay."""
        write_label_png(self.folder / "masks" / f"{fm.frame_idx:06d}.png", fm)
        self._coco.add(fm)
        rows = track_rows(fm, self.fps)
        self._table.writerows(rows)
        self.track_ids.update(fm.obj_ids.tolist())
        if self._video is not None:
            if frame is None:
                raise ValueError("this writer makes an overlay: pass the frame's pixels")
            self._video.write(self._paint(frame, fm, {r[2]: (r[4], r[5]) for r in rows}))

    def close(self) -> None:
        """Finish every file (the folder is still partial until :func:`publish`); once."""
        if self._tf.closed:
            return
        self._coco.close()
        self._tf.close()
        if self._video is not None:
            self._video.close()

    def abort(self) -> None:
        """Stop after an error; the caller removes the partial folder. Every file is closed
        even when closing one fails (a full disk fails the flush of each)."""
        steps = [self._coco.abort, self._tf.close]
        if self._video is not None:
            steps.append(self._video.abort)
        for step in steps:
            try:
                step()
            except Exception:  # noqa: S110 - the error being handled is the one to report
                pass


@dataclass
class _Claim:
    """A run's hold on one result: where it will be published, and the lock taken for it."""

    final: Path
    lock: FileLock


#: partial folder -> its claim, from :func:`prepare` until :func:`publish` or
#: :func:`discard_on_error` lets it go (a partial made elsewhere, as the app does, has none).
_CLAIMS: dict[Path, _Claim] = {}


def _release(partial: Path) -> None:
    claim = _CLAIMS.pop(partial, None)
    if claim is not None:
        claim.lock.release()


@contextmanager
def discard_on_error(partial: Path) -> Iterator[Path]:
    """Remove the partial folder when the block raises (Ctrl-C included), then re-raise.

    What was published before is untouched: only ``partial`` goes, and the lock that
    :func:`prepare` took for it is released.
    """
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        _release(partial)
        raise


def check_writable(out: Path) -> None:
    """Create ``out`` if needed and check that files can be written in it.

    Raises:
        RodentsegError: it cannot be created or written (the OS reason is included).
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".rodentseg-write-test-{uuid.uuid4().hex[:12]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise RodentsegError(
            f"cannot write to output directory {out}: {e.strerror or e}; "
            "expected a directory you can create and write in"
        ) from None


#: Longest result name (bytes) used as is in the hidden names beside it (``.<name>.lock``,
#: ``.<name>.partial-<12 hex>``, ``.<name>.old``); file systems allow 255 bytes per name.
HIDDEN_NAME_BYTES = 200


def hidden_key(name: str) -> str:
    """The part of the hidden names beside ``out/name`` that stands for ``name``: ``name``
    itself, or for a name over :data:`HIDDEN_NAME_BYTES` bytes (a video file name of 248+
    characters) its first 180 bytes, ``~`` and 10 hex digits of its sha1, so that
    ``.<key>.partial-<12 hex>`` fits in 255 bytes and stays unique to ``name``."""
    raw = name.encode()
    if len(raw) <= HIDDEN_NAME_BYTES:
        return name
    return (raw[:180].decode(errors="ignore") + "~"
            + hashlib.sha1(raw, usedforsecurity=False).hexdigest()[:10])


def _lock(out: Path, name: str) -> FileLock:
    """Take the lock of ``out/name`` without waiting.

    Raises:
        RodentsegError: another run (process or thread) holds it.
    """
    path = out / f".{hidden_key(name)}.lock"
    lock = FileLock(path, timeout=0, thread_local=False)  # publish may run on another thread
    try:
        lock.acquire()
    except Timeout:
        raise RodentsegError(
            f"{out / name} is being written by another rodentseg run right now (it holds "
            f"{path}); wait until it ends (a re-run then skips the finished result) or choose "
            "another --out"
        ) from None
    return lock


def _remove_stale(out: Path, name: str) -> None:
    """Remove what killed runs left for ``out/name`` (call with its lock held)."""
    left = re.compile(rf"\.{re.escape(hidden_key(name))}\.(partial(-[0-9a-f]{{12}})?|old)")
    for p in out.iterdir():
        if left.fullmatch(p.name):
            shutil.rmtree(p, ignore_errors=True)


def prepare(out: Path, name: str, signature: dict, overwrite: bool) -> Path | None:
    """Decide about ``out/name`` before a run; returns a fresh partial folder, or None to skip.

    A complete finished result whose ``run.json`` holds the same ``signature`` (input hashes,
    weights, options) is kept and the run skipped. The same result with a file missing or of
    another size than ``run.json`` records (a power cut before the disk had it all) is redone,
    with a line on stderr. A different finished result is an error unless ``overwrite``.
    Partial folders left by killed runs are removed.

    When a folder is returned, this run holds the lock ``out/.<name>.lock`` until
    :func:`publish`, or until the ``discard_on_error(partial)`` block raises.

    Raises:
        RodentsegError: ``out`` cannot be written, another run is writing ``out/name`` now,
            or a different result exists without ``overwrite``.
    """
    check_writable(out)
    final = out / name
    lock = _lock(out, name)
    try:
        if final.exists():
            if matches(final / "run.json", signature):
                damage = incomplete(final)
                if damage is None:
                    lock.release()
                    return None
                print(f"{final} is damaged ({damage}); making it again", file=sys.stderr)
            elif not overwrite:
                raise RodentsegError(
                    f"{final} already holds a result of another run (different input, model or "
                    "options); pass --overwrite to replace it, or choose another --out"
                )
        _remove_stale(out, name)
        partial = out / f".{hidden_key(name)}.partial-{uuid.uuid4().hex[:12]}"
        partial.mkdir()
    except BaseException:
        lock.release()
        raise
    _CLAIMS[partial] = _Claim(final, lock)
    return partial


def matches(run_json: Path, signature: dict) -> bool:
    """True when ``run_json`` exists and agrees with every key of ``signature``."""
    try:
        done = json.loads(run_json.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return all(done.get(k) == v for k, v in signature.items())


def incomplete(folder: Path) -> str | None:
    """What is wrong with a published result's files, or None when they are all there.

    Checks each file ``run.json`` lists (``files``: path -> size in bytes) exists with that
    size. A ``run.json`` from before the list was recorded passes when no file is empty.
    """
    try:
        files = json.loads((folder / "run.json").read_text()).get("files")
    except (OSError, json.JSONDecodeError) as e:
        return f"run.json unreadable: {e}"
    if files is None:
        empty = [p for p in folder.rglob("*") if p.is_file() and p.stat().st_size == 0]
        return f"{empty[0].relative_to(folder)} is empty" if empty else None
    for rel, size in files.items():
        try:
            found = (folder / rel).stat().st_size
        except OSError:
            return f"{rel} is missing"
        if found != size:
            return f"{rel} has {found} bytes, run.json recorded {size}"
    return None


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's content to the disk (folders: POSIX only)."""
    if os.name != "posix":
        if path.is_dir():
            return
        fd = os.open(path, os.O_RDWR)  # Windows flushes only what it may write
    else:
        fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(folder: Path) -> dict[str, int]:
    """fsync every file and folder under ``folder`` (itself last).

    Returns:
        ``{path relative to folder (POSIX separators): size in bytes}`` of every file, sorted.
    """
    files = {}
    for root, dirs, names in os.walk(folder, topdown=False):
        root = Path(root)
        for n in names:
            _fsync(root / n)
            files[(root / n).relative_to(folder).as_posix()] = (root / n).stat().st_size
        _fsync(root)
    return dict(sorted(files.items()))


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Returns:
        False when the OS or the file system cannot (nothing was changed then).

    Raises:
        OSError: the exchange failed for another reason.
    """
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) \
        if sys.platform == "linux" else None
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def publish(partial: Path, run: dict) -> Path:
    """Write ``run.json`` and move the partial folder to its final name (replacing an old one).

    Every file and folder reaches the disk (fsync) before the move, and the move itself before
    this returns, so after a power cut ``run.json`` never stands beside missing or short
    files. ``run.json`` gets ``files``, the size of every other file (checked by
    :func:`incomplete` before a later run skips the result). An old result is exchanged with
    the new one in one step where the OS can (Linux), so ``out/<name>/`` never disappears in
    between; elsewhere it is gone for the instant between two renames. The lock that
    :func:`prepare` took is released. If publishing fails, the partial folder is removed.

    Returns:
        The final folder (``out/<name>/``).

    Raises:
        OSError: writing, flushing or moving failed (a full disk, for instance).
    """
    claim = _CLAIMS.get(partial)
    final = claim.final if claim else partial.with_name(partial.name[1:].removesuffix(".partial"))
    try:
        run = {**run, "files": sync_tree(partial)}  # before run.json, which is not listed
        with (partial / "run.json").open("w") as f:
            f.write(json.dumps(run, indent=2) + "\n")
            f.flush()
            os.fsync(f.fileno())
        _fsync(partial)
        if not final.exists():
            os.replace(partial, final)
        elif not _exchange(partial, final):  # partial holds the old result after an exchange
            old = final.with_name(f".{hidden_key(final.name)}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            try:
                os.replace(partial, final)
            except BaseException:
                os.replace(old, final)
                raise
            shutil.rmtree(old, ignore_errors=True)
        _fsync(final.parent)
    finally:
        shutil.rmtree(partial, ignore_errors=True)  # unpublished, or the old result
        _release(partial)
    return final
