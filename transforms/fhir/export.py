"""FHIR bulk-data style NDJSON export of one schema's resources.

Layout follows the FHIR Bulk Data `$export` output: one NDJSON file per resource type and a
manifest listing them, so bulk-data clients and loaders can read the export as if a server had
produced it. Rows are streamed in batches, so memory stays flat for the full registry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from .store import checked_schema

_SELECT = 'SELECT resource_type, CAST(resource AS VARCHAR) FROM "{schema}".resource ORDER BY resource_type, id'
_BATCH = 10_000


def export_ndjson(con, schema: str, out_dir: Path, *, transaction_time: str | None = None) -> dict:
    """Write <out_dir>/fhir/<ResourceType>.ndjson and <out_dir>/fhir/manifest.json; return the manifest."""
    sql_schema = checked_schema(schema)
    target = Path(out_dir) / "fhir"
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.ndjson"):  # a type that vanished must not linger from a former export
        old.unlink()
    tx_time = transaction_time or datetime.now(UTC).isoformat(timespec="seconds")
    counts: dict[str, int] = {}
    handle, current = None, None
    cur = con.execute(_SELECT.format(schema=sql_schema))
    try:
        while rows := cur.fetchmany(_BATCH):
            for rtype, text in rows:
                if rtype != current:
                    if handle:
                        handle.close()
                    handle = (target / f"{rtype}.ndjson").open("w", encoding="utf-8", newline="\n")
                    current = rtype
                    counts[rtype] = 0
                handle.write(text)
                handle.write("\n")
                counts[rtype] += 1
    finally:
        if handle:
            handle.close()
    manifest = {
        "transactionTime": tx_time,
        "request": f"trialhouse:export_ndjson?schema={sql_schema}",
        "requiresAccessToken": False,
        "output": [{"type": t, "url": f"{t}.ndjson", "count": n} for t, n in counts.items()],
        "error": [],
    }
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
