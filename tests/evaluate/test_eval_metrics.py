"""Mask metrics against hand-computed values and against a loop-by-loop transcription of the
DAVIS 2017 reference (davisvideochallenge/davis2017-evaluation, commit 30b698a6,
davis2017/metrics.py: db_eval_iou, f_measure, _seg2bmap; davis2017/utils.py: db_statistics).
"""

import math

import numpy as np
import pytest
from scipy import ndimage

import rodentseg.evaluate.metrics as M
from rodentseg.evaluate import (
    boundary_f_measure,
    boundary_tolerance_px,
    db_statistics,
    iou,
    match_objects,
    pairwise_iou,
    region_similarity,
    seg2bmap,
)

# ---------------------------------------------------------------- the reference, loop by loop


def ref_seg2bmap(seg):
    """_seg2bmap: a pixel differs from its E, S or SE neighbour; last row: E only; last column:
    S only; the bottom-right pixel is 0."""
    h, w = seg.shape
    b = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            e = seg[y, x + 1] if x + 1 < w else False
            s = seg[y + 1, x] if y + 1 < h else False
            se = seg[y + 1, x + 1] if y + 1 < h and x + 1 < w else False
            if y == h - 1 and x == w - 1:
                b[y, x] = False
            elif y == h - 1:
                b[y, x] = seg[y, x] != e
            elif x == w - 1:
                b[y, x] = seg[y, x] != s
            else:
                b[y, x] = seg[y, x] != e or seg[y, x] != s or seg[y, x] != se
    return b


def ref_dilate(b, r):
    """cv2.dilate(b, skimage.morphology.disk(r)): disk = {dx^2 + dy^2 <= r^2} on an integer grid."""
    h, w = b.shape
    out = np.zeros_like(b)
    offsets = [(dy, dx) for dy in range(-int(r), int(r) + 1) for dx in range(-int(r), int(r) + 1)
               if dy * dy + dx * dx <= r * r]
    for y, x in zip(*np.nonzero(b)):
        for dy, dx in offsets:
            if 0 <= y + dy < h and 0 <= x + dx < w:
                out[y + dy, x + dx] = True
    return out


def ref_f_measure(fg, gt, bound_th=0.008):
    bound_pix = bound_th if bound_th >= 1 else np.ceil(bound_th * np.linalg.norm(fg.shape))
    fg_b, gt_b = ref_seg2bmap(fg), ref_seg2bmap(gt)
    fg_dil, gt_dil = ref_dilate(fg_b, bound_pix), ref_dilate(gt_b, bound_pix)
    gt_match, fg_match = np.sum(gt_b & fg_dil), np.sum(fg_b & gt_dil)
    n_fg, n_gt = np.sum(fg_b), np.sum(gt_b)
    if n_fg == 0 and n_gt > 0:
        precision, recall = 1, 0
    elif n_fg > 0 and n_gt == 0:
        precision, recall = 0, 1
    elif n_fg == 0 and n_gt == 0:
        precision, recall = 1, 1
    else:
        precision, recall = fg_match / float(n_fg), gt_match / float(n_gt)
    return 0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def ref_j(gt, seg):
    inters, union = np.sum(seg & gt), np.sum(seg | gt)
    return 1 if np.isclose(union, 0) else inters / union


def ref_db_statistics(values):
    n, m, o = len(values), np.nanmean(values), np.nanmean(values > 0.5)
    ids = np.round(np.linspace(1, n, 5) + 1e-10) - 1
    ids = ids.astype(int)
    bins = [values[ids[i]:ids[i + 1] + 1] for i in range(4)]
    return m, o, np.nanmean(bins[0]) - np.nanmean(bins[3])


def random_mask(rng, h, w):
    """Blobs (smoothed noise), rectangles touching a border, single pixels, empty or full."""
    kind = rng.integers(0, 6)
    if kind == 0:
        return np.zeros((h, w), bool)
    if kind == 1:
        return np.ones((h, w), bool) if rng.random() < 0.5 else rng.random((h, w)) < 0.05
    if kind == 2:
        m = np.zeros((h, w), bool)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        m[y0:, x0:] = True  # touches the bottom and right borders
        return m
    noise = ndimage.gaussian_filter(rng.random((h, w)), sigma=rng.uniform(1, 3))
    return noise > np.quantile(noise, rng.uniform(0.5, 0.95))


# -------------------------------------------------------------------- agreement with reference


