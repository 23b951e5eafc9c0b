"""Identity accuracy of ``rodentseg track`` on real mice pasted into real arenas.

    python benchmarks/track_identity.py [--frames 600] [--animals 2 3 4] [--seed 0]

Scenes (copy-paste, as in Ghiasi et al. 2021 and ``rodentseg.train.augment``): the real mouse
of ``../shared/data/openfield-m4s1`` (its 116 labelled poses, each cut out by its silver mask
and turned so that its tailbase->snout axis points along its motion) is pasted N times into
two real empty arenas: the open field's per-pixel median background (640x480) and the tracktor
video's circular arena (median of 101 frames, mouse scaled 0.5). The N look-alike animals walk
(speed 0-8 px/frame, smooth turns, pauses, walls) and, every few seconds, one walks up to
another and through it, so they touch, overlap, occlude and cross; later animals cover earlier
ones. The pose changes every 3 frames.

Each scene is given to ``rodentseg track --animals N --video`` twice, as the masks of two
kinds of detector, with ids shuffled in every frame:

- ``instances``: one mask per visible animal even when they touch (instance segmenters),
  with detector errors: outlines 1 px off, 2 % of masks missed, a false blob in 2 % of frames;
- ``blobs``: connected components of all animal pixels, so touching animals arrive as one
  mask (a semantic segmenter + connected components).

Scores, against the pasted ground truth. An animal is "held" in a frame by the track whose
mask covers more than half of its visible pixels; ``held`` = share of visible (frame, animal)
pairs held by some track (detection: misses and animals hidden inside a blob lower it).
``id_acc`` (identity accuracy) = share of held pairs held by the track that the best
one-to-one mapping of animals to tracks over the whole scene gives that animal (``alone``: the
same over the animals not touching another in that frame, i.e. is the identity right once
animals separate);
``switches`` = times the covering track of an animal changes; IDF1, ID switches and MOTA from py-motmetrics at mask IoU >= 0.5
(:class:`rodentseg.evaluate.IdentityMetrics`; partial masks of animals inside a blob may fall
below that IoU, so IDF1 < id_acc there). ``touch`` = share of frames where two animals touch
(their masks, grown by 2 px, overlap); ``merged`` = share of frames with fewer blobs than
visible animals.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import av
import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from rodentseg.cli import main as rodentseg_main
from rodentseg.evaluate.identity import IdentityMetrics
from rodentseg.io.masks import iter_label_pngs
from rodentseg.io.video import VideoWriter
from rodentseg.types import FrameMasks

DATA = Path(__file__).resolve().parents[1].parent / "shared/data"
OPENFIELD = DATA / "openfield-m4s1"
TRACKTOR = DATA / "tracktor-mice/mouse_video.mp4"
H, W = 480, 640
BODY_PX = 90  # snout to tailbase of the open-field mouse, about


def load_sprites():
    """Per labelled frame: grey pixels and mask of the mouse, turned to face +x, and the
    offset of the mask centroid in the sprite."""
    kp = {}
    with (OPENFIELD / "keypoints.csv").open() as f:
        for r in csv.DictReader(f):
            kp[r["frame"], r["bodypart"]] = float(r["x"]), float(r["y"])
    sprites = []
    for p in sorted((OPENFIELD / "frames").glob("*.png")):
        img = np.asarray(Image.open(p))[..., 0]
        m = np.asarray(Image.open(OPENFIELD / "masks" / p.name)) > 0
        ys, xs = np.nonzero(m)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        sx, sy = kp[p.name, "snout"]
        tx, ty = kp[p.name, "tailbase"]
        angle = math.degrees(math.atan2(sy - ty, sx - tx))  # heading, image coordinates
        sprites.append((img[y0:y1, x0:x1], m[y0:y1, x0:x1], angle))
    return sprites


SPRITES: list = []


@lru_cache(maxsize=4096)
def posed(idx: int, heading_bin: int, scale: float):
    """Sprite ``idx`` turned to heading ``heading_bin * 10`` degrees: (grey, mask, cy, cx)."""
    img, m, angle = SPRITES[idx]
    # ndimage.rotate turns counter-clockwise in (row, col) display terms
    rot = angle - heading_bin * 10
    gi = ndimage.rotate(img.astype(np.float32), rot, order=1, reshape=True, cval=0)
    mi = ndimage.rotate(m.astype(np.float32), rot, order=1, reshape=True, cval=0) > 0.5
    if scale != 1:
        gi = ndimage.zoom(gi, scale, order=1)
        mi = ndimage.zoom(mi.astype(np.float32), scale, order=1) > 0.5
    ys, xs = np.nonzero(mi)
    return gi.astype(np.uint8), mi, ys.mean(), xs.mean()


class Arena:
    def __init__(self, name: str, background: np.ndarray, inside, centre, scale: float,
                 speed: float):
        self.name, self.background, self.inside = name, background, inside
        self.centre, self.scale, self.speed = np.array(centre, float), scale, speed


def arenas() -> list[Arena]:
    frames = [np.asarray(Image.open(p))[..., 0] for p in sorted((OPENFIELD / "frames").glob("*.png"))]
    open_field = np.median(np.stack(frames), 0).astype(np.uint8)
    out = [Arena("openfield", open_field, lambda p: 80 < p[0] < 560 and 110 < p[1] < 410,
                 (320, 260), 1.0, 1.0)]
    if TRACKTOR.exists():
        grey = []
        with av.open(str(TRACKTOR)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % 40 == 0:
                    grey.append(f.to_ndarray(format="gray"))
                if i >= 4000:
                    break
        bg = np.median(np.stack(grey), 0).astype(np.uint8)
        out.append(Arena("tracktor", bg, lambda p: math.hypot(p[0] - 310, p[1] - 235) < 165,
                         (310, 235), 0.5, 0.5))
    return out


def walk(n: int, t_len: int, arena: Arena, rng: np.random.Generator):
    """(n, T, 2) positions and (n, T) headings (radians): smooth turns, pauses (only away
    from the others), walls, and every ~3 s one animal heading for another until they touch,
    then walking on past or over it."""
    pos = np.zeros((n, t_len, 2))
    head = np.zeros((n, t_len))
    p = np.array([arena.centre + rng.uniform(-120, 120, 2) * arena.scale for _ in range(n)])
    for k in range(n):
        while not arena.inside(p[k]):
            p[k] = arena.centre + rng.uniform(-120, 120, 2) * arena.scale
    th = rng.uniform(-math.pi, math.pi, n)
    speed = rng.uniform(2, 6, n)
    turn = np.zeros(n)
    chase = {}  # animal -> (target animal, frames left)
    pause = np.zeros(n, int)
    for t in range(t_len):
        if t % 90 == 30 and n > 1:
            a, b = rng.choice(n, 2, replace=False)
            chase[int(a)] = (int(b), 45)
        for k in range(n):
            turn[k] = 0.8 * turn[k] + rng.normal(0, 0.05)
            want = None
            if k in chase:
                b, left = chase[k]
                want = math.atan2(*(p[b] - p[k])[::-1])
                chase[k] = (b, left - 1)
                if left <= 1 or np.hypot(*(p[b] - p[k])) < 0.8 * BODY_PX * arena.scale:
                    del chase[k]  # contact: it walks on, past or over the other
            nxt = p[k] + arena.speed * speed[k] * np.array([math.cos(th[k]), math.sin(th[k])])
            if not arena.inside(nxt):
                want = math.atan2(*(arena.centre - p[k])[::-1])
            if want is not None:
                d = (want - th[k] + math.pi) % (2 * math.pi) - math.pi
                th[k] += float(np.clip(d, -0.2, 0.2))
            else:
                th[k] += turn[k]
            if pause[k] > 0:
                pause[k] -= 1
                v = 0.0
            else:
                alone = all(np.hypot(*(p[o] - p[k])) > 1.5 * BODY_PX * arena.scale
                            for o in range(n) if o != k)
                if k not in chase and alone and rng.random() < 0.01:
                    pause[k] = rng.integers(10, 40)
                speed[k] = float(np.clip(speed[k] + rng.normal(0, 0.3), 1.5, 8.0 if k in chase else 6.0))
                v = speed[k] * arena.speed
            step = p[k] + v * np.array([math.cos(th[k]), math.sin(th[k])])
            if arena.inside(step) or not arena.inside(p[k]):
                p[k] = step
            pos[k, t], head[k, t] = p[k], th[k]
    return pos, head


def render(pos, head, arena: Arena, rng: np.random.Generator):
    """Yield (ground-truth FrameMasks with obj_ids 1..N, RGB frame)."""
    n, t_len = head.shape
    start = rng.integers(0, len(SPRITES), n)
    for t in range(t_len):
        frame = arena.background.copy()
        label = np.zeros((H, W), np.uint8)
        for k in range(n):
            idx = int((start[k] + t // 3) % len(SPRITES))
            hb = round(math.degrees(head[k, t]) / 10) % 36
            g, m, cy, cx = posed(idx, hb, arena.scale)
            y0, x0 = round(float(pos[k, t, 1] - cy)), round(float(pos[k, t, 0] - cx))
            ys, xs = np.nonzero(m)
            ys, xs = ys + y0, xs + x0
            ok = (ys >= 0) & (ys < H) & (xs >= 0) & (xs < W)
            frame[ys[ok], xs[ok]] = g[ys[ok] - y0, xs[ok] - x0]
            label[ys[ok], xs[ok]] = k + 1
        yield FrameMasks.from_label_image(t, label), np.repeat(frame[..., None], 3, 2)


def detector_masks(gt: FrameMasks, kind: str, rng: np.random.Generator) -> np.ndarray:
    """(H, W) uint8 label image with ids shuffled per frame.

    ``instances``: each visible animal's mask with the errors of a real detector: its outline
    grown or shrunk by 1 px (30 % of masks each), missed (2 %), and a false blob (a disc of
    radius 4-8 px, 2 % of frames). ``blobs``: connected components of all animal pixels.
    """
    if kind == "blobs":
        lab, n = ndimage.label(gt.masks.any(0), structure=np.ones((3, 3), bool))
        masks = list(lab[None] == np.arange(1, n + 1)[:, None, None])
    else:
        masks = []
        for m in gt.masks:
            r = rng.random()
            if r < 0.02:
                continue
            if r < 0.32:
                m = ndimage.binary_dilation(m)
            elif r < 0.62:
                m = ndimage.binary_erosion(m)
            masks.append(m)
        if rng.random() < 0.02:
            cx, cy, rad = rng.uniform(40, W - 40), rng.uniform(40, H - 40), rng.uniform(4, 8)
            ys, xs = np.mgrid[:H, :W]
            masks.append((xs - cx) ** 2 + (ys - cy) ** 2 <= rad * rad)
    out = np.zeros((H, W), np.uint8)
    for new_id, m in zip(rng.permutation(len(masks)) + 1, masks):
        out[m] = new_id
    return out


def alone_ids(gt: FrameMasks) -> set[int]:
    """Animals whose pixels form a blob with no other animal in it (not touching)."""
    lab, _ = ndimage.label(gt.masks.any(0), structure=np.ones((3, 3), bool))
    comps = [set(np.unique(lab[m]).tolist()) for m in gt.masks]
    return {int(g) for k, g in enumerate(gt.obj_ids)
            if not any(comps[k] & comps[o] for o in range(len(comps)) if o != k)}


class Scores:
    """id_acc and switches (see the module docstring), over all visible animals and over the
    animals not touching another (``alone``), plus the py-motmetrics scores."""

    def __init__(self):
        self.counts: dict[tuple[int, int, bool], int] = {}
        self.visible = {True: 0, False: 0}
        self.switches = 0
        self.last: dict[int, int] = {}
        self.mm = IdentityMetrics(0.5)

    def update(self, gt: FrameMasks, pred: FrameMasks) -> None:
        self.mm.update(gt, pred)
        alone = alone_ids(gt)
        for g, gm in zip(gt.obj_ids.tolist(), gt.masks):
            self.visible[g in alone] += 1
            for p, pm in zip(pred.obj_ids.tolist(), pred.masks):
                if np.count_nonzero(gm & pm) * 2 > np.count_nonzero(gm):
                    key = (g, p, g in alone)
                    self.counts[key] = self.counts.get(key, 0) + 1
                    self.switches += self.last.get(g, p) != p
                    self.last[g] = p
                    break

    def result(self) -> dict:
        gs = sorted({k[0] for k in self.counts})
        ps = sorted({k[1] for k in self.counts})
        m = {a: np.array([[self.counts.get((g, p, a), 0) for p in ps] for g in gs])
             for a in (True, False)}
        r, c = linear_sum_assignment(m[True] + m[False], maximize=True)
        held = {a: max(int(m[a].sum()), 1) for a in (True, False)}
        return {"id_acc": (m[True][r, c].sum() + m[False][r, c].sum()) / sum(held.values()),
                "id_acc_alone": m[True][r, c].sum() / held[True], "switches": self.switches,
                "held": sum(int(m[a].sum()) for a in m) / sum(self.visible.values()),
                **self.mm.compute()}


def scene(arena: Arena, n: int, t_len: int, seed: int, tmp: Path) -> list[dict]:
    rng = np.random.default_rng(seed)
    pos, head = walk(n, t_len, arena, rng)
    gts, touch, merged = [], 0, 0
    dirs = {k: tmp / k for k in ("instances", "blobs")}
    for d in dirs.values():
        d.mkdir()
    video = tmp / f"{arena.name}_{n}.mp4"
    with VideoWriter(video, W, H, 30) as vw:
        for gt, frame in render(pos, head, arena, rng):
            vw.write(frame)
            gts.append(gt)
            grown = [ndimage.binary_dilation(m, iterations=2) for m in gt.masks]
            touch += any((grown[a] & grown[b]).any() for a in range(len(grown))
                         for b in range(a + 1, len(grown)))
            for kind, d in dirs.items():
                lab = detector_masks(gt, kind, rng)
                Image.fromarray(lab).save(d / f"{gt.frame_idx:06d}.png")
                if kind == "blobs":
                    merged += len(np.unique(lab)) - 1 < len(gt)
    rows = []
    for kind, d in dirs.items():
        out = tmp / "out"
        rc = rodentseg_main(["track", str(d), "--out", str(out), "--video", str(video),
                             "--animals", str(n), "--name", f"{arena.name}_{n}_{kind}",
                             "--no-overlay", "--quiet"])
        if rc:
            sys.exit(f"rodentseg track failed with status {rc}")
        res = out / f"{arena.name}_{n}_{kind}"
        sc = Scores()
        for gt, pred in zip(gts, iter_label_pngs(res / "masks")):
            sc.update(gt, pred)
        with (res / "swaps.csv").open() as f:
            n_events = sum(1 for _ in f) - 1
        rows.append({"arena": arena.name, "animals": n, "masks": kind, "frames": t_len,
                     "touch": touch / t_len, "merged": merged / t_len, "events": n_events,
                     **sc.result()})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--animals", type=int, nargs="+", default=[2, 3, 4])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not OPENFIELD.exists():
        sys.exit(f"needs the data pack: {OPENFIELD} not found")
    SPRITES.extend(load_sprites())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arena in arenas():
            for n in args.animals:
                work = Path(tmp) / f"{arena.name}_{n}"
                work.mkdir()
                for r in scene(arena, n, args.frames, args.seed * 1000 + n, work):
                    rows.append(r)
                    print(f"{r['arena']:9s} N={r['animals']} {r['masks']:9s} frames {r['frames']}"
                          f"  touch {r['touch']:.0%} merged {r['merged']:.0%}  "
                          f"held {r['held']:.3f} id_acc {r['id_acc']:.4f} "
                          f"(alone {r['id_acc_alone']:.4f}) "
                          f"switches {r['switches']:3d}  "
                          f"IDF1 {r['idf1']:.4f} IDsw {r['num_switches']:3d} "
                          f"MOTA {r['mota']:.4f}  swaps.csv events {r['events']}", flush=True)
    for kind in ("instances", "blobs"):
        sel = [r for r in rows if r["masks"] == kind]
        vis = sum(r["id_acc"] * r["frames"] for r in sel) / sum(r["frames"] for r in sel)
        print(f"{kind:9s}: min id_acc {min(r['id_acc'] for r in sel):.4f}, frame-weighted mean "
              f"{vis:.4f}, total switches {sum(r['switches'] for r in sel)}")


if __name__ == "__main__":
    main()
