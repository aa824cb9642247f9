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
