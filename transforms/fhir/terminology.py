"""R5 value sets from the terminology bundle shipped in `schemas/fhir/`.

Mapping takes code displays from here and validation takes value-set membership from here,
so a code is only ever emitted and accepted on the authority of one copy of the R5 terminology.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

SCHEMA_DIR = Path(str(files("schemas") / "fhir"))
BUNDLE_PATH = SCHEMA_DIR / "R5-ResearchStudy-terminology-bundle.json"

# publication-status is bound (required) by every canonical resource's `status` but is not in
# the ResearchStudy bundle; its four codes are fixed by the R5 specification.
PUBLICATION_STATUS = frozenset({"draft", "active", "retired", "unknown"})


def _walk(concepts: list[dict], out: dict[str, str | None]) -> None:
    for c in concepts:
        out[c["code"]] = c.get("display")
        _walk(c.get("concept", []), out)


@lru_cache(maxsize=1)
def _load() -> tuple[dict[str, dict[str, str | None]], dict[str, frozenset[tuple[str, str]]]]:
    bundle = json.loads(BUNDLE_PATH.read_text(encoding="utf-8"))
    systems: dict[str, dict[str, str | None]] = {}
    value_sets: dict[str, dict] = {}
    for entry in bundle["entry"]:
        res = entry["resource"]
        if res["resourceType"] == "CodeSystem":
            codes: dict[str, str | None] = {}
            _walk(res.get("concept", []), codes)
            systems[res["url"]] = codes
        elif res["resourceType"] == "ValueSet":
            value_sets[res["url"]] = res
    expansions: dict[str, frozenset[tuple[str, str]]] = {}
    for url, vs in value_sets.items():
        members: set[tuple[str, str]] = set()
        for inc in vs.get("compose", {}).get("include", []):
            system = inc.get("system")
            if inc.get("concept"):
                members.update((system, c["code"]) for c in inc["concept"])
            elif system in systems:  # whole code system included
                members.update((system, code) for code in systems[system])
            else:
                raise ValueError(f"value set {url} includes {system}, which the bundle does not define")
        for exc in vs.get("compose", {}).get("exclude", []):
            members.difference_update((exc.get("system"), c["code"]) for c in exc.get("concept", []))
        expansions[url] = frozenset(members)
    return systems, expansions


def display(system: str, code: str) -> str | None:
    return _load()[0].get(system, {}).get(code)


def expansion(value_set_url: str) -> frozenset[tuple[str, str]] | None:
    """(system, code) pairs of a value set; the canonical may carry a `|version` suffix."""
    return _load()[1].get(value_set_url.split("|", 1)[0])
