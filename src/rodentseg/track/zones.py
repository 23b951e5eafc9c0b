"""Arena and zones: where each animal spent its time, per named region of the image.

The readouts of an open-field or place-preference test, from the centroids of ``tracks.csv``:

- an **arena** (a polygon in image pixels): given as a file, or found from the video's
  background (:func:`find_arena`); centroids outside it are not counted anywhere (a
  reflection on the wall, the experimenter's hand);
- **zones**: named polygons (a file) or the open field's centre and periphery
  (:func:`centre_zones`: the centre is the arena shrunk about its centroid to a given share
  of its area, as in the centre-time measure of the open-field test, Prut & Belzung 2003);
- per animal and zone (:func:`zone_readouts`): time in the zone, entries and latency to the
  first entry, the definitions of ezTrack's and EthoVision's zone tables.

Coordinates are image pixels, ``(x, y)`` = (column, row), the frame of ``tracks.csv``'s
``cx``/``cy``; a pixel's centre is at integer coordinates.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.path import Path as MplPath
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from rodentseg.errors import RodentsegError


@dataclass(frozen=True)
class Zone:
    """A named region of the image: inside ``polygon`` and outside every hole.

    Attributes:
        name: the zone's name (a column prefix of the summary table).
        polygon: (K, 2) float64, K >= 3 vertices ``(x, y)`` in pixels, in order (either
            direction; the last vertex joins the first).
        holes: polygons cut out of it, each (K, 2) like ``polygon`` (the periphery is the
            arena with the centre as a hole).
    """

    name: str
    polygon: np.ndarray
    holes: tuple[np.ndarray, ...] = field(default=())

    def __post_init__(self):
        for p in (self.polygon, *self.holes):
            if p.ndim != 2 or p.shape[1] != 2 or len(p) < 3 or not np.isfinite(p).all():
                raise RodentsegError(f"zone {self.name!r}: expected a polygon of at least 3 "
                                     f"finite (x, y) points; got an array of shape {p.shape}")

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """Which points lie in the zone.

        Args:
            xy: (N, 2) float ``(x, y)`` pixels.

        Returns:
            (N,) bool; a point on the boundary may fall either way.
        """
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        inside = MplPath(self.polygon).contains_points(xy)
        for hole in self.holes:
            inside &= ~MplPath(hole).contains_points(xy)
        return inside

    def area(self) -> float:
        """Area in square pixels (shoelace formula; holes subtracted)."""
        def shoelace(p):
            x, y = p[:, 0], p[:, 1]
            return abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2
        return shoelace(self.polygon) - sum(shoelace(h) for h in self.holes)

    def to_json(self) -> list:
        return self.polygon.round(2).tolist()


def _polygon(name: str, value) -> np.ndarray:
    try:
        p = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise RodentsegError(f"zone {name!r}: expected a list of [x, y] points; got "
                             f"{str(value)[:60]}") from None
    if p.ndim != 2 or p.shape[1:] != (2,) or len(p) < 3:
        raise RodentsegError(f"zone {name!r}: expected a list of at least 3 [x, y] points; "
                             f"got {str(value)[:60]}")
    return p


def load_zones(path: str | Path) -> tuple[Zone | None, list[Zone]]:
    """Read an arena and zones from a JSON file.

    The file: ``{"arena": [[x, y], ...], "zones": {"name": [[x, y], ...], ...}}``, pixels;
    both keys are optional (``"arena"`` may also be left out and the zones alone given).

    Returns:
        ``(arena or None, zones)``.

    Raises:
        RodentsegError: unreadable file, not JSON, an unknown key, or a polygon that is not a
            list of at least 3 ``[x, y]`` points.
    """
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RodentsegError(f"cannot read zones from {path}: expected a JSON file like "
                             '{"arena": [[x, y], ...], "zones": {"centre": [[x, y], ...]}}; '
                             f"{type(e).__name__}: {e}") from None
    if not isinstance(d, dict) or set(d) - {"arena", "zones"}:
        raise RodentsegError(f"{path}: expected a JSON object with the keys 'arena' and/or "
                             f"'zones'; got {sorted(d) if isinstance(d, dict) else type(d)}")
    zones = d.get("zones") or {}
    if not isinstance(zones, dict):
        raise RodentsegError(f"{path}: 'zones' must map names to polygons; got "
                             f"{type(zones).__name__}")
    arena = Zone("arena", _polygon("arena", d["arena"])) if d.get("arena") else None
    return arena, [Zone(str(k), _polygon(str(k), v)) for k, v in zones.items()]


def save_zones(path: str | Path, arena: Zone | None, zones: list[Zone]) -> None:
    """Write ``arena`` and the zones without holes in the format :func:`load_zones` reads."""
    d = {"arena": arena.to_json()} if arena is not None else {}
    d["zones"] = {z.name: z.to_json() for z in zones if not z.holes}
    Path(path).write_text(json.dumps(d, indent=1) + "\n")


def centre_zones(arena: Zone, fraction: float = 0.5) -> list[Zone]:
    """The open field's ``centre`` and ``periphery``.

    The centre is the arena scaled about its centroid (the mean of its vertices for a
    regular outline, which is what :func:`find_arena` gives) so that its area is ``fraction``
    of the arena's; the periphery is the rest of the arena.

    Raises:
        RodentsegError: ``fraction`` not in (0, 1).
    """
    if not 0 < fraction < 1:
        raise RodentsegError(f"the centre's share of the arena must be in (0, 1); got {fraction}")
    p = arena.polygon
    c = p.mean(0)
    centre = c + (p - c) * math.sqrt(fraction)
    return [Zone("centre", centre), Zone("periphery", p, holes=(centre,))]


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold (Otsu 1979) of 8-bit-range values: the one that maximises the
    between-class variance of a 256-bin histogram."""
    hist, edges = np.histogram(values, bins=256, range=(0, 256))
    p = hist / max(1, hist.sum())
    w0 = np.cumsum(p)
    mu = np.cumsum(p * np.arange(256))
    between = (mu[-1] * w0 - mu) ** 2 / np.maximum(w0 * (1 - w0), 1e-12)
    return float(edges[int(np.argmax(between)) + 1])