@pytest.mark.parametrize("bound_th", [0.008, 0.05, 2, 3])  # 1 px on 24x32 (ceil), 2 px, pixels
def test_j_and_f_equal_reference_on_random_masks(bound_th):
    rng = np.random.default_rng(int(bound_th * 1000))
    for _ in range(60):
        h, w = rng.integers(1, 30), rng.integers(1, 34)
        a, b = random_mask(rng, h, w), random_mask(rng, h, w)
        assert region_similarity(a, b) == pytest.approx(ref_j(b, a), abs=1e-6)
        assert boundary_f_measure(a, b, bound_th) == pytest.approx(
            ref_f_measure(a, b, bound_th), abs=1e-6)


def test_seg2bmap_equals_reference():
    rng = np.random.default_rng(0)
    for _ in range(50):
        m = random_mask(rng, rng.integers(1, 20), rng.integers(1, 20))
        np.testing.assert_array_equal(seg2bmap(m), ref_seg2bmap(m))


def test_f_full_frame_crop_equals_uncropped_reference():
    # 480x640 with the default tolerance (7 px): objects in the middle and touching borders.
    # The reference dilation is vectorised here (OR of shifted maps) to keep the test fast.
    def dilate(b, r):
        out = np.zeros_like(b)
        pad = np.pad(b, int(r))
        for dy in range(-int(r), int(r) + 1):
            for dx in range(-int(r), int(r) + 1):
                if dy * dy + dx * dx <= r * r:
                    out |= pad[int(r) + dy:int(r) + dy + b.shape[0],
                               int(r) + dx:int(r) + dx + b.shape[1]]
        return out

    yy, xx = np.mgrid[:480, :640]
    cases = [(((yy - 240) / 50) ** 2 + ((xx - 320) / 80) ** 2 <= 1,
              ((yy - 244) / 47) ** 2 + ((xx - 317) / 85) ** 2 <= 1),
             ((yy > 430) & (xx > 600), (yy > 433) & (xx > 590)),  # bottom-right corner
             ((yy < 20) | (xx < 3), xx < 5)]  # top and left borders
    for a, b in cases:
        fa, fb = M.seg2bmap(a), M.seg2bmap(b)
        fg_match, gt_match = np.sum(fa & dilate(fb, 7)), np.sum(fb & dilate(fa, 7))
        p, r = fg_match / fa.sum(), gt_match / fb.sum()
        assert boundary_f_measure(a, b) == pytest.approx(2 * p * r / (p + r), abs=1e-6)


def test_kd_tree_path_equals_lookup_path(monkeypatch):
    rng = np.random.default_rng(3)
    pairs = [(random_mask(rng, 40, 50), random_mask(rng, 40, 50)) for _ in range(30)]
    fast = [boundary_f_measure(a, b, 3) for a, b in pairs]
    monkeypatch.setattr(M, "_GATHER_LIMIT", 0)  # force the k-d tree for every pair
    assert [boundary_f_measure(a, b, 3) for a, b in pairs] == pytest.approx(fast, abs=1e-12)


def test_db_statistics_equals_reference():
    rng = np.random.default_rng(1)
    for n in [1, 2, 3, 4, 5, 7, 50, 300]:  # 300 > 255: the reference's uint8 edges would wrap
        v = rng.random(n)
        assert db_statistics(v) == pytest.approx(ref_db_statistics(v), abs=1e-12)


# ---------------------------------------------------------------------- values worked by hand


def px(h, w, *points):
    m = np.zeros((h, w), bool)
    for y, x in points:
        m[y, x] = True
    return m


def test_iou_by_hand():
    a = np.zeros((4, 4), bool)
    a[0:2, 0:2] = True  # 4 px
    b = np.zeros((4, 4), bool)
    b[0:2, 0:3] = True  # 6 px, contains a
    assert iou(a, b) == pytest.approx(4 / 6)
    assert iou(px(5, 5, (2, 2)), px(5, 5, (2, 2))) == 1.0  # single pixel, same
    assert iou(px(5, 5, (2, 2)), px(5, 5, (2, 3))) == 0.0  # single pixel, neighbours


