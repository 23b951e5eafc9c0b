"""Evaluation outputs: ``metrics.json``, ``per_frame.csv``, a per-frame plot and contact sheets
of the worst frames (frame / errors panels cropped around the animals)."""

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
FALSE_POSITIVE = (255, 0, 255)  # pixels only a prediction has
MISSED = (0, 200, 255)  # pixels only the ground truth has
GT_LINE = (255, 215, 0)  # ground-truth outline
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


def crop_box(gt: FrameMasks, pred: FrameMasks, pad: float = 0.25,
             min_side: int = 64) -> tuple[int, int, int, int]:
    """The part of the frame a contact sheet shows: the box of every ground-truth and predicted
    mask, grown by ``pad`` of its larger side (at least ``min_side`` px a side), clipped to the
    frame; the whole frame when there is no mask.

    Returns:
        ``(x0, y0, x1, y1)`` pixels, x1/y1 exclusive.
    """
    h, w = gt.shape
    union = np.zeros((h, w), bool)
    for m in (*gt.masks, *pred.masks):
        union |= m
    if not union.any():
        return 0, 0, w, h
    ys, xs = np.nonzero(union.any(1))[0], np.nonzero(union.any(0))[0]
    x0, x1, y0, y1 = xs[0], xs[-1] + 1, ys[0], ys[-1] + 1
    side = max(x1 - x0, y1 - y0)
    gx = max(round(pad * side), (min_side - (x1 - x0) + 1) // 2)
    gy = max(round(pad * side), (min_side - (y1 - y0) + 1) // 2)
    return (int(max(0, x0 - gx)), int(max(0, y0 - gy)), int(min(w, x1 + gx)),
            int(min(h, y1 + gy)))


def render_panels(rgb: np.ndarray | None, pred: FrameMasks, gt: FrameMasks,
                  rows: list[ObjectScore], thick: bool = False,
                  keypoints: np.ndarray | None = None,
                  box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The frame (when given) and its errors, side by side, cropped to ``box``.

    The error panel, over the frame (grey without one): pixels both masks have are tinted in
    the colour of the ground-truth object (:data:`PALETTE` by id), pixels only the ground truth
    has (false negatives, missed) in :data:`MISSED`, pixels only a prediction has (false
    positives) in :data:`FALSE_POSITIVE`; the ground-truth outline is drawn in :data:`GT_LINE`
    and the keypoints as white dots with a black ring. Without ``rgb`` only the error panel is
    drawn.

    Args:
        rgb: (H, W, 3) uint8 RGB frame, or None.
        pred, gt: the frame's predicted and ground-truth masks (same H, W).
        rows: the frame's scores (pairing of predicted to ground-truth objects).
        thick: 2 px outlines (for sheets drawn smaller than the frame).
        keypoints: (K, 2) float ``(x, y)`` pixels of the frame, or None.
        box: ``(x0, y0, x1, y1)`` crop (:func:`crop_box`); None: the whole frame.

    Returns:
        (h, w, 3) or (h, 2 * w + 4, 3) uint8, h x w the box's size.

    Raises:
        RodentsegError: the frame's size differs from the masks'.
    """
    h, w = gt.shape
    if rgb is not None and rgb.shape[:2] != (h, w):
        raise RodentsegError(f"frame {gt.frame_idx}: the image is {rgb.shape[1]}x{rgb.shape[0]} "
                             f"but the masks are {w}x{h}; give the video or frames the masks "
                             f"were made from")
    base = rgb if rgb is not None else np.full((h, w, 3), 96, np.uint8)
    gt_any = np.zeros((h, w), bool)
    img = base.astype(np.float32)
    for oid, m in zip(gt.obj_ids.tolist(), gt.masks):
        gt_any |= m
        img[m] = 0.55 * img[m] + 0.45 * np.asarray(PALETTE[oid % len(PALETTE)], np.float32)
    pred_any = np.zeros((h, w), bool)
    for m in pred.masks:
        pred_any |= m
    img[gt_any & ~pred_any] = MISSED
    img[pred_any & ~gt_any] = FALSE_POSITIVE
    err = img.astype(np.uint8)
    for m in gt.masks:
        err[_outline(m, thick)] = GT_LINE
    x0, y0, x1, y1 = box if box is not None else (0, 0, w, h)
    err = np.ascontiguousarray(err[y0:y1, x0:x1])
    if keypoints is not None and len(keypoints):
        tile = Image.fromarray(err)
        draw = ImageDraw.Draw(tile)
        r = 3 if thick else 2
        for x, y in np.asarray(keypoints, np.float64) - (x0, y0):
            if -r <= x < x1 - x0 + r and -r <= y < y1 - y0 + r:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255),
                             outline=(0, 0, 0))
        err = np.asarray(tile)
    if rgb is None:
        return err
    gap = np.full((y1 - y0, 4, 3), 255, np.uint8)
    return np.concatenate([rgb[y0:y1, x0:x1], gap, err], axis=1)


def write_contact_sheets(out_dir: str | Path, worst: WorstFrames,
                         rgb: dict[int, np.ndarray], per_sheet: int = 4,
                         panel_width: int = 360,
                         keypoints: dict[int, np.ndarray] | None = None) -> list[Path]:
    """Write ``worst_NN.png`` sheets, ``per_sheet`` frames each, worst frame first.

    Each frame is one row, cropped around its animals (:func:`crop_box`): the frame (when
    ``rgb`` has it) and the error panel of :func:`render_panels`, under a caption with its frame
    index, J&F, J, F, the counts of misses and false positives, and the colour key.

    Args:
        out_dir: the folder to write to.
        worst: the frames to show.
        rgb: frame index -> (H, W, 3) uint8 RGB; frames it lacks get no frame panel.
        per_sheet: frames per sheet.
        panel_width: a panel wider than this is shrunk to it; a narrower crop is enlarged to
            it up to 4 times.
        keypoints: frame index -> (K, 2) float ``(x, y)`` pixels, or None.
    """
    out_dir = Path(out_dir)
    items = worst.items()
    paths = []
    key = "fill: ground truth by id   cyan: missed   magenta: false positive   yellow: GT outline"
    for s in range(0, len(items), per_sheet):
        tiles = []
        for score, pred, gt, rows in items[s:s + per_sheet]:
            box = crop_box(gt, pred)
            side = box[2] - box[0]
            scale = min(4.0, panel_width / side)
            kp = keypoints.get(gt.frame_idx) if keypoints else None
            strip = render_panels(rgb.get(gt.frame_idx), pred, gt, rows, thick=scale < 0.75,
                                  keypoints=kp, box=box)
            img = Image.fromarray(strip)
            if scale != 1.0:
                img = img.resize((round(img.width * scale), round(img.height * scale)),
                                 Image.BILINEAR if scale < 1 else Image.NEAREST)
            n_miss = sum(r.status == "missed" for r in rows)
            n_fp = sum(r.status == "false_positive" for r in rows)
            j, f = np.mean([r.j for r in rows]), np.mean([r.f for r in rows])
            caption = (f"frame {gt.frame_idx}   J&F {score:.3f}   J {j:.3f}   F {f:.3f}   "
                       f"missed {n_miss}   false pos. {n_fp}   (x {box[0]}-{box[2]}, "
                       f"y {box[1]}-{box[3]})")
            tile = Image.new("RGB", (max(img.width, 6 * len(key) + 8), img.height + 30),
                             (255, 255, 255))
            draw = ImageDraw.Draw(tile)
            draw.text((4, 3), caption, fill=(0, 0, 0))
            draw.text((4, 15), key, fill=(90, 90, 90))
            tile.paste(img, (0, 30))
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
