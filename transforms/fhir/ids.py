"""Deterministic FHIR resource ids.

Loading the same study twice must upsert the same rows, and an organisation named by many
studies must collapse to one resource, so ids derive from natural keys (NCT id, normalised
names) and never from run order. All ids match the FHIR id pattern `[A-Za-z0-9\\-\\.]{1,64}`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

_NON_WORD = re.compile(r"[\W_]+")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=65536)
def normalise(text: str) -> str:
    """Case-, accent- and punctuation-insensitive key, so spelling noise does not split one entity.

    Cached: the same city, country and sponsor names recur across thousands of sites and studies.
    """
    if not text.isascii():
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_WORD.sub(" ", text.casefold()).strip()


def digest(*parts: str, length: int = 16) -> str:
    """Short stable hash; sha1 is used for spread, not security."""
    joined = "\x1f".join(parts)
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()[:length]


def slug(text: str, max_len: int = 40) -> str:
    return _NON_ALNUM.sub("-", normalise(text)).strip("-")[:max_len].strip("-")


def study_id(nct_id: str) -> str:
    return nct_id.lower()


@lru_cache(maxsize=32768)
def organization_id(name: str) -> str:
    return "org-" + digest(normalise(name) or name)


@lru_cache(maxsize=32768)
def location_id(facility: str, city: str, state: str, zip_code: str, country: str) -> str:
    """Cached as a whole: sites repeat across studies, and five cached normalisations and a hash
    each time were a twentieth of a mapping worker's time."""
    return "loc-" + digest(*(normalise(p) for p in (facility, city, state, zip_code, country)))


def person_key(name: str) -> str:
    """Registry names carry degrees after a comma ('Jane Doe, MD, PhD'); the person is the part before."""
    return normalise(name.split(",", 1)[0]) or normalise(name) or name


class IdAllocator:
    """Hands out ids unique within one study, suffixing repeats, so duplicated registry entries
    (the same facility listed twice) still give distinct resources in a stable order."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def take(self, base: str) -> str:
        n = self._seen.get(base, 0) + 1
        self._seen[base] = n
        return base if n == 1 else f"{base}-{n}"