@pytest.mark.parametrize("pred,gt,j,f", [
    # both empty: IoU undefined, J = 1 (db_eval_iou) and F = 1 (no boundary on either side)
    (np.zeros((6, 6), bool), np.zeros((6, 6), bool), 1.0, 1.0),
    # empty prediction: J = 0; precision 1, recall 0 -> F = 0
    (np.zeros((6, 6), bool), px(6, 6, (2, 2)), 0.0, 0.0),
    # empty ground truth: J = 0; precision 0, recall 1 -> F = 0
    (px(6, 6, (2, 2)), np.zeros((6, 6), bool), 0.0, 0.0),
    # whole frame on both sides: no boundary at all (see seg2bmap) -> J = 1, F = 1
    (np.ones((6, 6), bool), np.ones((6, 6), bool), 1.0, 1.0),
    # whole frame vs nothing: J = 0 but neither has a boundary pixel, so F = 1 (DAVIS rule)
    (np.ones((6, 6), bool), np.zeros((6, 6), bool), 0.0, 1.0),
])
def test_empty_and_full_masks(pred, gt, j, f):
    assert region_similarity(pred, gt) == j
    assert boundary_f_measure(pred, gt, bound_th=1) == f


def test_iou_nan_when_both_empty():
    assert math.isnan(iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool)))


def test_seg2bmap_by_hand():
    # one pixel at (2, 2): boundary = itself and its N, W and NW neighbours (half-pixel shift)
    b = seg2bmap(px(5, 5, (2, 2)))
    assert sorted(zip(*np.nonzero(b))) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    # one pixel in the bottom-right corner of a 3x3 frame: the corner itself is never boundary
    b = seg2bmap(px(3, 3, (2, 2)))
    assert sorted(zip(*np.nonzero(b))) == [(1, 1), (1, 2), (2, 1)]


@pytest.mark.parametrize("pred_x,f", [
    (3, 1.0),  # boundaries {x=1,2} and {x=2,3}: every pixel within 1 px -> P = R = 1
    (4, 0.5),  # {x=1,2} vs {x=3,4}: only x=2 <-> x=3 pairs are within 1 px -> P = R = 1/2
    (5, 0.0),  # {x=1,2} vs {x=4,5}: 2 px apart -> P = R = 0
])
def test_f_single_pixel_objects_by_hand(pred_x, f):
    gt, pred = px(10, 10, (2, 2)), px(10, 10, (2, pred_x))
    assert region_similarity(pred, gt) == 0.0
    assert boundary_f_measure(pred, gt, bound_th=1) == pytest.approx(f)


def test_objects_touching_the_border_by_hand():
    gt = np.zeros((4, 4), bool)
    gt[:, 0] = True  # left column: boundary = column 0 (each pixel differs from its E side)
    pred = np.zeros((4, 4), bool)
    pred[:, :2] = True  # left two columns: boundary = column 1
    assert region_similarity(pred, gt) == pytest.approx(4 / 8)
    assert boundary_f_measure(pred, gt, bound_th=1) == 1.0  # 1 px apart, within 1 px
    assert boundary_f_measure(pred, gt, bound_th=0) == 0.0  # no tolerance: no pixel shared


def test_boundary_tolerance():
    assert boundary_tolerance_px((480, 640)) == 7.0  # ceil(0.008 * 800) = ceil(6.4)
    assert boundary_tolerance_px((480, 640), 3) == 3.0
    with pytest.raises(ValueError, match="whole number"):
        boundary_tolerance_px((480, 640), 2.5)


def test_db_statistics_by_hand():
    # 4 frames: bin edges round(linspace(1, 4, 5) + 1e-10) - 1 = [0, 1, 2, 2, 3]
    # first bin [1, 1], last bin [0, 0] -> decay 1
    assert db_statistics([1.0, 1.0, 0.0, 0.0]) == (0.5, 0.5, 1.0)
    # 8 frames: edges [0, 2, 4, 5, 7]; first bin mean(1, .8, .6) = .8, last bin 0
    m, r, d = db_statistics([1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0, 0.0])
    assert (m, r, d) == pytest.approx((3.0 / 8, 3 / 8, 0.8))
    assert all(math.isnan(v) for v in db_statistics([]))


def test_hungarian_beats_greedy():
    # greedy would take (0, 0) = .5 then nothing useful; the best total is .4 + .45
    assert match_objects(np.array([[0.5, 0.4], [0.45, 0.0]])) == [(1, 0), (0, 1)]
    assert match_objects(np.array([[0.0, 0.0]])) == []  # IoU 0 is no match
    assert match_objects(np.zeros((0, 2))) == []


def test_pairwise_iou():
    a = np.zeros((2, 4, 4), bool)
    a[0, :2, :2] = True
    a[1, 2:, 2:] = True
    np.testing.assert_allclose(pairwise_iou(a, a[::-1]), [[0, 1], [1, 0]])
