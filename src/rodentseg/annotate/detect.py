"""Animal detectors that give boxes for zero-shot annotation.

- :class:`GroundingDinoDetector`: open-vocabulary boxes from a text prompt ("mouse"), with
  ``GroundingDinoForObjectDetection`` and its processor (which runs on its PIL backend without
  torchvision). Liu et al., "Grounding DINO: Marrying DINO with Grounded Pre-Training for
  Open-Set Object Detection", 2023.
- :class:`SegmenterDetector`: the boxes of the animals a rodentseg segmenter finds
  (``rodentseg-tiny`` or a trained directory), for lab videos where it works better than text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import transformers

from rodentseg.annotate.adapter import _config, _load_strict
from rodentseg.errors import RodentsegError
from rodentseg.models import MODEL_REGISTRY, Segmenter, load_model, resolve_device
from rodentseg.track.instances import split_instances


class Detector(Protocol):
    """Anything that finds animals' boxes on a frame."""

    name: str

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Boxes on one (H, W, 3) uint8 RGB frame.

        Returns:
            boxes (K, 4) float32 ``x0, y0, x1, y1`` frame pixels and scores (K,) float32 in
            [0, 1], best first.
        """
        ...


class GroundingDinoDetector:
    """Boxes for a text prompt with Grounding DINO.

    Args:
        name_or_path: hub id (``IDEA-Research/grounding-dino-tiny``), short name
            (``grounding-dino-tiny``) or directory with the model and its processor.
        text: what to find, e.g. ``"mouse"`` or ``"mouse. rat."``; lower-cased, and each
            phrase ends with a period as Grounding DINO expects.
        box_threshold: least box confidence kept.
        text_threshold: least text-token confidence for a box's label.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.

    Raises:
        RodentsegError: empty text, thresholds outside (0, 1), or a model/processor that fails
            to load.
    """

    def __init__(self, name_or_path: str, text: str = "mouse", box_threshold: float = 0.35,
                 text_threshold: float = 0.25, device: str = "auto"):
        phrases = [p.strip().lower() for p in text.replace(".", "\n").splitlines() if p.strip()]
        if not phrases:
            raise RodentsegError(f"--text must name what to find (e.g. 'mouse'), got {text!r}")
        for name, v in (("box threshold", box_threshold), ("text threshold", text_threshold)):
            if not 0 < v < 1:
                raise RodentsegError(f"the {name} must be between 0 and 1, got {v}")
        self.text = " ".join(p + "." for p in phrases)
        self.box_threshold, self.text_threshold = box_threshold, text_threshold
        self.device = resolve_device(device)
        src, config = _config(name_or_path)
        if config.model_type != "grounding-dino":
            raise RodentsegError(f"{name_or_path!r} is a {config.model_type!r} model; a text "
                                 "detector must be Grounding DINO (e.g. grounding-dino-tiny)")
        self.model = _load_strict("GroundingDinoForObjectDetection", src, self.device)
        try:
            self.processor = transformers.AutoProcessor.from_pretrained(src)
        except (OSError, ValueError, ImportError) as e:
            raise RodentsegError(f"cannot load the Grounding DINO processor of {src!r} "
                                 f"(tokenizer and image processor): {e}") from None
        self.name = name_or_path

    @torch.inference_mode()
    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`Detector.detect`."""
        h, w = frame.shape[:2]
        inputs = self.processor(images=frame, text=self.text, return_tensors="pt").to(self.device)
        out = self.model(**inputs)
        res = self.processor.post_process_grounded_object_detection(
            out, inputs["input_ids"], threshold=self.box_threshold,
            text_threshold=self.text_threshold, target_sizes=[(h, w)])[0]
        boxes = res["boxes"].float().cpu().numpy().reshape(-1, 4)
        scores = res["scores"].float().cpu().numpy().reshape(-1)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        order = np.argsort(-scores[ok], kind="stable")
        return boxes[ok][order].astype(np.float32), scores[ok][order].astype(np.float32)


class SegmenterDetector:
    """Boxes of the animals a rodentseg segmenter finds (connected components of its mask).

    Args:
        segmenter: a loaded segmenter (:func:`rodentseg.models.load_model`).
        animals: known number of animals (split or merged to that many), or None.
        min_area: smallest animal in pixels.
    """

    def __init__(self, segmenter: Segmenter, animals: int | None = None, min_area: int = 30):
        self.segmenter, self.animals, self.min_area = segmenter, animals, min_area
        self.name = segmenter.name

    def detect(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """See :meth:`Detector.detect`."""
        prob = self.segmenter.predict(frame[None])[0]
        inst = split_instances(prob, self.segmenter.pre.threshold, self.animals, self.min_area)
        boxes = []
        for m in inst.masks:
            ys, xs = np.nonzero(m)
            boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        order = np.argsort(-inst.scores, kind="stable")
        return (np.array(boxes, np.float32).reshape(-1, 4)[order],
                inst.scores.astype(np.float32)[order])


def load_detector(name_or_path: str, text: str | None = None, device: str = "auto",
                  animals: int | None = None) -> Detector:
    """A rodentseg segmenter (registry name, or a directory of one) or Grounding DINO.

    Raises:
        RodentsegError: Grounding DINO without ``text``, or a model that fails to load.
    """
    cfg = Path(name_or_path) / "config.json"
    is_segmenter = name_or_path in MODEL_REGISTRY or (
        cfg.is_file() and '"rodentseg"' in cfg.read_text())  # segmenters keep their settings
    if is_segmenter:
        return SegmenterDetector(load_model(name_or_path, device), animals)
    if not text:
        raise RodentsegError(f"the detector {name_or_path!r} is Grounding DINO and needs --text "
                             "(e.g. --text mouse)")
    return GroundingDinoDetector(name_or_path, text, device=device)
