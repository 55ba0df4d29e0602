"""The pure rules behind issue 15's fixes: canonical login names, the client address behind
trusted proxies, canonical token encodings and the generated SQL folding table."""

from __future__ import annotations

import importlib.util

import pytest

from auth import is_canonical
from ratelimit import canonical_login, login_account_key
from tests.helpers import ROOT


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("ATUL", "atul"),
        ("Atul@Example.COM", "atul@example.com"),
        ("\uff21\uff34\uff35\uff2c", "atul"),  # fullwidth letters (NFKC)
        ("Stra\u00dfe", "strasse"),
        ("\u1e9e", "ss"),  # sharp s folds to ss
        ("\u0130", "i\u0307"),  # İ: i + combining dot, as Python folds it
        ("\u212a", "k"),  # Kelvin sign
        ("\ufb01le", "file"),  # ligature
        ("\u03a3\u03c2", "\u03c3\u03c3"),  # final sigma folds like sigma
    ],
)
def test_canonical_login_is_nfkc_casefold_nfkc(typed, canonical):
    assert canonical_login(typed) == canonical


def test_login_key_is_the_account_when_one_resolves():
    assert login_account_key(3, "ATUL@example.com") == login_account_key(3, "atul") == "user:3"
    fullwidth_ghost = "\uff47\uff48\uff4f\uff53\uff54"
    assert login_account_key(None, "Ghost") == login_account_key(None, fullwidth_ghost)
    assert login_account_key(None, "ghost") != login_account_key(None, "ghost2")


def scope(*forwarded: str, peer: str = "10.0.0.9") -> dict:
    return {
        "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded],
        "client": (peer, 1234),
    }


@pytest.mark.parametrize(
    ("headers", "hops", "client"),
    [
        (("203.0.113.7",), 1, "203.0.113.7"),
        (("spoof, 203.0.113.7",), 1, "203.0.113.7"),
        (("1.1.1.1, 2.2.2.2, 203.0.113.7",), 1, "203.0.113.7"),
        (("spoof, 203.0.113.7, 10.0.0.2",), 2, "203.0.113.7"),
        (("spoof", "203.0.113.7, 10.0.0.2"), 2, "203.0.113.7"),  # two header lines, in order
        (("2001:db8::1",), 1, "2001:db8::1"),
        (("LIMITER/login/not-an-ip/with/slashes",), 1, None),
        (("203.0.113.7, not-an-ip",), 1, None),
        (("203.0.113.7:443",), 1, None),
        (("203.0.113.7",), 2, None),  # fewer entries than hops
        ((), 1, None),
    ],
)
def test_forwarded_client_takes_the_entry_the_trusted_hops_appended(headers, hops, client):
    from edge import forwarded_client

    found = forwarded_client(scope(*headers), hops)
    assert (found[0] if found else None) == client


@pytest.mark.parametrize(
    ("token", "ok"),
    [
        ("eyJh.eyJ1.c2ln", True),
        ("eyJh.eyJ1.c2k", True),
        ("eyJh.eyJ1.c2l", False),  # 'l' decodes to the same bytes as 'k': not canonical
        ("eyJh.eyJ1.c2k=", False),  # padding
        ("eyJh.eyJ1", False),
        ("eyJh.eyJ1.c2ln.x", False),
        ("eyJh.eyJ1.c2!n", False),
        ("eyJh.eyJ1.c", False),  # a length no base64 has
        ("eyJh..c2ln", False),
    ],
)
def test_token_must_be_canonical_base64url(token, ok):
    assert is_canonical(token) is ok


def test_generated_sql_folding_table_is_up_to_date():
    path = ROOT / "scripts" / "gen_login_canonical.py"
    spec = importlib.util.spec_from_file_location("gen", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.TARGET.read_text(encoding="utf-8") == gen.render(), (
        "run scripts/gen_login_canonical.py"
    )
