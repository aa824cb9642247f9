"""The FHIR export rewritten part by part: after any change, the same files a whole export writes."""

from __future__ import annotations

import json
import os

import duckdb
import pytest

from transforms.fhir import export
from transforms.fhir.export import PART_SQL, export_ndjson, export_parts, is_shared
from transforms.fhir.store import create_fhir_schema, write_resources


@pytest.fixture
def con(top_level_resources):
    con = duckdb.connect()
    create_fhir_schema(con, "fhir")
    write_resources(con, "fhir", top_level_resources)
    yield con
    con.close()


def files(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "fhir").glob("*/*.ndjson"))}


def parts_of(con, where: str, params: list) -> set[tuple[str, str]]:
    # where: a fixed predicate written in this test; values are bound parameters
    return set(con.execute(f"SELECT DISTINCT resource_type, {PART_SQL} FROM fhir.resource WHERE {where}", params).fetchall())


def test_rewriting_touched_parts_gives_the_whole_export(con, tmp_path):
    inc, full = tmp_path / "inc", tmp_path / "full"
    export_ndjson(con, "fhir", inc, transaction_time="t0")
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (inc / "fhir").glob("*/*.ndjson")}
    studies = [r[0] for r in con.execute("SELECT DISTINCT nct_id FROM fhir.resource WHERE nct_id IS NOT NULL ORDER BY 1").fetchall()]
    gone, amended = studies[0], studies[-1]
    touched = parts_of(con, "nct_id IN (?, ?)", [gone, amended])
    renamed = "resource_type = 'Organization' AND id = (SELECT min(id) FROM fhir.resource WHERE resource_type = 'Organization')"
    touched |= parts_of(con, renamed, [])
    assert all(is_shared(part) for rtype, part in touched if rtype == "Organization")
    # one study withdrawn whole, one retitled, one shared organisation renamed
    con.execute("DELETE FROM fhir.resource WHERE nct_id = ?", [gone])
    con.execute("UPDATE fhir.resource SET resource = json_merge_patch(resource, '{\"title\": \"amended\"}') "
                "WHERE nct_id = ? AND resource_type = 'ResearchStudy'", [amended])
    con.execute("UPDATE fhir.resource SET resource = json_merge_patch(resource, '{\"name\": \"renamed\"}') "
                f"WHERE {renamed}")

    manifest = export_parts(con, "fhir", inc, touched, transaction_time="t1")

    assert manifest == export_ndjson(con, "fhir", full, transaction_time="t1")
    assert files(inc) == files(full)
    assert json.loads((inc / "fhir" / "manifest.json").read_text()) == manifest
    untouched = [p for p in stamps if p.exists() and (p.parent.name, p.stem) not in touched]
    assert untouched and all((p.stat().st_ino, p.stat().st_mtime_ns) == stamps[p] for p in untouched)
    assert not list((inc / "fhir").glob("*/.*.tmp"))


def test_a_part_left_empty_is_removed_from_disk_and_manifest(con, tmp_path):
    export_ndjson(con, "fhir", tmp_path)
    seed_part = parts_of(con, "nct_id = ?", ["NCT06668571"])
    only_seed = {p for p in seed_part
                 if con.execute(f"SELECT count(DISTINCT nct_id) FROM fhir.resource WHERE resource_type = ? AND {PART_SQL} = ?",
                                list(p)).fetchone()[0] == 1}
    assert only_seed  # the seed is alone in its id range
    con.execute("DELETE FROM fhir.resource WHERE nct_id = ?", ["NCT06668571"])
    manifest = export_parts(con, "fhir", tmp_path, seed_part)
    urls = {o["url"] for o in manifest["output"]}
    for rtype, part in only_seed:
        assert f"{rtype}/{part}.ndjson" not in urls and not (tmp_path / "fhir" / rtype / f"{part}.ndjson").exists()


