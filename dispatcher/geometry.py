"""Places as CAP 1.2 draws them: polygons and circles in WGS 84, points as (latitude, longitude).

CAP-v1.2-os §3.2.4 gives the rules the schema cannot check (``polygon`` and ``circle`` are plain
strings there): a polygon is a whitespace-separated list of ``lat,lon`` pairs, at least four, the
first equal to the last; a circle is a ``lat,lon`` centre, a space and a radius in kilometres. The
reader refuses what breaks them through :func:`parse_polygon` and :func:`parse_circle`, and the
display channel selects signs with :func:`inside_polygon` and :func:`inside_circle`, so each rule is
written once.

Coordinates are treated as a flat plane of degrees for the polygon test, as CAP feeds draw them; a
polygon that crosses the 180th meridian is not supported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal

Point = tuple[float, float]
Circle = tuple[float, float, float]

# A CAP coordinate is a plain decimal: float() would also take "nan", "inf", "1e3" and "1_0".
_NUMBER = r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_PAIR = re.compile(rf"({_NUMBER}),({_NUMBER})")
_RADIUS = re.compile(_NUMBER)
# The mean Earth radius (IUGG), in kilometres: haversine's sphere, good to about 0.5 %.
EARTH_RADIUS_KM = 6371.0088


class GeometryError(ValueError):
    """A polygon or circle that breaks CAP's rules; the message says which rule."""


def parse_point(text: str) -> Point:
    """Read one ``lat,lon`` pair, refusing anything but two decimals within WGS 84's range."""
    match = _PAIR.fullmatch(text)
    if not match:
        raise GeometryError(f"{text!r} is not a 'latitude,longitude' pair")
    lat, lon = float(match[1]), float(match[2])
    if not -90 <= lat <= 90:
        raise GeometryError(f"latitude {match[1]} in {text!r} is outside -90..90")
    if not -180 <= lon <= 180:
        raise GeometryError(f"longitude {match[2]} in {text!r} is outside -180..180")
    return lat, lon


def parse_polygon(text: str) -> list[Point]:
    """Read a CAP ``polygon``: at least four pairs, closed (the first pair equal to the last)."""
    pairs = text.split()
    if not pairs:
        raise GeometryError("is empty")
    points = [parse_point(pair) for pair in pairs]
    if len(points) < 4:
        raise GeometryError(f"has {len(points)} point(s); CAP needs at least 4, the first repeated last")
    if points[0] != points[-1]:
        raise GeometryError(f"is not closed: it starts at {pairs[0]} and ends at {pairs[-1]}")
    return points


def parse_circle(text: str) -> Circle:
    """Read a CAP ``circle``: ``lat,lon radius`` with the radius in kilometres (0 is a point)."""
    parts = text.split()
    if len(parts) != 2:
        raise GeometryError(f"{text.strip()!r} is not 'latitude,longitude radius'")
    lat, lon = parse_point(parts[0])
    if not _RADIUS.fullmatch(parts[1]):
        raise GeometryError(f"radius {parts[1]!r} is not a number of kilometres")
    radius = float(parts[1])
    if radius < 0:
        raise GeometryError(f"radius {parts[1]} is negative")
    return lat, lon, radius


def polygon_text(points: Sequence[Point]) -> str:
    """Write a polygon as CAP does, refusing one that :func:`parse_polygon` would refuse."""
    if not all(math.isfinite(v) for point in points for v in point):
        raise GeometryError(f"{list(points)!r} holds a coordinate that is not a number")
    text = " ".join(f"{format_degrees(lat)},{format_degrees(lon)}" for lat, lon in points)
    parse_polygon(text)
    return text


def circle_text(circle: Circle) -> str:
    """Write a circle as CAP does, refusing one that :func:`parse_circle` would refuse."""
    if not all(math.isfinite(v) for v in circle):
        raise GeometryError(f"{circle!r} holds a value that is not a number")
    lat, lon, radius = circle
    text = f"{format_degrees(lat)},{format_degrees(lon)} {format_degrees(radius)}"
    parse_circle(text)
    return text


def format_degrees(value: float) -> str:
    """A coordinate as CAP writes it: the shortest exact decimal, never an exponent (``1e-05``)."""
    return format(Decimal(repr(float(value))), "f")


def inside_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Whether ``point`` lies inside ``polygon`` (even-odd ray casting, so concave shapes work).

    A point exactly on an edge may fall either way; signs are selected by areas far wider than that.
    """
    lat, lon = point
    inside = False
    count = len(polygon)
    for i in range(count):
        lat1, lon1 = polygon[i]
        lat2, lon2 = polygon[i - 1]
        # The edge straddles the point's latitude: does it cross the ray going east from the point?
        if (lat1 > lat) != (lat2 > lat):
            crossing = lon1 + (lat - lat1) * (lon2 - lon1) / (lat2 - lat1)
            if lon < crossing:
                inside = not inside
    return inside


def distance_km(a: Point, b: Point) -> float:
    """Great-circle distance between two points, in kilometres (haversine)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def inside_circle(point: Point, circle: Circle) -> bool:
    """Whether ``point`` lies within ``circle`` (centre latitude, centre longitude, radius in km)."""
    lat, lon, radius = circle
    return distance_km(point, (lat, lon)) <= radius
