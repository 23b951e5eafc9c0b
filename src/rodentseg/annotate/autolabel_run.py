"""``rodentseg autolabel``: a training dataset from a video and what the lab already has.

Examples::

    rodentseg autolabel labeled-data/m4s1 --keypoints CollectedData_Pranav.csv --out ds/m4s1
    rodentseg autolabel two_mice.mp4 --keypoints two_miceDLC.csv --keypoint-scale 0.5 --out ds/
    rodentseg autolabel session.mp4 --keypoints session.slp --slp-video top.mp4 --out ds/
    rodentseg autolabel arena.mp4 --animals 2 --out ds/      # no keypoints: background only
    rodentseg autolabel clip1.avi clip2.avi --animals 1 --out ds/  # clips of one camera
    rodentseg autolabel clips/*.avi --animals 1 --set colour=1 --out ds/  # brown on grey
    rodentseg autolabel two_mice.mp4 --keypoints k.csv --frames 3300-3450 --out ds/

Writes ``OUT/`` in the layout ``rodentseg train`` reads:

- ``frames/NAME`` and ``masks/NAME.png``: the frames it labelled with confidence and their label
  PNGs (pixel = instance id: the keypoint file's individuals in order of appearance, 1, 2, ...;
  0 = background). A video's frames are named ``NNNNNNNNN.png`` (frame index, as
  ``rodentseg frames`` writes them); an image folder keeps its file names.
- ``left_out/frames``, ``left_out/masks``: the frames it could not label with confidence (a
  person may fix the mask and move both files up), listed in ``left_out.csv`` with the reason.
- ``review.csv``: every labelled frame, most doubtful first (doubt and its cue per animal).
- ``sheets/sheet_NNN.png``: contact sheets, most doubtful first: per animal a zoomed crop of the
  frame with the mask's outline and the keypoints, captioned with frame, id and doubt.
- ``sources.csv``: each labelled frame's file name, source video (or image) and frame index
  in it, so a dataset can be kept without its frames (``frames/`` can be deleted; see
  ``data/labels/``).
- ``run.json``: inputs, options, counts, the individual -> id table.

The cues and the rule are in :mod:`rodentseg.annotate.autolabel`. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage
from scipy.spatial.distance import pdist
from tqdm import tqdm

from rodentseg import __version__
from rodentseg.annotate.autolabel import (
    DOUBT_CUES,
    AnimalPrior,
    AnimalResult,
    LabelParams,
    area_cue,
    contrast,
    is_body_part,
    is_grey,
    is_tail_base,
    label_frame,
    masked_median_background,
    near_points,
    prompt_masks,
    top_cue,
)
from rodentseg.errors import RodentsegError
from rodentseg.io.keypoints import Keypoints, read_keypoints
from rodentseg.io.masks import frame_index_of
from rodentseg.train.frames_cli import INDEX_DIGITS, VideoFrames

#: Frames sampled over the video for its background.
BACKGROUND_FRAMES = 60
REVIEW_COLUMNS = ["rank", "frame", "frame_idx", "obj_id", "individual", "doubt", "reason",
                  "area_px", "kept"]
SOURCE_COLUMNS = ["frame", "source", "frame_idx"]
PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60)]


@dataclass
class AutolabelSummary:
    """What :func:`autolabel` did.

    Attributes:
        out: the dataset folder. labelled: frames given masks. kept: frames in ``frames/``.
        left_out: frames in ``left_out/``. individuals: name -> instance id.
        background: ``"video"`` (temporal median) or ``"local"`` (per frame).
    """

    out: Path
    labelled: int
    kept: int
    left_out: int
    individuals: dict
    background: str
    seconds: float


class Clips(Sequence):
    """The frames of one or more inputs filmed by one still camera, as one sequence (so they
    share one background): ``clips[i]`` -> (H, W, 3) uint8 RGB.

    Args:
        inputs: video files or folders of images, all of one frame size.

    Raises:
        RodentsegError: no input, an unreadable one, or inputs of different sizes.
    """

    def __init__(self, inputs: Sequence[str | Path]):
        if not inputs:
            raise RodentsegError("autolabel needs at least one INPUT video or image folder")
        self.parts = [VideoFrames(v) for v in inputs]
        first = self.parts[0]
        for v in self.parts[1:]:
            if (v.height, v.width) != (first.height, first.width):
                raise RodentsegError(f"{v.path} is {v.width}x{v.height} but {first.path} is "
                                     f"{first.width}x{first.height}; several INPUTs must come "
                                     "from one camera (one frame size)")
        self.height, self.width = first.height, first.width
        self.starts = np.cumsum([0] + [len(v) for v in self.parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, i: int) -> tuple[VideoFrames, int]:
        """The input holding frame ``i`` and the frame's index in it."""
        k = int(np.searchsorted(self.starts, i, side="right") - 1)
        return self.parts[k], int(i - self.starts[k])

    def __getitem__(self, i: int) -> np.ndarray:
        part, j = self.locate(i)
        return part[j]

    def name(self, i: int) -> tuple[str, Path | None]:
        """Frame ``i``'s file name in ``frames/`` and, for an image, the file to copy: an image
        folder's own file names, ``NNNNNNNNN.png`` (frame index) for a video, prefixed with the
        input's stem when there are several inputs."""
        part, j = self.locate(i)
        prefix = f"{part.path.stem}_" if len(self.parts) > 1 else ""
        if part._files is not None:
            return prefix + part._files[j].name, part._files[j]
        return f"{prefix}{j:0{INDEX_DIGITS}d}.png", None

    def positions(self) -> dict[int, int] | None:
        """For one image folder: frame number in the file name -> position (keypoint files
        name frames by file); None for a video."""
        part = self.parts[0]
        if len(self.parts) > 1 or part._files is None:
            return None
        out = {}
        for pos, f in enumerate(part._files):
            try:
                out.setdefault(frame_index_of(f), pos)
            except RodentsegError:
                pass
        return out


