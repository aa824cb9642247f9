"""Which registry arm a site's DM.ARM names.

Site data spells arm labels loosely (case, accents, punctuation), so a label is matched by a
normalised key. But the key drops symbols: "Age ≥ 65 years" and "Age < 65 years" are both
"age 65 years", as are "HER2+" and "HER2-", and labels in a non-Latin script are all "".
Matching on such a key put every participant of one arm in the other, with nothing said. So a
key shared by two different labels of a study is *ambiguous*: those labels match only exactly
(after trimming spaces), and a value that names neither exactly names no arm (the site gate holds it).

The same rule is written in SQL for OMOP (``transforms/omop/sql/cohort_definition_stage.sql``,
``transforms/omop/participants/sql/cohort.sql``); ``arm_norm`` is DuckDB's
``trim(regexp_replace(lower(strip_accents(x)), '[^a-z0-9]+', ' ', 'g'))``.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import TypeVar

V = TypeVar("V")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def arm_norm(text) -> str:
    # NFD, not NFKD: DuckDB's strip_accents keeps "²", "Ⅱ" and "ﬁ", which the pattern then drops; NFKD
    # made them "2", "ii" and "fi", a key the SQL never computes.
    decomposed = unicodedata.normalize("NFD", str(text or "").lower())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_ALNUM.sub(" ", plain).strip()


def _trim(text: str) -> str:
    """Spaces only, as DuckDB's trim(): a label's tab is part of its exact text on both sides."""
    return text.strip(" ")


def ambiguous_norms(labels: Iterable[str]) -> set[str]:
    """Keys that cannot name one arm: shared by two different labels, or empty."""
    by_norm: dict[str, set[str]] = {}
    for label in labels:
        if label and _trim(label):
            by_norm.setdefault(arm_norm(label), set()).add(_trim(label))
    return {n for n, ls in by_norm.items() if len(ls) > 1 or not n}


def arm_lookup(pairs: Iterable[tuple[str, V]]) -> dict[str, V]:
    """(registry label, value) -> a lookup for ``find_arm``: every label exactly, and by its key
    unless the key is ambiguous. The first value of a label (or key) wins."""
    pairs = [(_trim(label), value) for label, value in pairs if label and _trim(label)]
    unclear = ambiguous_norms(label for label, _ in pairs)
    out: dict[str, V] = {}
    for label, value in pairs:
        out.setdefault("=" + label, value)
        if arm_norm(label) not in unclear:
            out.setdefault("~" + arm_norm(label), value)
    return out


def find_arm(lookup: dict[str, V], value) -> V | None:
    """The value of the arm ``value`` names: by its exact label first, then by its key."""
    text = _trim(str(value or ""))
    if not text:
        return None
    exact = lookup.get("=" + text)
    return exact if exact is not None else lookup.get("~" + arm_norm(text))
