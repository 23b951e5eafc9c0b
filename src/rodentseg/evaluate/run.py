"""``evaluate_folders``: score predicted masks against ground truth and/or human keypoints, and
write the report, streaming one frame at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from rodentseg.errors import RodentsegError
from rodentseg.evaluate.accumulator import SegmentationMetrics
from rodentseg.evaluate.keypoints import KeypointContainment, read_keypoints
from rodentseg.evaluate.report import (
    WorstFrames,
    load_rgb_frames,
    plot_per_frame,
    write_contact_sheets,
    write_metrics_json,
    write_per_frame_csv,
)
from rodentseg.io.masks import iter_coco_frames, iter_label_pngs
from rodentseg.io.results import check_writable
from rodentseg.types import FrameMasks

MAX_LISTED = 100  # frame indices listed in metrics.json for frames only in PRED


def open_masks(path: str | Path, semantic: bool = False) -> Iterator[FrameMasks]:
    """Frames of a folder of label PNGs (``NNNNNN.png``, pixel = object id, 0 = background) or
    of a COCO RLE JSON, in frame order. In ``semantic`` mode a COCO object's id is its
    ``category_id``.

    Raises:
        RodentsegError: the path is missing or neither a folder nor a ``.json`` file.
    """
    path = Path(path)
    if path.is_dir():
        return _ordered(iter_label_pngs(path), path)
    if path.is_file() and path.suffix.lower() == ".json":
        key = "category_id" if semantic else "track_id"
        return _ordered(iter_coco_frames(path, id_key=key), path)
    what = "does not exist" if not path.exists() else f"is a {path.suffix or 'suffix-less'} file"
    raise RodentsegError(f"expected a folder of label PNGs or a COCO RLE .json, {path} {what}")


def _ordered(frames: Iterator[FrameMasks], path: Path) -> Iterator[FrameMasks]:
    last = None
    for fm in frames:
        if last is not None and fm.frame_idx <= last:
            raise RodentsegError(f"{path}: frame {fm.frame_idx} comes after frame {last}; expected "
                                 "each frame index once, in increasing order")
        last = fm.frame_idx
        yield fm


def pair_frames(pred: Iterator[FrameMasks], gt: Iterator[FrameMasks]
                ) -> Iterator[tuple[FrameMasks | None, FrameMasks | None]]:
    """Join two frame streams on ``frame_idx`` (both in increasing order).

    Yields:
        ``(pred, gt)``, with None on the side that lacks the frame.
    """
    p, g = next(pred, None), next(gt, None)
    while p is not None or g is not None:
        if g is None or (p is not None and p.frame_idx < g.frame_idx):
            yield p, None
            p = next(pred, None)
        elif p is None or g.frame_idx < p.frame_idx:
            yield None, g
            g = next(gt, None)
        else:
            yield p, g
            p, g = next(pred, None), next(gt, None)


def _empty_like(gt: FrameMasks) -> FrameMasks:
    return FrameMasks(gt.frame_idx, np.zeros(0, np.int64), np.zeros((0, *gt.shape), bool))


def evaluate_folders(pred: str | Path, gt: str | Path | None, out: str | Path, *,
                     video: str | Path | None = None, frames: str | Path | None = None,
                     keypoints: str | Path | None = None, boundary_tol: float = 0.008,
                     match: str = "iou", semantic: bool = False, worst: int = 8,
                     min_likelihood: float | None = None, progress: bool = False) -> dict:
    """Score predicted masks against ground-truth masks and/or human keypoints; write a report.

    Args:
        pred: predicted masks: a folder of label PNGs or a COCO RLE JSON.
        gt: ground-truth masks in either form, or None to check keypoints only. Frames only
            in ``gt`` count as empty predictions; frames only in ``pred`` are left out of the
            mask metrics and listed in ``metrics.json``.
        out: output folder (created): ``metrics.json``, ``per_frame.csv``, ``per_frame.png``
            and ``worst_NN.png`` contact sheets.
        video, frames: a video, or a folder of images named by frame index, to draw the
            contact sheets on (grey background without either).
        keypoints: DeepLabCut CSV/H5, SLEAP .slp or ``frame,bodypart,x,y[,individual]`` CSV:
            adds the fraction of points inside the masks, for the prediction and the ground
            truth.
        boundary_tol: F tolerance, a fraction of the frame diagonal (< 1) or whole pixels.
        match: ``"iou"`` (Hungarian on IoU, default) or ``"id"`` (equal ids); see
            :class:`SegmentationMetrics`.
        semantic: pixel values are class ids (per-class IoU for every class; implies ``id``).
        worst: number of worst frames drawn on contact sheets (0 for none).
        min_likelihood: drop DeepLabCut points with a lower ``likelihood`` (model outputs).
        progress: show a progress bar.

    Returns:
        The metrics written to ``metrics.json`` (see :meth:`SegmentationMetrics.compute`), plus
        ``frames`` (counts), ``keypoints`` (:meth:`KeypointContainment.compute` for ``pred`` and
        ``gt``), ``settings`` and ``outputs`` (paths written).

    Raises:
        RodentsegError: unreadable or mismatched inputs, nothing to compare, or an ``out``
            that cannot be created or written.
    """
    if gt is None and keypoints is None:
        raise RodentsegError("nothing to evaluate PRED against: give ground-truth masks (GT), "
                             "keypoints (--keypoints), or both")
    if video is not None and frames is not None:
        raise RodentsegError("give --video or --frames to draw on, not both")
    if video is not None:
        from rodentseg.io.video import probe

        probe(video)
    if frames is not None and not Path(frames).is_dir():
        raise RodentsegError(f"--frames expects a folder of images, {frames} is not a directory")
    check_writable(Path(out))  # one line now, not a traceback after scoring every frame
    kp = read_keypoints(keypoints, min_likelihood) if keypoints is not None else None
    metrics = SegmentationMetrics(boundary_tol, match, semantic) if gt is not None else None
    kp_pred = KeypointContainment(kp) if kp is not None else None
    kp_gt = KeypointContainment(kp) if kp is not None and gt is not None else None
    worst_frames = WorstFrames(worst)
    pred_it = open_masks(pred, semantic)
    gt_it = open_masks(gt, semantic) if gt is not None else iter(())
    n_pred = n_gt_only = 0
    pred_only: list[int] = []
    for p, g in tqdm(pair_frames(pred_it, gt_it), desc="evaluate", unit="frame",
                     disable=not progress):
        if p is not None:
            n_pred += 1
            if kp_pred is not None:
                kp_pred.update(p)
        if g is None:
            if metrics is not None:
                pred_only.append(p.frame_idx)
            continue
        if p is None:
            n_gt_only += 1
            p = _empty_like(g)
        rows = metrics.update(p, g)
        if kp_gt is not None:
            kp_gt.update(g)
        worst_frames.offer(p, g, rows)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"inputs": {"pred": str(pred), "gt": None if gt is None else str(gt),
                               "keypoints": None if keypoints is None else str(keypoints)}}
    outputs = {"metrics": str(out / "metrics.json")}
    if metrics is not None:
        reduced = metrics.compute()
        if reduced["frames"] == 0:
            raise RodentsegError(f"no frame of {gt} could be evaluated (it holds no frames)")
        result["frames"] = {"evaluated": reduced.pop("frames"), "gt_only_empty_prediction":
                            n_gt_only, "pred_only_ignored": len(pred_only),
                            "pred_only_frames": pred_only[:MAX_LISTED]}
        result.update(reduced)
        outputs["per_frame_csv"] = str(write_per_frame_csv(out / "per_frame.csv", metrics.rows))
        table = metrics.frame_table()
        outputs["plot"] = str(plot_per_frame(out / "per_frame.png", table,
                                             title=f"{Path(pred).name} vs {Path(gt).name}"))
    else:
        result["frames"] = {"pred": n_pred}
    if kp is not None:
        result["keypoints"] = {"pred": kp_pred.compute()}
        if kp_gt is not None:
            result["keypoints"]["gt"] = kp_gt.compute()
    result["settings"] = {"boundary_tol": boundary_tol, "match": metrics.match if metrics
                          else match, "semantic": semantic, "keypoint_rounding": "half up"}
    result["outputs"] = outputs
    write_metrics_json(out / "metrics.json", result)
    if metrics is not None and worst > 0:
        frame_ids = [g.frame_idx for _, _, g, _ in worst_frames.items()]
        rgb = load_rgb_frames(frame_ids, video=video, frames=frames)
        points = None
        if kp is not None:
            wanted = np.isin(kp.frame_idx, frame_ids)
            points = {int(f): kp.xy[wanted & (kp.frame_idx == f)] for f in frame_ids}
        sheets = write_contact_sheets(out, worst_frames, rgb, keypoints=points)
        result["outputs"]["contact_sheets"] = [str(s) for s in sheets]
        write_metrics_json(out / "metrics.json", result)
    return result
