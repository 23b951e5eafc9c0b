"""Evaluation: mask metrics (IoU, DAVIS J/F/J&F, per-class IoU), keypoint containment,
identity metrics of tracks (IDF1, ID switches, MOTA via py-motmetrics) and reports. Metrics
accumulate one frame at a time, then reduce (``update()`` / ``compute()``).

Python entry point: :func:`evaluate_folders`; command line: ``rodentseg evaluate``
(:func:`add_evaluate_parser`, :func:`run_evaluate`).
"""

from rodentseg.evaluate.accumulator import ObjectScore, SegmentationMetrics
from rodentseg.evaluate.cli import add_evaluate_parser, run_evaluate
from rodentseg.evaluate.identity import IDENTITY_METRICS, IdentityMetrics, identity_metrics
from rodentseg.evaluate.keypoints import KeypointContainment, Keypoints, read_keypoints
from rodentseg.evaluate.metrics import (
    boundary_f_measure,
    boundary_tolerance_px,
    db_statistics,
    iou,
    match_objects,
    pairwise_iou,
    region_similarity,
    seg2bmap,
)
from rodentseg.evaluate.run import evaluate_folders, open_masks, pair_frames

__all__ = [
    "IDENTITY_METRICS",
    "IdentityMetrics",
    "KeypointContainment",
    "Keypoints",
    "ObjectScore",
    "SegmentationMetrics",
    "add_evaluate_parser",
    "boundary_f_measure",
    "boundary_tolerance_px",
    "db_statistics",
    "evaluate_folders",
    "identity_metrics",
    "iou",
    "match_objects",
    "open_masks",
    "pair_frames",
    "pairwise_iou",
    "read_keypoints",
    "region_similarity",
    "run_evaluate",
    "seg2bmap",
]