def find_arena(background: np.ndarray, points: np.ndarray) -> Zone:
    """The arena floor as a convex polygon, from the empty scene and where the animals went.

    The floor is the Otsu class (light or dark) of the background that most visited points
    fall in, opened by a disc of 1% of the image's short side (cuts thin bridges to walls of
    the same tone), and of it the connected region holding most visited points, with its
    holes filled; the arena is the convex hull of that region and of the visited points
    themselves (so no visited place lies outside). Made for a floor that differs from its
    surround (an open field, a round arena, a home cage seen from above); check it on the
    picture :func:`rodentseg.track.summarize.draw_zones` makes, and give a polygon file where
    it fails.

    Args:
        background: (H, W) luma, uint8 or float in [0, 255]: the scene without animals (e.g.
            the median of frames spread over the video).
        points: (N, 2) float ``(x, y)`` pixels where the animals were (centroids), N >= 1.

    Returns:
        The zone ``arena``.

    Raises:
        RodentsegError: no points, or no region of the floor's tone under them.
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    points = points[np.isfinite(points).all(1)]
    if not len(points):
        raise RodentsegError("finding the arena needs the animals' positions; none were given "
                             "(no animal was tracked)")
    bg = ndimage.gaussian_filter(np.asarray(background, np.float32), 2.0)
    h, w = bg.shape
    xi = np.clip(np.round(points[:, 0]).astype(int), 0, w - 1)
    yi = np.clip(np.round(points[:, 1]).astype(int), 0, h - 1)
    light = bg > _otsu(bg)
    floor = light if light[yi, xi].mean() >= 0.5 else ~light
    r = max(1, round(0.01 * min(h, w)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    floor = ndimage.binary_opening(floor, xx**2 + yy**2 <= r * r)
    lab, n = ndimage.label(floor)
    hits = np.bincount(lab[yi, xi], minlength=n + 1)
    hits[0] = 0
    if n == 0 or hits.max() == 0:
        region_xy = np.zeros((0, 2))
    else:
        region = ndimage.binary_fill_holes(lab == int(hits.argmax()))
        edge = region & ~ndimage.binary_erosion(region)
        ys, xs = np.nonzero(edge)
        region_xy = np.stack([xs, ys], 1).astype(np.float64)
    return hull_zone(np.concatenate([region_xy, points]), "arena")


def hull_zone(points: np.ndarray, name: str = "arena") -> Zone:
    """The convex hull of ``points`` ((N, 2) float ``(x, y)`` pixels) as a zone.

    Raises:
        RodentsegError: the points span no area (fewer than 3, or all on a line).
    """
    points = np.asarray(points, np.float64).reshape(-1, 2)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):
        raise RodentsegError(f"no {name} found: the positions span no area and the background "
                             "shows no floor around them; give the arena as a polygon file "
                             "(--zones)") from None
    return Zone(name, points[hull.vertices])


@dataclass
class ZoneReadout:
    """One animal's time in one zone.

    Attributes:
        time_s: frames with the centroid inside / fps, seconds.
        entries: times the animal went in: a visible frame inside whose previous visible frame
            was outside, plus one when its first visible frame is inside.
        latency_s: time of the first frame inside, from the start of the video (frame 0),
            seconds; NaN when it never went in.
    """

    time_s: float
    entries: int
    latency_s: float


def zone_readouts(frame_idx: np.ndarray, xy: np.ndarray, fps: float, zones: list[Zone],
                  arena: Zone | None = None) -> dict[str, ZoneReadout]:
    """Time in each zone, entries and latency of one animal.

    Args:
        frame_idx: (N,) int, the frames where the animal was seen, increasing.
        xy: (N, 2) float, its centroid ``(x, y)`` in pixels in those frames.
        fps: frames per second (> 0).
        zones: the zones to score (they may overlap; each is scored on its own).
        arena: when given, the rows whose centroid is outside it are left out first (as if the
            animal had not been seen there).

    Returns:
        zone name -> :class:`ZoneReadout`.

    Raises:
        RodentsegError: ``fps`` not > 0, or shapes that do not match.
    """
    frame_idx = np.asarray(frame_idx, np.int64).ravel()
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if not fps > 0 or not math.isfinite(fps):
        raise RodentsegError(f"fps must be a positive number; got {fps}")
    if len(frame_idx) != len(xy):
        raise RodentsegError(f"{len(frame_idx)} frame indices but {len(xy)} positions")
    if arena is not None and len(xy):
        keep = arena.contains(xy)
        frame_idx, xy = frame_idx[keep], xy[keep]
    out = {}
    for z in zones:
        inside = z.contains(xy) if len(xy) else np.zeros(0, bool)
        entries = int(inside[0]) + int((inside[1:] & ~inside[:-1]).sum()) if len(inside) else 0
        first = frame_idx[inside.argmax()] / fps if inside.any() else float("nan")
        out[z.name] = ZoneReadout(float(inside.sum() / fps), entries, float(first))
    return out
