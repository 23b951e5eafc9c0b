"""What one user of the app has open: the video, the animals, the clicks and the results.

The Gradio layer (:mod:`rodentseg.app.ui`) keeps one :class:`AppSession` per browser session in a
``gr.State``: every user has their own video, objects, work folder and results, and nothing is
shared between sessions except the loaded model weights (:class:`AppModel`, read-only).
Everything here works without Gradio, which is how the tests drive it.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rodentseg import __version__
from rodentseg.annotate.frames import FrameSource
from rodentseg.annotate.review import ReviewRanker
from rodentseg.app.backends import SamBackend, SegmenterBackend
from rodentseg.app.paths import check_openable, resolve_root, resolve_under_root
from rodentseg.app.prompting import FramePrompt
from rodentseg.app.render import draw_frame
from rodentseg.app.save import Saved, save_session
from rodentseg.errors import RodentsegError
from rodentseg.models import DEFAULT_MODEL, MODEL_REGISTRY, Segmenter, load_model

log = logging.getLogger("rodentseg.app")

#: The click modes of the app, in the order the UI shows them.
CLICK_MODES = ("foreground point", "background point", "box (2 clicks)")
MAX_OBJ_ID = 255


@dataclass
class AppModel:
    """The model the app serves, loaded once and shared (read-only) by every session.

    Attributes:
        name: what ``--model`` named.
        segmenter: a :class:`rodentseg.models.Segmenter` (default backend), or None.
        video_model: a SAM-family :class:`rodentseg.annotate.adapter.VideoModel`, or None.
        device: the device string it was loaded with (``auto``, ``cpu``, ``cuda``).
    """

    name: str
    segmenter: Segmenter | None = None
    video_model: object | None = None
    device: str = "auto"
    _default: Segmenter | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def kind(self) -> str:
        """``segmenter`` or ``sam``."""
        return "segmenter" if self.segmenter is not None else "sam"

    @property
    def weights_sha256(self) -> str:
        m = self.segmenter if self.segmenter is not None else self.video_model
        return m.weights_sha256

    def backend(self, source: FrameSource, work_dir: Path):
        """A fresh backend for one opened video (:mod:`rodentseg.app.backends`)."""
        if self.segmenter is not None:
            return SegmenterBackend(self.segmenter, source, work_dir)
        return SamBackend(self.video_model, source, work_dir)

    def default_segmenter(self) -> Segmenter:
        """``rodentseg-tiny`` for the whole-video run (the served model when it is that one)."""
        if self.segmenter is not None and self.name == DEFAULT_MODEL:
            return self.segmenter
        with self._lock:
            if self._default is None:
                self._default = load_model(DEFAULT_MODEL, self.device)
            return self._default


def load_app_model(name: str = DEFAULT_MODEL, device: str = "auto") -> AppModel:
    """Load ``--model``: a rodentseg segmenter (registry name or directory whose
    ``config.json`` has a ``rodentseg`` block), else a SAM-family video model (short name, hub
    id or ``save_pretrained`` directory, :func:`rodentseg.annotate.load_video_model`).

    Raises:
        RodentsegError: the model cannot be loaded (the loaders' messages).
    """
    path = Path(name)
    is_segmenter = name in MODEL_REGISTRY
    if not is_segmenter and (path / "config.json").is_file():
        try:
            is_segmenter = "rodentseg" in json.loads((path / "config.json").read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            is_segmenter = False
    if is_segmenter:
        return AppModel(name, segmenter=load_model(name, device), device=device)
    from rodentseg.annotate.adapter import load_video_model

    return AppModel(name, video_model=load_video_model(name, device), device=device)


class AppSession:
    """One user's work: open a video, click animals, propagate, review, save.

    Args:
        model: the shared :class:`AppModel`.
        data_root: the only folder files may be opened from by path.
        out: folder that saved results are also copied to (``--out``), or None.
        work_root: parent of this session's private temporary work folder (default: system temp).

    Attributes:
        frame_idx: the frame shown; ``obj_id``: the animal the next click goes to;
        ``mode``: one of :data:`CLICK_MODES`; ``last_latency_ms``: time of the last click,
        from the event to the rendered overlay; ``latencies_ms``: all of them.

    Raises:
        RodentsegError: ``data_root`` is not a directory.
    """

    def __init__(self, model: AppModel, data_root: str | Path, out: str | Path | None = None,
                 work_root: str | Path | None = None):
        self.model = model
        self.data_root = resolve_root(data_root)
        self.out = Path(out) if out is not None else None
        self._tmp = tempfile.TemporaryDirectory(prefix="rodentseg-app-", dir=work_root)
        self.work = Path(self._tmp.name)
        self.lock = threading.RLock()
        self.source: FrameSource | None = None
        self.backend = None
        self.video: Path | None = None
        self._shown: tuple[int, np.ndarray | None] = (0, None)  # (frame_idx, pixels), swapped whole
        self.obj_ids: list[int] = [1]
        self.obj_id = 1
        self.mode = CLICK_MODES[0]
        self.pending_corner: tuple[float, float] | None = None
        self.last_latency_ms: float | None = None
        self.latencies_ms: list[float] = []
        self.notes: list[str] = []
        self.review: list[list] = []
        self._review_pos = -1
        self._history: list[tuple[int, int, FramePrompt | None]] = []
        self._opened = 0

    # ------------------------------------------------------------------ opening
    def open_path(self, text: str) -> Path:
        """Open a video or image by a path inside the data root (see :mod:`.paths`)."""
        return self._open(check_openable(resolve_under_root(self.data_root, text)))

    def open_upload(self, path: str | Path) -> Path:
        """Open a file the user uploaded (Gradio has stored it in its upload folder)."""
        return self._open(check_openable(Path(path)))

    def _open(self, path: Path) -> Path:
        source = FrameSource(path)
        with self.lock:
            if self.backend is not None:
                self.backend.close()
            self._opened += 1
            work = self.work / f"video-{self._opened}"
            work.mkdir()
            self.source, self.video = source, path
            self.backend = self.model.backend(source, work)
            self.obj_ids, self.obj_id, self.pending_corner = [1], 1, None
            self.review, self._review_pos, self._history, self.notes = [], -1, [], []
            self.goto(0)
        return path

    def require_open(self) -> FrameSource:
        """The open video.

        Raises:
            RodentsegError: nothing is open yet.
        """
        if self.source is None:
            raise RodentsegError("no video open: open a video or image first (path or upload)")
        return self.source

    # ---------------------------------------------------------------- navigating
    def goto(self, frame_idx: int) -> None:
        """Show frame ``frame_idx`` (0-based); cancels a half-drawn box."""
        src = self.require_open()
        t = int(frame_idx)
        if not 0 <= t < src.n_frames:
            raise RodentsegError(f"frame {t} is outside the video (frames 0..{src.n_frames - 1})")
        self._shown = (t, src.frame(t))
        self.pending_corner = None
        if hasattr(self.backend, "prefetch"):
            self.backend.prefetch(t, self._shown[1])

    @property
    def frame_idx(self) -> int:
        """Index of the frame shown (0-based)."""
        return self._shown[0]

    def render(self) -> np.ndarray | None:
        """(H, W, 3) uint8 RGB: the frame shown with masks and clicks (None: nothing open)."""
        t, frame = self._shown
        if frame is None:
            return None
        fm = self.backend.store.frame_masks(t)
        prompts = dict(self.backend.prompts.get(t, {}))
        return draw_frame(frame, fm, prompts, self.pending_corner, self.obj_id)

    # ------------------------------------------------------------------- clicks
    def new_object(self) -> int:
        """Start a new animal (the next free id) and select it.

        Raises:
            RodentsegError: all 255 ids (8-bit label PNGs) are taken.
        """
        oid = max(self.obj_ids) + 1
        if oid > MAX_OBJ_ID:
            raise RodentsegError(f"at most {MAX_OBJ_ID} animals (ids must fit an 8-bit label)")
        self.obj_ids.append(oid)
        self.obj_id = oid
        return oid

    def select_object(self, obj_id: int) -> None:
        """Send the next clicks to ``obj_id`` (one of :attr:`obj_ids`)."""
        if int(obj_id) not in self.obj_ids:
            raise RodentsegError(f"unknown animal {obj_id}; expected one of {self.obj_ids} or "
                                 "'new animal'")
        self.obj_id, self.pending_corner = int(obj_id), None

    def set_mode(self, mode: str) -> None:
        """Choose a click mode (:data:`CLICK_MODES`)."""
        if mode not in CLICK_MODES:
            raise RodentsegError(f"click mode must be one of {CLICK_MODES}, got {mode!r}")
        self.mode, self.pending_corner = mode, None

    def click(self, x: float, y: float) -> np.ndarray:
        """Apply one click at image pixel (x, y) of the shown frame, in the current mode.

        A box needs two clicks (first top-left, then bottom-right; any two opposite corners
        work); the first is only remembered. Notes for the user go to :attr:`notes`.

        Returns:
            The new overlay (:meth:`render`); the time from the call to it is the latency.

        Raises:
            RodentsegError: nothing open, a click outside the frame, or a box of zero size.
        """
        t0 = time.perf_counter()
        src = self.require_open()
        if not (0 <= x < src.width and 0 <= y < src.height):
            raise RodentsegError(f"click ({x}, {y}) is outside the {src.width}x{src.height} frame")
        with self.lock:
            t, frame = self._shown  # one snapshot: the slider may move meanwhile
            old = self.backend.prompts.get(t, {}).get(self.obj_id)
            new = FramePrompt() if old is None else FramePrompt(list(old.points),
                                                                list(old.labels), old.box)
            if self.mode == CLICK_MODES[2]:
                if self.pending_corner is None:
                    self.pending_corner = (float(x), float(y))
                    self.notes = ["box: now click the opposite (bottom-right) corner"]
                    return self.render()
                (ax, ay), self.pending_corner = self.pending_corner, None
                if ax == x or ay == y:
                    raise RodentsegError("a box needs two corners that differ in x and in y; "
                                         f"got ({ax}, {ay}) and ({x}, {y})")
                new.box = (min(ax, x), min(ay, y), max(ax, x), max(ay, y))
            else:
                new.points.append((float(x), float(y)))
                new.labels.append(1 if self.mode == CLICK_MODES[0] else 0)
            self._history.append((t, self.obj_id, old))
            self.notes = self.backend.set_prompt(t, frame, self.obj_id, new)
            image = self.render()
        ms = (time.perf_counter() - t0) * 1000
        self.last_latency_ms = ms
        self.latencies_ms.append(ms)
        log.info("click (%.0f, %.0f) frame %d animal %d: %.0f ms", x, y, t,
                 self.obj_id, ms)
        return image

    def undo(self) -> None:
        """Undo the last click (on whichever frame it was; that frame is shown)."""
        if not self._history:
            raise RodentsegError("nothing to undo")
        with self.lock:
            t, oid, prev = self._history.pop()
            if t != self.frame_idx:
                self.goto(t)
            self.pending_corner = None
            self.notes = self.backend.set_prompt(t, self._shown[1], oid, prev or FramePrompt())

    # -------------------------------------------------------------- propagation
    def propagate(self, n_frames: int, on_frame: Callable[[int], None] | None = None) -> int:
        """Propagate every animal from the shown frame through the next ``n_frames`` frames,
        then rank the frames for review. Returns the frames computed.

        Raises:
            RodentsegError: ``n_frames`` < 1, nothing open, or nothing to propagate.
        """
        self.require_open()
        if int(n_frames) < 1:
            raise RodentsegError(f"frames to propagate must be >= 1, got {n_frames}")
        with self.lock:
            done = self.backend.propagate(self.frame_idx, int(n_frames), on_frame)
            self.rank()
        return done

    def rank(self) -> list[list]:
        """Rank the frames that hold results by uncertainty (:class:`ReviewRanker`); returns
        rows of ``REVIEW_COLUMNS``, most uncertain first."""
        src = self.require_open()
        ranker = ReviewRanker(src.fps)
        for t in self.backend.store.frames:
            ranker.update(t, self.backend.store.get(t))
        self.review, self._review_pos = ranker.ranked(), -1
        return self.review

    def next_review_frame(self) -> int:
        """Go to the next frame of the review queue (wrapping around); returns its index.

        Raises:
            RodentsegError: the queue is empty (propagate first).
        """
        queue = [r for r in self.review if r[3] > 0] or self.review
        if not queue:
            raise RodentsegError("the review queue is empty: propagate first")
        self._review_pos = (self._review_pos + 1) % len(queue)
        self.goto(queue[self._review_pos][1])
        return self.frame_idx

    # -------------------------------------------------------------------- output
    def mask_info(self) -> dict:
        """What the frame shown holds, for the UI and tests: ``frame_idx``, ``n_frames``, the
        selected ``obj_id``, ``areas`` (``{obj_id: pixels}``), click ``latency_ms``."""
        if self.source is None:
            return {"video": None}
        fm = self.backend.store.frame_masks(self.frame_idx)
        return {"video": self.video.name, "frame_idx": self.frame_idx,
                "n_frames": self.source.n_frames, "obj_id": self.obj_id,
                "obj_ids": list(self.obj_ids), "mode": self.mode,
                "areas": {str(int(o)): int(m.sum()) for o, m in zip(fm.obj_ids, fm.masks)},
                "frames_with_masks": len(self.backend.store.frames),
                "latency_ms": None if self.last_latency_ms is None
                else round(self.last_latency_ms, 1)}

    def save(self, on_frame: Callable[[int], None] | None = None) -> Saved:
        """Write the result folder and the training dataset (:func:`save_session`) into the
        session's work folder, and copy both to ``out`` when it was given."""
        src = self.require_open()
        with self.lock:
            run = {"rodentseg_version": __version__, "command": "app", "backend":
                   self.backend.kind, "model": self.model.name,
                   "weights_sha256": self.model.weights_sha256, "video": str(self.video),
                   "prompted_frames": sorted(t for t, p in self.backend.prompts.items() if p),
                   "obj_ids": sorted(self.obj_ids), "python": platform.python_version()}
            saved = save_session(self.backend.store, src, self.work / "saved", self.video.stem,
                                 run, on_frame=on_frame)
        if self.out is not None:
            for folder in (saved.result, saved.dataset):
                target = self.out / folder.name
                if target.exists():
                    shutil.rmtree(target)
                shutil.copytree(folder, target)
        return saved

    def run_segment(self, animals: int | None = None,
                    on_batch: Callable[[int], None] | None = None) -> Path:
        """Run ``rodentseg segment`` with the default model on the whole open video, into this
        session's work folder; returns the result folder (``tracks.csv``, ``summary.csv``...)."""
        from rodentseg.segment import SegmentOptions, segment_video

        self.require_open()
        opts = SegmentOptions(animals=animals)
        return segment_video(self.video, self.work / "segment", self.model.default_segmenter(),
                             opts, overwrite=True, progress=False, on_batch=on_batch)

    def close(self) -> None:
        """Delete this session's work folder and results."""
        if self.backend is not None:
            self.backend.close()
        self._tmp.cleanup()