def _individuals(kp: Keypoints) -> list[str]:
    """Individuals in order of first appearance (the instance ids 1, 2, ...)."""
    seen: dict[str, None] = {}
    for v in kp.individual[np.argsort(kp.frame_idx, kind="stable")]:
        seen.setdefault(str(v), None)
    return list(seen)


def _priors_from_keypoints(kp: Keypoints, positions: dict[int, int] | None, n_frames: int,
                           shape: tuple[int, int]) -> tuple[dict[int, list], list[str]]:
    """frame position -> one :class:`AnimalPrior` per individual (None where it has no
    point on that frame), and the individuals' names."""
    names = _individuals(kp)
    body = np.array([is_body_part(b) for b in kp.bodypart])
    tail = np.array([is_tail_base(b) for b in kp.bodypart])
    h, w = shape
    inside = (kp.xy[:, 0] > -0.5) & (kp.xy[:, 0] < w - 0.5) & (kp.xy[:, 1] > -0.5) & (
        kp.xy[:, 1] < h - 0.5)
    groups: dict[tuple[int, str], np.ndarray] = {}
    for i in np.nonzero(inside)[0]:
        f = int(kp.frame_idx[i])
        f = positions.get(f) if positions is not None else f
        if f is None or not 0 <= f < n_frames:
            continue
        groups.setdefault((f, str(kp.individual[i])), []).append(i)
    spreads: dict[str, list[float]] = {n: [] for n in names}
    for (f, name), idx in groups.items():
        xy = kp.xy[idx]
        if len(xy) >= 2:
            spreads[name].append(float(pdist(xy).max()))
    lengths = {n: float(np.median(v)) if v else math.nan for n, v in spreads.items()}
    out: dict[int, list] = {}
    for (f, name), idx in sorted(groups.items()):
        idx = np.asarray(idx)
        if not math.isfinite(lengths[name]) or len(idx) < 2:
            continue
        row = out.setdefault(f, [None] * len(names))
        tb = idx[tail[idx]]
        row[names.index(name)] = AnimalPrior(name, kp.xy[idx], body[idx], lengths[name],
                                             kp.xy[tb[0]] if len(tb) else None)
    return out, names


def _in_range(f: int, frame_range: tuple[int, int] | None) -> bool:
    return frame_range is None or frame_range[0] <= f <= frame_range[1]


