"""Studies per second of the FHIR mapping + validation, baseline vs fast path, on one core.

Baseline: map, then fhir.resources `model_validate` + `model_dump_json` per resource (the
obvious way). Fast path: map, then `validate_resource(mode="fast")` (the R5 JSON schema with the
structure rules, codes and bindings written into it, compiled by jsonschema-rs; the rule walker only
for what it rejects) and `json.dumps`. Both run in this process over
every real record in tests/data/ctgov (single files, API pages, older versions).

    uv run python benchmarks/fhir_mapping.py [--rounds N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

from fhir.resources import get_fhir_model_class

from transforms.fhir import map_study
from transforms.fhir.validate import validate_resource

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "ctgov"


def load_records() -> list[dict]:
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(DATA.glob("NCT*.json"))]
    records += [json.loads(p.read_text(encoding="utf-8")) for p in sorted((DATA / "versions").glob("*.json"))]
    for page in sorted((DATA / "pages").glob("*.json")):
        records += json.loads(page.read_text(encoding="utf-8")).get("studies", [])
    return records


def baseline(record: dict) -> int:
    size = 0
    for res in map_study(record, last_updated="2025-01-01T00:00:00Z"):
        size += len(get_fhir_model_class(res["resourceType"]).model_validate(res).model_dump_json())
    return size


def fast(record: dict) -> int:
    size = 0
    for res in map_study(record, last_updated="2025-01-01T00:00:00Z"):
        problems = validate_resource(res)
        if problems:
            raise AssertionError(problems)
        size += len(json.dumps(res, ensure_ascii=False, separators=(",", ":")))
    return size


def rate(fn, records: list[dict], rounds: int) -> float:
    for r in records:  # one untimed pass: compiled schemas, model rule tables, name caches
        fn(r)
    gc.collect()
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for r in records:
            fn(r)
        best = max(best, len(records) / (time.perf_counter() - start))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed passes per method; the best counts")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):  # one core, as the per-core figure claims
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    records = load_records()
    n_resources = sum(len(map_study(r)) for r in records)
    print(f"{len(records)} studies, {n_resources} resources, best of {args.rounds} rounds, one core")
    base = rate(baseline, records, args.rounds)
    per = n_resources / len(records)
    print(f"baseline  (fhir.resources validate + model_dump_json):       {base:8.1f} studies/s "
          f"({base * per:,.0f} resources/s)")
    quick = rate(fast, records, args.rounds)
    print(f"fast path (jsonschema-rs with the rules schema, json.dumps): {quick:8.1f} studies/s "
          f"({quick * per:,.0f} resources/s)")
    print(f"ratio fast/baseline: {quick / base:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
