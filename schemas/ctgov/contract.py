"""The registry data contract: the API v2 field tree (studies_metadata.json, from
GET /api/v2/studies/metadata) and the enum values (enums.json)."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def enums() -> dict[str, list[str]]:
    data = json.loads((HERE / "enums.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


@lru_cache(maxsize=None)
def metadata() -> list[dict]:
    return json.loads((HERE / "studies_metadata.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def known_sections() -> frozenset[str]:
    """Top-level sections and protocol modules the API documents; anything else is schema drift."""
    names = {"hasResults"}
    for section in metadata():
        names.add(section["name"])
        if section["name"] == "protocolSection":
            names |= {f"protocolSection.{m['name']}" for m in section.get("children", [])}
    return frozenset(names)


@lru_cache(maxsize=None)
def enum_type_of(dotted_path: str) -> str | None:
    """The enum type the metadata names for a field path (None when it is not an enum)."""
    def walk(nodes, prefix):
        for n in nodes:
            p = f"{prefix}.{n['name']}" if prefix else n["name"]
            if p == dotted_path:
                return n.get("type", "").rstrip("[]") if n.get("isEnum") else None
            if dotted_path.startswith(p + ".") and n.get("children"):
                return walk(n["children"], p)
        return None

    return walk(metadata(), "")


# The JSON type of each leaf, by the type name the metadata gives it; every other leaf (text, markup,
# dates, durations, enums) is a string.
_LEAF_TYPES = {"boolean": "boolean", "integer": "integer", "long": "integer", "number": "number"}


@lru_cache(maxsize=None)
def record_schema() -> dict:
    """A JSON schema of a study record, written from the metadata's field tree: each field's JSON type
    (object, array, string, number, integer, boolean), null allowed everywhere (the API leaves a field
    out rather than null it, and the mappers read null as absent). Fields the tree does not name are
    not refused here (unknown sections and modules are `no_unknown_sections`' question).

    Why: the mappers read a field as the type the API gives it, so a record giving another passed the
    gate and was published mangled (`conditions: "Depression"` became ten one-letter FHIR conditions,
    `healthyVolunteers: "no"` vanished from FHIR and read "no" in OMOP), found by a fuzzing review."""

    def node(n: dict) -> dict:
        declared = n.get("type", "")
        base = declared.removesuffix("[]")
        if n.get("children"):
            item = {"type": ["object", "null"], "properties": {c["name"]: node(c) for c in n["children"]}}
        elif base == "GeoPoint":  # computed by the API from the site's address: {lat, lon}
            item = {"type": ["object", "null"],
                    "properties": {"lat": {"type": ["number", "null"]}, "lon": {"type": ["number", "null"]}}}
        else:
            item = {"type": [_LEAF_TYPES.get(base, "string"), "null"]}
        return {"type": ["array", "null"], "items": item} if declared.endswith("[]") else item

    return {"type": "object", "properties": {n["name"]: node(n) for n in metadata()}}
