"""A plain map drawn on the server: sensors placed by longitude and latitude on a Web
Mercator plane (the projection of web maps, so that the shapes look familiar), fitted into the
picture, with a scale bar: an SVG the page embeds. No third-party server by default; with a
tile server configured (`estran hub run --map-tiles URL`), the slippy-map tiles under the
picture are drawn beneath the dots."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

WIDTH = 800
HEIGHT = 500
PAD = 50
EARTH_M = 40_075_016.686  # equator length, metres
MIN_SPAN_M = 400.0  # one sensor alone (or sensors a few metres apart): this much around it
LABEL_H = 16
LABEL_W = 170  # room a label takes (its text is at most about this wide)
STEPS = (1, 2, 5)


@dataclass(frozen=True, slots=True)
class Place:
    id: str
    lon: float
    lat: float
    label: str
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Dot:
    place: Place
    x: float
    y: float
    label_y: float  # where its label goes (nudged so labels do not overlap)
    label_x: float = 0.0
    anchor: str = "start"  # "end": the label sits left of its dot (near the right edge)


@dataclass(frozen=True, slots=True)
class Scale:
    x: float
    y: float
    length: float  # in picture units
    text: str


@dataclass(frozen=True, slots=True)
class Tile:
    href: str
    x: float
    y: float
    size: float


@dataclass(frozen=True, slots=True)
class MapPicture:
    width: int
    height: int
    dots: list[Dot]
    scale: Scale | None
    tiles: list[Tile] = field(default_factory=list)


MAX_ZOOM = 19
MAX_TILES = 64


def check_tiles(template: str) -> str:
    """A tile URL template as `--map-tiles` takes it: http(s), with {z}, {x} and {y}."""
    parts = urlsplit(template)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("--map-tiles: an http(s) URL template")
    if not all(f"{{{k}}}" in template for k in "zxy"):
        raise ValueError("--map-tiles: the template must hold {z}, {x} and {y}")
    return template


def tile_origin(template: str) -> str:
    """scheme://host[:port] of the tile server (what the page's CSP must allow)."""
    parts = urlsplit(template)
    return f"{parts.scheme}://{parts.netloc}"


def tiles_under(
    template: str, cx: float, cy: float, k: float, width: int, height: int
) -> list[Tile]:
    """The tiles covering the picture centred on (cx, cy) at `k` picture units per Mercator
    unit, at the zoom whose 256-pixel tiles come closest to 256 picture units."""
    z = max(0, min(MAX_ZOOM, round(math.log2(max(k, 1.0) / 256))))
    n = 2**z
    size = k / n  # one tile, in picture units
    x0, x1 = cx - width / 2 / k, cx + width / 2 / k
    y0, y1 = cy - height / 2 / k, cy + height / 2 / k
    out = []
    for ty in range(max(0, math.floor(y0 * n)), min(n - 1, math.floor(y1 * n)) + 1):
        for tx in range(max(0, math.floor(x0 * n)), min(n - 1, math.floor(x1 * n)) + 1):
            href = template.replace("{z}", str(z)).replace("{x}", str(tx)).replace("{y}", str(ty))
            x = width / 2 + (tx / n - cx) * k
            y = height / 2 + (ty / n - cy) * k
            out.append(Tile(href, round(x, 2), round(y, 2), round(size, 2)))
            if len(out) >= MAX_TILES:
                return out
    return out


def mercator(lon: float, lat: float) -> tuple[float, float]:
    """(x, y) in [0, 1): x east, y south."""
    lat = max(-85.05112878, min(85.05112878, lat))
    s = math.sin(math.radians(lat))
    return (lon + 180.0) / 360.0, 0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)


def valid(lon: float, lat: float) -> bool:
    return math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90


def round_distance(metres: float) -> float:
    """The largest 1, 2 or 5 times 10^n metres not above `metres`."""
    if metres <= 0:
        return 0.0
    power = 10 ** math.floor(math.log10(metres))
    best = float(power)
    for step in STEPS:
        if step * power <= metres:
            best = float(step * power)
    return best


def distance_text(metres: float, lang: str) -> str:
    if metres >= 1000:
        km = metres / 1000
        text = f"{km:g} km"
        return text.replace(".", ",") if lang == "fr" else text
    return f"{metres:g} m"


def draw(places: Sequence[Place], lang: str = "fr", tiles: str | None = None) -> MapPicture:
    """The places fitted into WIDTH by HEIGHT (north up, same scale both ways), over the
    tiles of the `tiles` URL template when given."""
    good = [p for p in places if valid(p.lon, p.lat)]
    if not good:
        return MapPicture(WIDTH, HEIGHT, [], None)
    xy = [mercator(p.lon, p.lat) for p in good]
    xs, ys = [x for x, _ in xy], [y for _, y in xy]
    mid_lat = sum(p.lat for p in good) / len(good)
    metres_per_unit = EARTH_M * math.cos(math.radians(mid_lat))
    min_span = MIN_SPAN_M / metres_per_unit
    span_x = max(max(xs) - min(xs), min_span)
    span_y = max(max(ys) - min(ys), min_span)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    k = min((WIDTH - 2 * PAD) / span_x, (HEIGHT - 2 * PAD) / span_y)  # picture units per unit
    dots = []
    for p, (x, y) in zip(good, xy, strict=True):
        dots.append(Dot(p, WIDTH / 2 + (x - cx) * k, HEIGHT / 2 + (y - cy) * k, 0.0))
    # labels right of their dot (left of it near the right edge), pushed down while they
    # would overlap one placed before them on the same side
    dots.sort(key=lambda d: (d.y, d.x))
    placed: list[Dot] = []
    for d in dots:
        anchor = "end" if d.x > WIDTH - LABEL_W else "start"
        label_x = d.x - 12 if anchor == "end" else d.x + 12
        label_y = d.y + 5
        for other in placed:
            if (
                other.anchor == anchor
                and abs(other.label_x - label_x) < LABEL_W
                and abs(other.label_y - label_y) < LABEL_H
            ):
                label_y = other.label_y + LABEL_H
        placed.append(
            Dot(d.place, round(d.x, 1), round(d.y, 1), round(label_y, 1), round(label_x, 1), anchor)
        )
    metres_per_px = metres_per_unit / k
    metres = round_distance(metres_per_px * WIDTH / 4)
    scale = Scale(
        PAD / 2, HEIGHT - PAD / 2, round(metres / metres_per_px, 1), distance_text(metres, lang)
    )
    under = tiles_under(tiles, cx, cy, k, WIDTH, HEIGHT) if tiles else []
    return MapPicture(WIDTH, HEIGHT, placed, scale, under)


__all__ = [
    "Dot",
    "MapPicture",
    "Place",
    "Scale",
    "Tile",
    "check_tiles",
    "draw",
    "mercator",
    "round_distance",
    "tile_origin",
    "tiles_under",
]
