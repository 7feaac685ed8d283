"""Polygons and circles: CAP's rules for writing them, and which points they hold."""

from __future__ import annotations

import math

import pytest

from dispatcher.geometry import (
    GeometryError,
    circle_text,
    distance_km,
    format_degrees,
    inside_circle,
    inside_polygon,
    parse_circle,
    parse_polygon,
    polygon_text,
)

SQUARE = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]
# A "U" opening north: two arms (longitude 0..1 and 2..3) joined by a base (latitude 0..1).
U_SHAPE = [(0, 0), (0, 3), (3, 3), (3, 2), (1, 2), (1, 1), (3, 1), (3, 0), (0, 0)]
# Around Dongba, Beijing (the hand-written geometry fixture's polygon).
DONGBA = parse_polygon("39.96,116.52 39.99,116.56 39.96,116.60 39.93,116.56 39.96,116.52")
KM_PER_DEGREE = 6371.0088 * math.pi / 180  # along a meridian, on haversine's sphere


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((0.5, 0.5), True),
        ((1.5, 0.5), False),
        ((0.5, -0.1), False),
        ((-0.5, 0.5), False),
    ],
)
def test_a_point_in_a_square(point: tuple[float, float], inside: bool) -> None:
    assert inside_polygon(point, SQUARE) is inside


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((2.0, 0.5), True),  # the western arm
        ((2.0, 2.5), True),  # the eastern arm
        ((0.5, 1.5), True),  # the base
        ((2.0, 1.5), False),  # the notch between the arms: inside the hull, outside the shape
        ((3.5, 1.5), False),
    ],
)
def test_a_point_in_a_concave_polygon(point: tuple[float, float], inside: bool) -> None:
    assert inside_polygon(point, [(float(a), float(b)) for a, b in U_SHAPE]) is inside


def test_latitude_is_first_in_a_point() -> None:
    assert inside_polygon((39.96, 116.56), DONGBA)
    assert not inside_polygon((116.56, 39.96), DONGBA)  # the same numbers as (lon, lat): nowhere near


def test_one_degree_of_latitude_is_about_111_km() -> None:
    assert distance_km((0.0, 0.0), (1.0, 0.0)) == pytest.approx(KM_PER_DEGREE, rel=1e-9)
    assert distance_km((39.9, 116.4), (39.9, 116.4)) == 0.0


def test_beijing_to_shanghai() -> None:
    # Tiananmen to the Bund: about 1,067 km on the great circle.
    assert distance_km((39.9042, 116.4074), (31.2304, 121.4737)) == pytest.approx(1067, abs=5)


def test_a_circle_holds_points_within_its_radius() -> None:
    circle = (39.96, 116.56, 5.0)
    just_inside = (39.96 + 4.9 / KM_PER_DEGREE, 116.56)
    just_outside = (39.96 + 5.1 / KM_PER_DEGREE, 116.56)
    assert inside_circle(just_inside, circle)
    assert not inside_circle(just_outside, circle)
    assert inside_circle((39.96, 116.56), (39.96, 116.56, 0.0))  # radius 0: the point itself


def test_a_polygon_is_read_as_lat_lon_pairs() -> None:
    assert parse_polygon("21,120 21,130\n 5,130 21,120") == [
        (21.0, 120.0),
        (21.0, 130.0),
        (5.0, 130.0),
        (21.0, 120.0),
    ]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("39.96,116.52 39.99,116.56 39.96,116.60 39.94,116.52", "not closed"),
        ("39.96,116.52 39.99,116.56 39.96,116.52", "has 3 point(s)"),
        ("39.96,116.52 95,116.56 39.96,116.60 39.96,116.52", "latitude 95"),
        ("39.96,116.52 39.99,181 39.96,116.60 39.96,116.52", "longitude 181"),
        ("39.96,116.52 39.99;116.56 39.96,116.60 39.96,116.52", "'39.99;116.56'"),
        ("39.96,116.52 39.99,116.56,3 39.96,116.60 39.96,116.52", "'39.99,116.56,3'"),
        ("nan,116.52 39.99,116.56 39.96,116.60 nan,116.52", "'nan,116.52'"),
        ("1e1,116.52 39.99,116.56 39.96,116.60 1e1,116.52", "'1e1,116.52'"),
        ("38.47,-120.14 38.34,-119.95 38.52", "'38.52'"),
        ("   ", "empty"),
    ],
)
def test_a_polygon_against_the_rules_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(GeometryError) as caught:
        parse_polygon(text)
    assert fragment in str(caught.value)


def test_a_circle_is_a_centre_and_a_radius_in_km() -> None:
    assert parse_circle("32.9525,-115.5527 0") == (32.9525, -115.5527, 0.0)
    assert parse_circle(" 39.96,116.56  5.5 ") == (39.96, 116.56, 5.5)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("39.96,116.56 -5", "negative"),
        ("39.96,116.56", "not 'latitude,longitude radius'"),
        ("91,116.56 5", "latitude 91"),
        ("39.96 116.56 5", "not 'latitude,longitude radius'"),
        ("39.96,116.56 five", "radius 'five'"),
    ],
)
def test_a_circle_against_the_rules_is_refused(text: str, fragment: str) -> None:
    with pytest.raises(GeometryError) as caught:
        parse_circle(text)
    assert fragment in str(caught.value)


def test_coordinates_are_written_without_exponents_and_read_back_exactly() -> None:
    assert format_degrees(0.00001) == "0.00001"
    assert format_degrees(116.0) == "116.0"
    points = [(39.123456789012, 116.00001), (39.2, 116.3), (39.1, 116.4), (39.123456789012, 116.00001)]
    assert parse_polygon(polygon_text(points)) == points
    assert parse_circle(circle_text((39.96, 116.56, 0.25))) == (39.96, 116.56, 0.25)


def test_the_writer_refuses_what_the_reader_would() -> None:
    with pytest.raises(GeometryError, match="not closed"):
        polygon_text([(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)])
    with pytest.raises(GeometryError, match="not a number"):
        polygon_text([(math.nan, 0.0), (0.0, 1.0), (1.0, 1.0), (math.nan, 0.0)])
    with pytest.raises(GeometryError, match="negative"):
        circle_text((39.96, 116.56, -1.0))
