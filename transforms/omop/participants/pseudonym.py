"""Participant pseudonyms: HMAC-SHA256 of USUBJID under a key the warehouse never stores.

Why a keyed hash and not sha256(USUBJID): USUBJIDs are short and structured (study-site-number),
so an unkeyed hash is reversed by enumerating them. Why truncated to 32 hex digits (128 bits):
``person.person_source_value`` is varchar(50) and the FHIR Patient id is at most 64 characters;
one value fits both, and 128 bits keep collisions out of reach for any trial population.
"""
from __future__ import annotations

import hashlib
import hmac

PSEUDONYM_HEX = 32


def pseudonym(usubjid: str, key: bytes) -> str:
    if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
        raise ValueError("pseudonym_key must be bytes, at least 16 of them")
    return hmac.new(bytes(key), usubjid.encode("utf-8"), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]