@pytest.mark.parametrize("damage", ["no manifest", "earlier layout", "one shared file", "a listed file missing"])
def test_without_a_usable_manifest_everything_is_written(con, tmp_path, damage):
    export_ndjson(con, "fhir", tmp_path / "ref", transaction_time="t")
    target = tmp_path / "out" / "fhir"
    export_ndjson(con, "fhir", tmp_path / "out", transaction_time="t")
    if damage == "no manifest":
        os.unlink(target / "manifest.json")
    elif damage == "earlier layout":  # one file per type, as exports were written before parts
        (target / "manifest.json").write_text(json.dumps({"output": [{"type": "Group", "url": "Group.ndjson", "count": 1}]}))
        (target / "Group.ndjson").write_text("{}\n")
    elif damage == "one shared file":  # every Organization in one file, as before shared buckets
        manifest = json.loads((target / "manifest.json").read_text())
        manifest["output"].append({"type": "Organization", "url": "Organization/shared.ndjson", "count": 1})
        (target / "manifest.json").write_text(json.dumps(manifest))
        (target / "Organization" / "shared.ndjson").write_text("{}\n")
    else:
        next((target / "ResearchStudy").glob("*.ndjson")).unlink()
    manifest = export_parts(con, "fhir", tmp_path / "out", set(), transaction_time="t")
    assert manifest == json.loads((tmp_path / "ref" / "fhir" / "manifest.json").read_text())
    assert files(tmp_path / "out") == files(tmp_path / "ref")
    assert not (target / "Group.ndjson").exists() and not (target / "Organization" / "shared.ndjson").exists()


def test_a_whole_export_in_small_batches_writes_the_same_files(con, tmp_path, monkeypatch):
    one = export_ndjson(con, "fhir", tmp_path / "one", transaction_time="t")
    monkeypatch.setattr(export, "BATCH_ROWS", 7)  # many queries of a few parts each
    batched = export_ndjson(con, "fhir", tmp_path / "batched", transaction_time="t")
    assert batched == one and len(one["output"]) > 20
    assert files(tmp_path / "batched") == files(tmp_path / "one")
    assert not list((tmp_path / "batched" / "fhir").glob("*/.*.tmp"))


class _Logged:
    """A connection that records the statements it runs."""

    def __init__(self, con):
        self.con, self.sql = con, []

    def execute(self, sql, params=None):
        self.sql.append(sql)
        return self.con.execute(sql, params) if params is not None else self.con.execute(sql)


def test_touched_parts_are_written_in_batches_not_a_query_each(con, tmp_path):
    """A day of 1,000 changed studies touched 892 of 909 parts at 100,000 studies, and a query per part
    took 6.5 s where a whole export takes 4.3: a type's touched shared buckets are one query, and owned
    parts one per run of touched parts (a batch reads its whole NCT id range, so not across an
    untouched part)."""
    inc, full = tmp_path / "inc", tmp_path / "full"
    export_ndjson(con, "fhir", inc, transaction_time="t0")
    shared = parts_of(con, "nct_id IS NULL", [])
    owned = sorted(parts_of(con, "nct_id IS NOT NULL AND resource_type = 'ResearchStudy'", []))
    assert len({t for t, _ in shared}) >= 2 and len(shared) > 10 and len(owned) >= 6
    picked = sorted(set(range(0, len(owned), 2)) | {len(owned) - 2, len(owned) - 1})  # gaps, then two adjacent
    log = _Logged(con)
    manifest = export_parts(log, "fhir", inc, shared | {owned[i] for i in picked}, transaction_time="t1")
    assert manifest == export_ndjson(con, "fhir", full, transaction_time="t1") and files(inc) == files(full)
    writes = [q for q in log.sql if "CAST(resource AS VARCHAR)" in q]
    runs = 1 + sum(1 for a, b in zip(picked, picked[1:]) if b != a + 1)
    assert runs < len(picked) and len(writes) == len({t for t, _ in shared}) + runs
