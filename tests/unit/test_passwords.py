"""Password hashes: every hash the legacy and passlib wrote still verifies; new ones use
the configured cost. The known hashes below were made by their own libraries, not by us:
`$2a$` by bcryptjs 2.4.3 (the legacy's Node code), `$2b$` and `$2y$` by passlib 1.7.4 on
bcrypt 4.0.1 (what this service used before)."""

from __future__ import annotations

import bcrypt
import pytest

from passwords import PasswordHasher, hash_password, verify_password

UMLAUTS = "Str0ng!pässwörd"
LONG = "x" * 72 + "tail-ignored"  # bcrypt reads 72 bytes; both libraries cut the rest
KNOWN = [
    ("password123", "$2a$10$ziiKVyRe9qNUatrACMFrCOlOxXIdQRtnwzqhRKBk6qrfNDTJ9Y6j."),
    (UMLAUTS, "$2a$04$NnBVfcu7Ugz3538oHXy5qeDrHqKf1q5Ldogpnj7ISyavr5ULtg.YO"),
    (LONG, "$2a$04$5kpvflk3vQTWZ6j1nrTpi.0d94HBMNAAMdoUnBwgXPTS5v04rP1B."),
    ("password123", "$2b$04$BPJcjy7Hn.OSGynH9IEiSuoVU8sgpCygRtZ/vJ7R2qwhuXNGh/xVq"),
    (UMLAUTS, "$2b$04$LKoElEjxSqgk3IrZsQjZ4eUBKMhLvGTWktL1ifbgmKwa1DkR467EW"),
    (LONG, "$2b$04$u5sVMyuoVxmwS6wDqQYBo.PNO2UW9wDO9QYfNiQAazxrOP6siSM.a"),
    ("password123", "$2y$04$7zBOCthGmhX6nazCB3Fuoe2wPTiKx59X1WRJUazi7JydeSna.zf.m"),
    (UMLAUTS, "$2y$04$EBYzflqMfalrdKQFfjJqs.C1xhL8PLcPlSS4qdNkJJoHpX/YkRNuy"),
    (LONG, "$2y$04$zN09nqvxzJHmQ/ANpgHL2eeauWgVPxxYBuHloCVq77XeUXJVrciBG"),
]


@pytest.mark.parametrize("password, stored", KNOWN)
def test_existing_hashes_of_every_prefix_verify(password, stored):
    assert verify_password(password, stored)


@pytest.mark.parametrize("password, stored", KNOWN)
def test_existing_hashes_refuse_a_wrong_password(password, stored):
    assert not verify_password(password[0].swapcase() + password[1:], stored)


@pytest.mark.parametrize("stored", ["not-bcrypt", "", "$2b$04$short", "$2b$04$" + "é" * 53])
def test_malformed_stored_hash_is_a_failed_check_not_an_error(stored):
    assert verify_password("password123", stored) is False


@pytest.mark.parametrize("rounds", [4, 5])
def test_new_hashes_are_2b_at_the_configured_cost(rounds):
    stored = hash_password(UMLAUTS, rounds)
    assert stored.startswith(f"$2b${rounds:02d}$")
    assert bcrypt.checkpw(UMLAUTS.encode(), stored.encode())
    assert verify_password(UMLAUTS, stored) and not verify_password("password123", stored)


def test_passwords_longer_than_72_bytes_are_cut_like_before():
    stored = hash_password(LONG, 4)
    assert verify_password("x" * 72, stored)
    assert verify_password("x" * 72 + "anything", stored)


async def test_hasher_pool_uses_the_configured_cost_and_verifies():
    hasher = PasswordHasher(rounds=5, concurrency=1)
    try:
        stored = await hasher.hash(UMLAUTS)
        assert stored.startswith("$2b$05$")
        assert await hasher.verify(UMLAUTS, stored)
        assert not await hasher.verify("wrong", stored)
        assert not await hasher.verify(UMLAUTS, None)  # unknown user: the dummy hash
        assert await hasher.verify("password123", KNOWN[0][1])  # bcryptjs' $2a$
    finally:
        await hasher.close()
