"""Evaluation outputs: ``metrics.json``, ``per_frame.csv``, a per-frame plot and contact sheets
of the worst frames (rgb / prediction / ground-truth panels)."""

from __future__ import annotations

import csv
import heapq
import itertools
import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from rodentseg.errors import RodentsegError
from rodentseg.evaluate.accumulator import ObjectScore
from rodentseg.io.masks import frame_index_of
from rodentseg.types import FrameMasks

CSV_COLUMNS = ("frame_idx", "obj_id", "pred_id", "status", "iou", "j", "f", "jf", "gt_area",
               "pred_area", "intersection", "union")
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (23, 190, 207), (188, 189, 34), (127, 127, 127)]
FALSE_POSITIVE = (255, 0, 255)  # a prediction paired with no ground-truth object
GT_LINE = (255, 215, 0)  # ground-truth outline drawn over the prediction panel
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def jsonable(obj):
    """``obj`` with NaN/inf turned into None and numpy scalars into Python ones (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_metrics_json(path: str | Path, metrics: dict) -> Path:
    """Write ``metrics`` as indented strict JSON (undefined values are ``null``)."""
    path = Path(path)
    path.write_text(json.dumps(jsonable(metrics), indent=2, allow_nan=False) + "\n")
    return path


def write_per_frame_csv(path: str | Path, rows: Iterable[ObjectScore]) -> Path:
    """One row per frame and object (:data:`CSV_COLUMNS`; empty cell = undefined IoU)."""
    path = Path(path)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(CSV_COLUMNS)
        for r in rows:
            d = r.as_row()
            w.writerow(["" if isinstance(d[c], float) and math.isnan(d[c]) else
                        (f"{d[c]:.6f}" if isinstance(d[c], float) else d[c]) for c in CSV_COLUMNS])
    return path


def plot_per_frame(path: str | Path, table: dict[str, np.ndarray], title: str = "") -> Path:
    """Line plot of the per-frame mean IoU and J&F (``SegmentationMetrics.frame_table()``)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise RodentsegError("the per-frame plot needs matplotlib: "
                             "pip install matplotlib") from None
    path = Path(path)
    fig = Figure(figsize=(10, 3.5), dpi=100, layout="constrained")
    ax = fig.subplots()
    style = {"marker": "." if len(table["frame_idx"]) <= 200 else None, "linewidth": 0.8}
    ax.plot(table["frame_idx"], table["iou"], label="IoU", **style)
    ax.plot(table["frame_idx"], table["jf"], label="J&F", **style)
    ax.set(xlabel="frame", ylabel="score (mean over objects)", ylim=(-0.02, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.savefig(path)
    return path


class WorstFrames:
    """Keeps the ``k`` frames with the lowest mean J&F (and their masks) seen so far."""

    def __init__(self, k: int = 8):
        self.k = k
        self._heap: list = []
        self._tie = itertools.count()

    def offer(self, pred: FrameMasks, gt: FrameMasks, rows: list[ObjectScore]) -> None:
        """Consider one scored frame; perfect frames (J&F = 1) are never kept."""
        if self.k <= 0 or not rows:
            return
        score = float(np.mean([r.jf for r in rows]))
        if score >= 1.0:
            return
        item = (-score, next(self._tie), pred, gt, rows)
        if len(self._heap) < self.k:
            heapq.heappush(self._heap, item)
        elif -score > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def items(self) -> list[tuple[float, FrameMasks, FrameMasks, list[ObjectScore]]]:
        """``(score, pred, gt, rows)``, worst first."""
        return [(-s, p, g, r) for s, _, p, g, r in sorted(self._heap, key=lambda t: (-t[0], t[1]))]


def load_rgb_frames(indices: Iterable[int], video: str | Path | None = None,
                    frames: str | Path | None = None) -> dict[int, np.ndarray]:
    """The RGB images of some frames, from a video or a folder of images named by frame index.

    Returns:
        {frame_idx: (H, W, 3) uint8}; frames that are not found are left out.
    """
    wanted = set(int(i) for i in indices)
    out: dict[int, np.ndarray] = {}
    if not wanted:
        return out
    if video is not None:
        from rodentseg.io.video import read_frames

        for first, batch in read_frames(video, batch_size=16):
            for k, img in enumerate(batch):
                if first + k in wanted:
                    out[first + k] = img
            if len(out) == len(wanted) or first + len(batch) > max(wanted):
                break
    elif frames is not None:
        for p in sorted(Path(frames).iterdir()):
            if p.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                idx = frame_index_of(p)
            except RodentsegError:
                continue
            if idx in wanted:
                out[idx] = np.asarray(Image.open(p).convert("RGB"))
    return out


def _outline(mask: np.ndarray, thick: bool) -> np.ndarray:
    edge = mask & ~ndimage.binary_erosion(mask)
    return ndimage.binary_dilation(edge) if thick else edge


def _overlay(rgb: np.ndarray, fm: FrameMasks, colours: list, thick: bool) -> np.ndarray:
    img = rgb.astype(np.float32)
    for m, c in zip(fm.masks, colours):
        img[m] = 0.55 * img[m] + 0.45 * np.asarray(c, np.float32)
    for m, c in zip(fm.masks, colours):
        img[_outline(m, thick)] = c
    return img.astype(np.uint8)


def render_panels(rgb: np.ndarray | None, pred: FrameMasks, gt: FrameMasks,
                  rows: list[ObjectScore], thick: bool = False) -> np.ndarray:
    """rgb | prediction | ground truth, side by side, at full resolution.

    Ground-truth objects take a colour by id; a prediction takes the colour of the object it
    is paired with (magenta when it is a false positive); the prediction panel also shows the
    ground-truth outlines (yellow). Without an ``rgb`` frame the panels are drawn on grey.

    Returns:
        (H, 3 * W + 8, 3) uint8.
    """
    h, w = gt.shape
    base = rgb if rgb is not None else np.full((h, w, 3), 64, np.uint8)
    if base.shape[:2] != (h, w):
        raise RodentsegError(f"frame {gt.frame_idx}: the image is {base.shape[1]}x{base.shape[0]} "
                             f"but the masks are {w}x{h}; give the video or frames the masks "
                             f"were made from")
    paired = {r.pred_id: r.obj_id for r in rows if r.status == "matched"}
    pcol = [PALETTE[paired[i] % len(PALETTE)] if i in paired else FALSE_POSITIVE
            for i in pred.obj_ids.tolist()]
    gcol = [PALETTE[i % len(PALETTE)] for i in gt.obj_ids.tolist()]
    pred_panel = _overlay(base, pred, pcol, thick)
    for m in gt.masks:
        pred_panel[_outline(m, False)] = GT_LINE
    gap = np.full((h, 4, 3), 255, np.uint8)
    return np.concatenate([base, gap, pred_panel, gap, _overlay(base, gt, gcol, thick)], axis=1)


def write_contact_sheets(out_dir: str | Path, worst: WorstFrames,
                         rgb: dict[int, np.ndarray], per_sheet: int = 4,
                         panel_width: int = 360) -> list[Path]:
    """Write ``worst_NN.png`` sheets, ``per_sheet`` frames each, worst frame first.

    Each frame is one row (rgb / prediction / ground truth) under a caption with its frame
    index, J&F, J, F and the counts of misses and false positives.
    """
    out_dir = Path(out_dir)
    items = worst.items()
    paths = []
    for s in range(0, len(items), per_sheet):
        tiles = []
        for score, pred, gt, rows in items[s:s + per_sheet]:
            h, w = gt.shape
            scale = min(1.0, panel_width / w)
            strip = render_panels(rgb.get(gt.frame_idx), pred, gt, rows, thick=scale < 0.75)
            img = Image.fromarray(strip)
            if scale < 1.0:
                img = img.resize((round(img.width * scale), round(h * scale)), Image.BILINEAR)
            n_miss = sum(r.status == "missed" for r in rows)
            n_fp = sum(r.status == "false_positive" for r in rows)
            j, f = np.mean([r.j for r in rows]), np.mean([r.f for r in rows])
            caption = (f"frame {gt.frame_idx}   J&F {score:.3f}   J {j:.3f}   F {f:.3f}"
                       f"   missed {n_miss}   "
                       f"false pos. {n_fp}      rgb | prediction (yellow: GT outline) | GT")
            tile = Image.new("RGB", (img.width, img.height + 18), (255, 255, 255))
            ImageDraw.Draw(tile).text((4, 3), caption, fill=(0, 0, 0))
            tile.paste(img, (0, 18))
            tiles.append(tile)
        sheet = Image.new("RGB", (max(t.width for t in tiles),
                                  sum(t.height + 6 for t in tiles)), (255, 255, 255))
        y = 0
        for t in tiles:
            sheet.paste(t, (0, y))
            y += t.height + 6
        path = out_dir / f"worst_{s // per_sheet + 1:02d}.png"
        sheet.save(path)
        paths.append(path)
    return paths
