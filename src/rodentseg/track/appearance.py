"""Appearance of an animal: the colour histogram of its pixels.

Each animal is described by a per-channel histogram of the RGB values under its mask (16 bins
per channel, each channel's bins summing to 1), and two descriptions are compared with the
Bhattacharyya coefficient (Bhattacharyya 1943; the histogram distance of mean-shift tracking,
Comaniciu, Ramesh and Meer 2003). It separates animals that differ in fur colour or markings
(black vs. agouti or white, a dye mark, a tail tattoo seen from above); animals that look alike
get equal histograms, and then motion and overlap decide alone.
"""

from __future__ import annotations

import numpy as np

BINS = 16  # per channel


def colour_histogram(frame: np.ndarray, box: tuple[int, int, int, int],
                     crop: np.ndarray) -> np.ndarray:
    """Histogram of the pixels of one animal.

    Args:
        frame: (H, W, 3) uint8 RGB.
        box: ``(y0, y1, x0, x1)`` of the mask in pixels, end exclusive.
        crop: (y1 - y0, x1 - x0) bool, the mask inside ``box``.

    Returns:
        (3 * BINS,) float64, each channel's block summing to 1 (all zeros for an empty mask).
    """
    pix = frame[box[0]:box[1], box[2]:box[3]][crop]  # (P, 3) uint8
    if not len(pix):
        return np.zeros(3 * BINS)
    idx = (pix >> 4).astype(np.intp) + np.array([0, BINS, 2 * BINS])
    hist = np.bincount(idx.ravel(), minlength=3 * BINS).astype(np.float64)
    return hist / len(pix)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``1 - Bhattacharyya coefficient`` between histograms, averaged over the channels.

    Args:
        a: (T, 3 * BINS) or (3 * BINS,); b: (D, 3 * BINS) or (3 * BINS,), as made by
            :func:`colour_histogram`.

    Returns:
        (T, D) float in [0, 1] (0 = same distribution), or a scalar for two vectors.
    """
    bc = np.sqrt(np.atleast_2d(a)) @ np.sqrt(np.atleast_2d(b)).T / 3.0
    d = np.clip(1.0 - bc, 0.0, 1.0)
    return d if (np.ndim(a) == 2 or np.ndim(b) == 2) else float(d[0, 0])