def _sample(n: int, k: int) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all when n <= k)."""
    if n <= k:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


def _background(frames: Clips, priors: dict[int, list], progress: bool, colour: bool = False
                ) -> tuple[np.ndarray, np.ndarray] | None:
    """The video's background (masked temporal median) and its coverage, or None for too
    few frames; in RGB with ``colour`` unless every sampled frame is grey (then luma)."""
    n = len(frames)
    if n < 5:
        return None
    # frames where the animals are known, so they can be left out of the median (an animal
    # resting on frames without keypoints would become background); else spread evenly
    known = sorted(priors)
    picks = ([known[i] for i in _sample(len(known), BACKGROUND_FRAMES)]
             if len(known) >= min(n, 5) else _sample(n, BACKGROUND_FRAMES))
    imgs, exclude = [], []
    for f in tqdm(picks, desc="background", unit="frame", disable=not progress, leave=False):
        img = frames[f]
        imgs.append(img)
        ps = [p for p in priors.get(f, []) if p is not None]
        exclude.append(None if not ps else np.any(
            [near_points(img.shape[:2], p.xy, 0.8 * p.length_px) for p in ps], axis=0))
    colour = colour and not all(is_grey(img) for img in imgs)
    return masked_median_background(imgs, exclude, colour=colour)


def _blob_priors(frame: np.ndarray, background: np.ndarray, animals: int,
                 params: LabelParams) -> list[AnimalPrior]:
    """Without keypoints: the ``animals`` largest blobs that differ from the background (Otsu's
    threshold on the absolute contrast, :func:`rodentseg.annotate.autolabel.contrast`), each
    described by five points along its long axis."""
    c = np.abs(ndimage.gaussian_filter(contrast(frame, background), 1.0))
    hist, edges = np.histogram(c, bins=256, range=(0, max(1.0, float(c.max()))))
    centres = (edges[:-1] + edges[1:]) / 2
    wsum = np.cumsum(hist)
    msum = np.cumsum(hist * centres)
    total, mtotal = wsum[-1], msum[-1]
    with np.errstate(all="ignore"):
        between = (mtotal * wsum / total - msum) ** 2 / (wsum * (total - wsum))
    thr = max(2 * params.min_contrast, float(centres[int(np.nanargmax(between))]))
    fg = ndimage.binary_opening(c > thr, np.ones((5, 5), bool))
    lab, n = ndimage.label(fg)
    if n == 0:
        return []
    sizes = ndimage.sum_labels(fg, lab, np.arange(1, n + 1))
    priors = []
    for k in np.argsort(sizes)[::-1][:animals]:
        if sizes[k] < 0.2 * sizes.max():
            break
        ys, xs = np.nonzero(lab == k + 1)
        pts = np.stack([xs, ys], 1).astype(float)
        mean = pts.mean(0)
        u = np.linalg.svd(pts - mean, full_matrices=False)[2][0]
        t = (pts - mean) @ u
        lo, hi = np.percentile(t, [10, 90])
        xy = mean[None] + np.linspace(lo, hi, 5)[:, None] * u[None]
        length = float(max(8.0, np.percentile(t, 99) - np.percentile(t, 1)))
        priors.append(AnimalPrior(f"blob{len(priors) + 1}", xy, np.ones(5, bool), length))
    return priors


def _crop_tile(frame: np.ndarray, r: AnimalResult, prior: AnimalPrior | None,
               size: int = 240) -> Image.Image:
    """A zoomed crop around one animal: frame, mask tinted and outlined in the colour of its
    id, keypoints (yellow: body points, cyan: tail, paws, ear tips), under a blank band for
    its caption."""
    h, w = r.mask.shape
    ys, xs = np.nonzero(r.mask)
    if len(xs):
        cx, cy, ext = xs.mean(), ys.mean(), max(np.ptp(xs), np.ptp(ys))
    elif prior is not None:
        cx, cy, ext = prior.xy[:, 0].mean(), prior.xy[:, 1].mean(), prior.length_px
    else:
        cx, cy, ext = w / 2, h / 2, min(h, w)
    half = int(max(24, 0.6 * ext + 8))
    x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
    x1, y1 = int(min(w, cx + half)), int(min(h, cy + half))
    img = frame[y0:y1, x0:x1].copy()
    m = r.mask[y0:y1, x0:x1]
    edge = m & ~ndimage.binary_erosion(m)
    colour = PALETTE[(r.obj_id - 1) % len(PALETTE)]
    img[m] = (0.7 * img[m] + 0.3 * np.asarray(colour)).astype(np.uint8)  # tint: what is in
    img[edge] = colour
    scale = size / max(img.shape[:2])
    tile = Image.fromarray(img).resize((max(1, round(img.shape[1] * scale)),
                                        max(1, round(img.shape[0] * scale))), Image.NEAREST)
    draw = ImageDraw.Draw(tile)
    if prior is not None:
        for (x, y), b in zip(prior.xy, prior.body):
            px, py = (x + 0.5 - x0) * scale, (y + 0.5 - y0) * scale
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], outline=(255, 255, 0) if b else
                         (0, 255, 255), width=1)
    out = Image.new("RGB", (size, size + 14), (255, 255, 255))
    out.paste(tile, (0, 14))
    return out


def _write_sheets(folder: Path, tiles: list[tuple[float, Image.Image]], per_sheet: int = 24,
                  cols: int = 6) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tiles = sorted(tiles, key=lambda t: -t[0])
    for s in range(0, len(tiles), per_sheet):
        chunk = [t for _, t in tiles[s:s + per_sheet]]
        tw, th = chunk[0].width, chunk[0].height
        rows = math.ceil(len(chunk) / cols)
        sheet = Image.new("RGB", (cols * (tw + 4), rows * (th + 4)), (255, 255, 255))
        for k, t in enumerate(chunk):
            sheet.paste(t, ((k % cols) * (tw + 4), (k // cols) * (th + 4)))
        sheet.save(folder / f"sheet_{s // per_sheet + 1:03d}.png")


def autolabel(video: str | Path | Sequence[str | Path], out: str | Path,
              keypoints: str | Path | None = None, *,
              animals: int | None = None, slp_video: str | None = None,
              keypoint_scale: float = 1.0, min_likelihood: float | None = 0.5,
              max_frames: int = 300, frame_range: tuple[int, int] | None = None,
              params: LabelParams | None = None, empty: bool = False,
              sources_root: str | Path | None = None, model: str | None = None,
              device: str = "auto", overwrite: bool = False,
              progress: bool = True) -> AutolabelSummary:
    """Label frames of ``video`` from keypoints and the video's background (module docstring).

    Args:
        video: a video file or a folder of images, or several of them filmed by one still
            camera (clips of one session: they share one background; without keypoints only).
        out: the dataset folder to write (refused when it exists, unless ``overwrite``).
        keypoints: DeepLabCut CSV/H5, SLEAP ``.slp`` or ``frame,bodypart,x,y[,individual]``
            CSV; frames are those with keypoints. Without it, ``animals`` blobs that differ
            from the video's background are labelled on ``max_frames`` frames spread evenly.
        animals: the number of animals, needed without keypoints.
        slp_video: the video to read from a ``.slp`` that labels several.
        keypoint_scale: multiply keypoint coordinates by it (labels made at another size).
        min_likelihood: drop model-predicted keypoints below this likelihood.
        max_frames: most frames labelled, spread evenly over those available.
        frame_range: (first, last) frame positions (inclusive): label only frames in it (the
            background is still made from the whole video), e.g. a stretch where the animals
            meet.
        empty: the video shows no animal (an empty arena): ``max_frames`` frames spread evenly
            get empty masks, as true negatives for training.
        sources_root: write ``sources.csv`` paths relative to this folder (a data root), so
            the masks can be kept without frames and found again on another machine.
        model: a SAM-family model (hub id such as ``facebook/sam2.1-hiera-tiny``, a short name
            such as ``sam2.1-tiny``, or a local folder) whose prompts are the keypoints
            (:func:`rodentseg.annotate.autolabel.prompt_masks`); None: contrast only, offline.
        device: where the model runs (``auto``, ``cpu``, ``cuda``).

    Returns:
        An :class:`AutolabelSummary`.

    Raises:
        RodentsegError: unreadable inputs, no keypoint on any frame of the video, neither
            keypoints nor ``animals``, or ``out`` exists.
    """
    t0 = time.time()
    inputs = [Path(video)] if isinstance(video, (str, Path)) else [Path(v) for v in video]
    out = Path(out)
    params = params or LabelParams()
    if empty and (keypoints is not None or animals):
        raise RodentsegError("--empty labels an arena without animals; it cannot be combined "
                             "with --keypoints or --animals")
    if keypoints is None and not animals and not empty:
        raise RodentsegError("autolabel needs --keypoints FILE or --animals N (the number of "
                             "animals to find against the background), or --empty for an "
                             "empty arena; got none of them")
    if out.exists() and not overwrite and any(out.iterdir()):
        raise RodentsegError(f"{out} exists and is not empty; choose a new --out or pass "
                             "--overwrite")
    if keypoints is not None and len(inputs) > 1:
        raise RodentsegError(f"--keypoints labels one video; got {len(inputs)} INPUTs")
    frames = Clips(inputs)
    shape = (frames.height, frames.width)
    predictor = None
    if model is not None:
        from rodentseg.annotate.adapter import load_image_model

        predictor = load_image_model(model, device)
    if keypoints is not None:
        kp = read_keypoints(keypoints, min_likelihood, video=slp_video, scale=keypoint_scale)
        priors, names = _priors_from_keypoints(kp, frames.positions(), len(frames), shape)
        if not priors:
            raise RodentsegError(f"no keypoint of {keypoints} falls on a frame of {inputs[0]} "
                                 f"({len(frames)} frames, {frames.width}x{frames.height}); "
                                 "check the file, --slp-video or --keypoint-scale")
        todo = [f for f in sorted(priors) if _in_range(f, frame_range)]
        todo = [todo[i] for i in _sample(len(todo), max_frames)]
    else:
        priors, names = {}, [f"animal{k + 1}" for k in range(animals or 0)]
        todo = [f for f in range(len(frames)) if _in_range(f, frame_range)]
        todo = [todo[i] for i in _sample(len(todo), max_frames)]
    bg = None if empty else _background(frames, priors, progress, colour=bool(params.colour))
    for _ in range(int(params.background_passes) - 1):
        if bg is None or keypoints is not None or not animals:
            break
        # the blobs found against the first background stand in for keypoints: left out of
        # the median, so an animal resting on many of the sampled frames is not background
        blobs = {f: _blob_priors(frames[f], bg[0], animals, params)
                 for f in _sample(len(frames), BACKGROUND_FRAMES)}
        bg = _background(frames, blobs, progress, colour=bool(params.colour))
    bg, coverage = bg if bg is not None else (None, None)
    if bg is None and keypoints is None and not empty:
        raise RodentsegError(f"{inputs[0]} has {len(frames)} frames: too few for a background; "
                             "give --keypoints")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        root = Path(sources_root).resolve() if sources_root is not None else None
        summary = _label_all(frames, todo, priors, names, bg, coverage, animals, params,
                             partial, root, predictor, progress)
        run = {"rodentseg": __version__, "command": "autolabel",
               "video": [str(v.resolve()) for v in inputs] if len(inputs) > 1
               else str(inputs[0].resolve()),
               "keypoints": str(Path(keypoints).resolve()) if keypoints else None,
               "slp_video": slp_video, "keypoint_scale": keypoint_scale,
               "min_likelihood": min_likelihood, "max_frames": max_frames,
               "frame_range": list(frame_range) if frame_range else None,
               "params": asdict(params), "individuals": {n: k + 1 for k, n in enumerate(names)},
               "model": model, "empty": empty, "background": "video" if bg is not None else "local",
               **summary,
               "seconds": round(time.time() - t0, 1)}
        (partial / "run.json").write_text(json.dumps(run, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(partial, out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return AutolabelSummary(out, summary["labelled"], summary["kept"], summary["left_out"],
                            run["individuals"], run["background"], run["seconds"])


def _label_all(frames: Clips, todo: list[int], priors: dict[int, list], names: list[str],
               bg: np.ndarray | None, coverage: np.ndarray | None, animals: int | None,
               params: LabelParams, partial: Path, sources_root: Path | None,
               predictor, progress: bool) -> dict:
    """Label every frame of ``todo`` into ``partial``; the doubt's area cue needs each
    animal's median area, so files are written first and moved to ``left_out/`` after."""
    for sub in ("frames", "masks", "left_out/frames", "left_out/masks"):
        (partial / sub).mkdir(parents=True, exist_ok=True)
    rows, tiles, areas, sources = [], [], {}, []
    bar = tqdm(todo, desc="autolabel", unit="frame", disable=not progress)
    for f in bar:
        frame = frames[f]
        if priors:
            ps = priors.get(f, [])
        elif animals:
            ps = _blob_priors(frame, bg, animals, params)
        else:  # an empty arena: every frame is background
            ps = []
        present = [(k, p) for k, p in enumerate(ps) if p is not None]
        results = label_frame(frame, bg, [p for _, p in present], params, coverage=coverage)
        if predictor is not None:
            results = prompt_masks(predictor, frame, [p for _, p in present], results)
        label = np.zeros(frame.shape[:2], np.uint8 if len(names) < 256 else np.uint16)
        name, src = frames.name(f)
        part, j = frames.locate(f)
        source = part.path.resolve()
        if sources_root is not None:
            source = Path(os.path.relpath(source, sources_root))
        sources.append((name, source.as_posix(), j))
        for (k, p), r in zip(present, results):
            r.obj_id = k + 1
            label[r.mask] = r.obj_id
            area = int(r.mask.sum())
            areas.setdefault(r.obj_id, []).append(area)
            rows.append({"frame": name, "frame_idx": f, "obj_id": r.obj_id,
                         "individual": names[k] if k < len(names) else p.name,
                         "area_px": area, "cues": r.cues})
            tiles.append([name, r.obj_id, _crop_tile(frame, r, p)])
        found = {k for k, _ in present}
        for k in range(len(names)):  # an animal without keypoints (or blob) on this frame
            if k not in found:
                rows.append({"frame": name, "frame_idx": f, "obj_id": k + 1,
                             "individual": names[k], "area_px": 0,
                             "cues": {**dict.fromkeys(DOUBT_CUES, 0.0), "missing": 1.0}})
        if src is not None:
            shutil.copyfile(src, partial / "frames" / name)
        else:
            Image.fromarray(frame).save(partial / "frames" / name, compress_level=1)
        Image.fromarray(label).save(partial / "masks" / f"{Path(name).stem}.png")
    medians = {k: float(np.median(v)) for k, v in areas.items() if v}
    if not priors and medians:  # blob ids follow size, not identity: one median for all, so
        pooled = float(np.median([a for v in areas.values() for a in v]))  # merged or broken
        medians = dict.fromkeys(medians, pooled)  # blobs stand out by their area
    for row in rows:
        med = medians.get(row["obj_id"])
        if med and row["area_px"]:
            row["cues"]["area"] = area_cue(row["area_px"], med)
        row["doubt"], row["reason"] = top_cue(row["cues"])
    by_frame: dict[str, float] = {}
    for row in rows:
        by_frame[row["frame"]] = max(by_frame.get(row["frame"], 0.0), row["doubt"])
    left = {n for n, d in by_frame.items() if d > params.max_doubt}
    for n in left:
        os.replace(partial / "frames" / n, partial / "left_out" / "frames" / n)
        m = f"{Path(n).stem}.png"
        os.replace(partial / "masks" / m, partial / "left_out" / "masks" / m)
    rows.sort(key=lambda r: (-r["doubt"], r["frame_idx"], r["obj_id"]))
    with (partial / "review.csv").open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(REVIEW_COLUMNS)
        for rank, r in enumerate(rows, 1):
            wr.writerow([rank, r["frame"], r["frame_idx"], r["obj_id"], r["individual"],
                         round(r["doubt"], 3), r["reason"], r["area_px"],
                         int(r["frame"] not in left)])
    with (partial / "left_out.csv").open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["frame", "frame_idx", "doubt", "reason"])
        for r in rows:
            if r["frame"] in left and r["doubt"] == by_frame[r["frame"]]:
                wr.writerow([r["frame"], r["frame_idx"], round(r["doubt"], 3), r["reason"]])
                by_frame[r["frame"]] = math.inf  # one line per frame
    with (partial / "sources.csv").open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(SOURCE_COLUMNS)
        wr.writerows(sources)
    final = {(r["frame"], r["obj_id"]): r for r in rows}  # captions with the final doubt
    for n, k, t in tiles:
        r = final[(n, k)]
        ImageDraw.Draw(t).text((2, 1), f"{Path(n).stem} id {k} doubt {r['doubt']:.2f} "
                                       f"{r['reason']}" + ("" if n not in left else " LEFT OUT"),
                               fill=(0, 0, 0))
    _write_sheets(partial / "sheets", [(final[(n, k)]["doubt"], t) for n, k, t in tiles])
    return {"labelled": len(todo), "kept": len(todo) - len(left), "left_out": len(left)}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``autolabel`` subcommand."""
    p = subparsers.add_parser(
        "autolabel", help="masks from keypoints and the video's background (a training set)",
        description="Label the frames of INPUT (a video or a folder of images) with one mask "
                    "per animal, from its keypoints (DeepLabCut CSV/H5, SLEAP .slp, or "
                    "frame,bodypart,x,y[,individual] CSV) and the video's own background, into "
                    "OUT/frames + OUT/masks (what `rodentseg train` reads), with review.csv, "
                    "contact sheets and the frames left out for doubt.")
    p.add_argument("inputs", type=Path, nargs="+", metavar="INPUT",
                   help="video file or folder of images; several: clips of one still camera "
                        "(without --keypoints)")
    p.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    p.add_argument("--keypoints", type=Path, help="keypoint file (DeepLabCut, SLEAP, CSV)")
    p.add_argument("--animals", type=int, default=None,
                   help="number of animals (needed without --keypoints)")
    p.add_argument("--empty", action="store_true",
                   help="the video shows no animal: empty masks on --max-frames frames "
                        "(negatives for training)")
    p.add_argument("--slp-video", default=None,
                   help="the video to read from a .slp that labels several (file name)")
    p.add_argument("--keypoint-scale", type=float, default=1.0,
                   help="multiply keypoint coordinates (e.g. 0.5: labelled at twice the size)")
    p.add_argument("--min-likelihood", type=float, default=0.5,
                   help="drop predicted keypoints below this likelihood (default 0.5)")
    p.add_argument("--max-frames", type=int, default=300,
                   help="most frames to label, spread evenly (default 300)")
    p.add_argument("--frames", default=None, metavar="FIRST-LAST",
                   help="label only frames FIRST to LAST (positions, inclusive), e.g. where "
                        "the animals meet; the background still comes from the whole video")
    p.add_argument("--max-doubt", type=float, default=LabelParams.max_doubt,
                   help=f"leave out frames above this doubt (default {LabelParams.max_doubt})")
    p.add_argument("--model", default=None,
                   help="SAM-family model (hub id, short name or folder) prompted with the "
                        "keypoints; default none (offline, contrast and keypoints only)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (with --model)")
    p.add_argument("--sources-root", type=Path, default=None,
                   help="write sources.csv paths relative to this data root (to keep masks "
                        "without their frames)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a labelling setting of rodentseg.annotate.autolabel.LabelParams "
                        "(repeatable), e.g. --set min_contrast=5 for a dim animal")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_autolabel)
    return p


def parse_params(items: list[str]) -> LabelParams:
    """:class:`LabelParams` from ``KEY=VALUE`` strings (numbers).

    Raises:
        RodentsegError: an unknown key or a value that is not a finite number.
    """
    known = {f.name for f in fields(LabelParams)}
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise RodentsegError(f"--set {item!r}: expected KEY=VALUE with KEY one of "
                                 f"{', '.join(sorted(known))}")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise RodentsegError(f"--set {key}: expected a finite number, got {text!r}")
        values[key] = value
    return LabelParams(**values)


def run_autolabel(args: argparse.Namespace) -> int:
    """Handler of ``rodentseg autolabel``; prints a one-line summary."""
    if args.animals is not None and args.animals < 1:
        raise RodentsegError(f"--animals must be a positive integer, got {args.animals}")
    if args.max_frames < 1:
        raise RodentsegError(f"--max-frames must be a positive integer, got {args.max_frames}")
    if not 0 <= args.max_doubt <= 1:
        raise RodentsegError(f"--max-doubt must be in [0, 1], got {args.max_doubt}")
    params = parse_params([f"max_doubt={args.max_doubt}", *args.set])
    frame_range = None
    if args.frames is not None:
        first, _, last = args.frames.partition("-")
        if not (first.strip().isdigit() and last.strip().isdigit()) or int(first) > int(last):
            raise RodentsegError(f"--frames {args.frames!r}: expected FIRST-LAST, two frame "
                                 "numbers with FIRST <= LAST, e.g. --frames 3300-3450")
        frame_range = (int(first), int(last))
    s = autolabel(args.inputs, args.out, args.keypoints, animals=args.animals,
                  slp_video=args.slp_video, keypoint_scale=args.keypoint_scale,
                  min_likelihood=args.min_likelihood, max_frames=args.max_frames,
                  frame_range=frame_range,
                  params=params, empty=args.empty, sources_root=args.sources_root,
                  model=args.model, device=args.device,
                  overwrite=args.overwrite,
                  progress=not args.quiet)
    print(f"{s.out}: {s.kept} of {s.labelled} frames labelled, {s.left_out} left out for doubt "
          f"(left_out.csv), {len(s.individuals)} animal(s), background: {s.background}, "
          f"{s.seconds:.0f} s; check {s.out / 'sheets'}", file=sys.stdout)
    return 0
