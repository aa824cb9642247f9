"""Real ClinicalTrials.gov API v2 records from tests/data/ctgov (the FHIR tests' corpus)."""

from __future__ import annotations

import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "data" / "ctgov"
LAST_UPDATED = "2025-10-14T00:00:00Z"


def _load() -> list[tuple[str, dict]]:
    out = [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(DATA.glob("NCT*.json"))]
    out += [(f"versions/{p.name}", json.loads(p.read_text(encoding="utf-8")))
            for p in sorted((DATA / "versions").glob("*.json"))]
    for page in sorted((DATA / "pages").glob("*.json")):
        for i, study in enumerate(json.loads(page.read_text(encoding="utf-8")).get("studies", [])):
            out.append((f"pages/{page.name}[{i}]", study))
    return out


ALL_RECORDS = _load()
TOP_LEVEL = [(n, r) for n, r in ALL_RECORDS if n.startswith("NCT")]


def by_type(resources: list[dict], resource_type: str) -> list[dict]:
    return [r for r in resources if r["resourceType"] == resource_type]
