"""Rules decided once for the second outside probe (issue 24), checked without a stack."""

from __future__ import annotations

import json

import pytest
from fastapi.routing import APIRoute

from edge import JsonRoute, parse_json_body
from main import create_app
from scripts.terminal import json_line, shown
from tests.unit.helpers import unit_settings


def included_routes(app) -> list[APIRoute]:
    routes = []
    for entry in app.routes:
        router = getattr(entry, "original_router", None)
        if router is not None:
            assert router.route_class is JsonRoute, router.prefix
            routes += [r for r in router.routes if isinstance(r, APIRoute)]
    return routes


def test_every_api_route_reads_json_bodies_the_one_way():
    """A router added later without route_class=JsonRoute would read amounts as floats and
    give pydantic's wording for a body without Content-Type."""
    routes = included_routes(create_app(unit_settings()))
    assert len(routes) >= 15
    assert all(isinstance(route, JsonRoute) for route in routes)


def test_json_numbers_are_read_exactly():
    body = parse_json_body(b'{"a": 99.999999999999999999, "b": 1e0, "c": 7}')
    assert str(body["a"]) == "99.999999999999999999" and str(body["b"]) == "1"
    assert body["c"] == 7 and isinstance(body["c"], int)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ok\n2026 forged\x1b[1A\x1b[2K\rX", "ok\\n2026 forged\\x1b[1A\\x1b[2K\\rX"),
        ("evil\x1b]0;pwned\x07@e.co", "evil\\x1b]0;pwned\\x07@e.co"),
        ("\x7f\x85\x9b", "\\x7f\\x85\\x9b"),
        (
            "abc\u202egnp.exe\u2066\u2028\u2029\u200e\u061c",
            "abc\\u202egnp.exe\\u2066\\u2028\\u2029\\u200e\\u061c",
        ),
        ("a\\x1b", "a\\\\x1b"),  # a typed backslash cannot pass for an escape
        ("Rashmi अमोल é", "Rashmi अमोल é"),
        (None, "-"),
        (42, "42"),
    ],
)
def test_shown_escapes_every_control_character(value, expected):
    assert shown(value) == expected


def test_json_line_escapes_what_json_lets_through_and_stays_json():
    value = {"d": "x\x1b\x85\u2028\u202e é"}
    line = json_line(value)
    assert line.isprintable() and json.loads(line) == value and "é" in line


def test_contract_diff_and_shadow_reports_escape_control_characters():
    from jsondiff import short

    text = short({"description": "x\x1b]0;t\x07\x85\u202e é"})
    assert text.isprintable() and json.loads(text) == {"description": "x\x1b]0;t\x07\x85\u202e é"}
