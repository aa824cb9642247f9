"""The FHIR export rewritten part by part: after any change, the same files a whole export writes."""

from __future__ import annotations

import json
import os

import duckdb
import pytest

from tests.conftest import Counting
from transforms.fhir import export
from transforms.fhir.export import PART_SQL, PREFIX, export_ndjson, export_parts, is_shared
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


def unseen(path, data: bytes) -> None:
    """Write a part as an edit the export's stamps cannot tell (STAMPS updated to the new size and time):
    what is left to catch it is the splice's own check."""
    path.write_bytes(data)
    stamps_file = path.parents[1] / export.STAMPS
    stamps = json.loads(stamps_file.read_text())
    st = path.stat()
    stamps["parts"][path.relative_to(path.parents[1]).as_posix()] = [st.st_size, st.st_mtime_ns]
    stamps_file.write_text(json.dumps(stamps))


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


@pytest.mark.parametrize("damage", ["no manifest", "earlier layout", "one shared file", "a listed file missing",
                                    "a count edited", "no stamps"])
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
    elif damage == "a count edited":  # carried into every later manifest if built on
        manifest = json.loads((target / "manifest.json").read_text())
        manifest["output"][0]["count"] += 1
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    elif damage == "no stamps":  # written before the export kept them, or deleted
        (target / export.STAMPS).unlink()
    else:
        next((target / "ResearchStudy").glob("*.ndjson")).unlink()
    assert export.read_manifest(target) is None
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
    log = Counting(con)
    manifest = export_parts(log, "fhir", inc, shared | {owned[i] for i in picked}, transaction_time="t1")
    assert manifest == export_ndjson(con, "fhir", full, transaction_time="t1") and files(inc) == files(full)
    writes = [q for q in log.statements if "CAST(resource AS VARCHAR)" in q]
    runs = 1 + sum(1 for a, b in zip(picked, picked[1:]) if b != a + 1)
    assert runs < len(picked) and len(writes) == len({t for t, _ in shared}) + runs


def _day(con) -> tuple[set[tuple[str, str]], set[str]]:
    """A day's changes to the loaded studies, as a publish makes them; returns the parts and studies touched.

    One study withdrawn whole, one retitled, one that gained a Practitioner and one that lost all of
    its Groups, and a shared Organization renamed."""
    studies = [r[0] for r in con.execute("SELECT DISTINCT nct_id FROM fhir.resource WHERE nct_id IS NOT NULL ORDER BY 1").fetchall()]
    gone, amended = studies[0], studies[-1]
    grown = con.execute("SELECT min(nct_id) FROM fhir.resource WHERE resource_type = 'Practitioner' AND nct_id NOT IN (?, ?)",
                        [gone, amended]).fetchone()[0]
    shrunk = con.execute("SELECT max(nct_id) FROM fhir.resource WHERE resource_type = 'Group' AND nct_id NOT IN (?, ?, ?)",
                         [gone, amended, grown]).fetchone()[0]
    changed = {gone, amended, grown, shrunk}
    assert len(changed) == 4
    touched = parts_of(con, "nct_id IN (SELECT unnest(?::VARCHAR[]))", [sorted(changed)])
    renamed = "resource_type = 'Organization' AND id = (SELECT min(id) FROM fhir.resource WHERE resource_type = 'Organization')"
    touched |= parts_of(con, renamed, [])
    con.execute("DELETE FROM fhir.resource WHERE nct_id = ?", [gone])
    con.execute("UPDATE fhir.resource SET resource = json_merge_patch(resource, '{\"title\": \"amended\"}') "
                "WHERE nct_id = ? AND resource_type = 'ResearchStudy'", [amended])
    con.execute(f"UPDATE fhir.resource SET resource = json_merge_patch(resource, '{{\"name\": \"renamed\"}}') WHERE {renamed}")
    con.execute("DELETE FROM fhir.resource WHERE nct_id = ? AND resource_type = 'Group'", [shrunk])
    rtype, rid, version, updated, nct, text = con.execute(
        "SELECT resource_type, id, version_id, last_updated, nct_id, CAST(resource AS VARCHAR) FROM fhir.resource "
        "WHERE nct_id = ? AND resource_type = 'Practitioner' ORDER BY id LIMIT 1", [grown]).fetchone()
    new = json.loads(text)
    new["id"] = rid + "0"  # sorts right after its sibling, inside the study's run of lines
    con.execute("INSERT INTO fhir.resource VALUES (?, ?, ?, ?, ?, ?)", [rtype, new["id"], version, updated, nct, json.dumps(new)])
    return touched, changed


def test_splicing_the_touched_studies_gives_the_whole_export(con, tmp_path):
    inc, full = tmp_path / "inc", tmp_path / "full"
    export_ndjson(con, "fhir", inc, transaction_time="t0")
    before = files(inc)
    touched, studies = _day(con)
    owned = {k for k in touched if not is_shared(k[1])}
    assert {t for t, _ in owned} >= {"ResearchStudy", "Group", "Practitioner"}

    log, stats = Counting(con), {}
    manifest = export_parts(log, "fhir", inc, touched, studies=studies, stats=stats, transaction_time="t1")

    assert manifest == export_ndjson(con, "fhir", full, transaction_time="t1")
    assert files(inc) == files(full) and files(inc) != before
    assert stats == {"spliced": len(owned), "edited": 0}
    # the owned parts were spliced from the touched studies' rows, not read again from the table
    assert not [q for q in log.statements if "ORDER BY 1, id" in q and "nct_id >= ?" in q]
    assert len([q for q in log.statements if "nct_id = ANY" in q]) == 1
    assert not list((inc / "fhir").glob("*/.*.tmp"))


def test_splicing_on_threads_gives_the_same_files(con, tmp_path, monkeypatch):
    """Files are spliced on threads while the next chunk's rows are read: a study per chunk here, so
    every chunk overlaps the one before, and a damaged part on a thread still falls back to the table."""
    import threading

    inc, full = tmp_path / "inc", tmp_path / "full"
    export_ndjson(con, "fhir", inc, transaction_time="t0")
    touched, studies = _day(con)
    owned = sorted(k for k in touched if not is_shared(k[1]))
    damaged = inc / "fhir" / owned[0][0] / f"{owned[0][1]}.ndjson"
    unseen(damaged, damaged.read_bytes() + b"not json\n")
    monkeypatch.setattr(export, "SPLICE_STUDIES", 1)
    on = set()
    splice = export._splice_file

    def traced(*args):
        on.add(threading.current_thread().name.split("_")[0])
        return splice(*args)

    monkeypatch.setattr(export, "_splice_file", traced)
    log, stats = Counting(con), {}
    manifest = export_parts(log, "fhir", inc, touched, studies=studies, stats=stats, transaction_time="t1", threads=2)

    assert manifest == export_ndjson(con, "fhir", full, transaction_time="t1")
    assert files(inc) == files(full)
    assert stats == {"spliced": len(owned) - 1, "edited": 0}
    assert on == {"splice"}
    assert len([q for q in log.statements if "nct_id = ANY" in q]) == len({p for _, p in owned})  # a chunk per part here
    assert not list((inc / "fhir").glob("*/.*.tmp"))


def test_a_splice_failing_on_a_thread_fails_the_export_and_leaves_the_manifest(con, tmp_path, monkeypatch):
    """The publish keeps its parts pending and splices them again on the next run (see export_pending)."""
    inc = tmp_path / "inc"
    before = export_ndjson(con, "fhir", inc, transaction_time="t0")
    touched, studies = _day(con)
    monkeypatch.setattr(export, "SPLICE_STUDIES", 1)
    splice, failing = export._splice_file, sorted(k for k in touched if not is_shared(k[1]))[-1]

    def fail_one(path, *args):
        if path.name == f"{failing[1]}.ndjson" and path.parent.name == failing[0]:
            raise OSError(28, "No space left on device", str(path))
        return splice(path, *args)

    monkeypatch.setattr(export, "_splice_file", fail_one)
    with pytest.raises(OSError, match="No space left"):
        export_parts(con, "fhir", inc, touched, studies=studies, transaction_time="t1", threads=2)
    assert json.loads((inc / "fhir" / "manifest.json").read_text()) == before
    assert not list((inc / "fhir").glob("*/.*.tmp"))
    monkeypatch.setattr(export, "_splice_file", splice)
    export_parts(con, "fhir", inc, touched, studies=studies, transaction_time="t1", threads=2)
    assert files(inc) == files(_whole(con, tmp_path / "full"))


def test_splicing_again_changes_nothing(con, tmp_path):
    """A run that died after some parts were spliced splices them again on the next run: the result
    depends only on the table and the untouched lines."""
    inc, full = tmp_path / "inc", tmp_path / "full"
    export_ndjson(con, "fhir", inc, transaction_time="t0")
    touched, studies = _day(con)
    export_parts(con, "fhir", inc, touched, studies=studies, transaction_time="t1")
    export_parts(con, "fhir", inc, touched, studies=studies, transaction_time="t1")
    export_ndjson(con, "fhir", full, transaction_time="t1")
    assert files(inc) == files(full)


@pytest.mark.parametrize("damage", ["a line lost", "a line that is not JSON", "a line without its newline"])
def test_a_part_that_does_not_add_up_is_rewritten_from_the_table(con, tmp_path, damage):
    inc, full = tmp_path / "inc", tmp_path / "full"
    last = con.execute("SELECT max(nct_id) FROM fhir.resource").fetchone()[0]
    # every record of tests/data is alone in its NCT id range: the last one gets a neighbour the day
    # leaves alone, its ResearchStudy resources under the NCT id before it
    twin = last[:-1] + str(int(last[-1]) - 1)
    con.execute("INSERT INTO fhir.resource SELECT resource_type, replace(id, lower(?), lower(?)), version_id, last_updated, ?,"
                " CAST(replace(CAST(resource AS VARCHAR), lower(?), lower(?)) AS JSON) FROM fhir.resource"
                " WHERE nct_id = ? AND resource_type = 'ResearchStudy'", [last, twin, twin, last, twin, last])
    export_ndjson(con, "fhir", inc, transaction_time="t0")
    touched, studies = _day(con)
    assert last in studies and twin not in studies
    rtype, part = "ResearchStudy", last[:7]
    assert (rtype, part) in touched
    path = inc / "fhir" / rtype / f"{part}.ndjson"
    lines = path.read_bytes().splitlines(keepends=True)
    if damage == "a line lost":  # an untouched study's line: only the count can tell
        del lines[[i for i, line in enumerate(lines) if twin.lower().encode() in line[:60]][0]]
    elif damage == "a line that is not JSON":
        lines[len(lines) // 2] = b"not json\n"
    else:
        lines[-1] = lines[-1].rstrip(b"\n")
    unseen(path, b"".join(lines))

    stats: dict = {}
    export_parts(con, "fhir", inc, touched, studies=studies, stats=stats, transaction_time="t1")

    export_ndjson(con, "fhir", full, transaction_time="t1")
    assert files(inc) == files(full)
    assert stats["spliced"] == len({k for k in touched if not is_shared(k[1])}) - 1  # the damaged part was not


def test_without_the_touched_studies_owned_parts_are_rewritten_from_the_table(con, tmp_path):
    inc, full = tmp_path / "inc", tmp_path / "full"
    export_ndjson(con, "fhir", inc, transaction_time="t0")
    touched, _ = _day(con)
    log = Counting(con)
    export_parts(log, "fhir", inc, touched, transaction_time="t1")
    export_ndjson(con, "fhir", full, transaction_time="t1")
    assert files(inc) == files(full)
    assert [q for q in log.statements if "ORDER BY 1, id" in q and "nct_id >= ?" in q]
    assert not [q for q in log.statements if "nct_id = ANY" in q]


def test_pending_studies_are_known_only_if_every_run_recorded_them(con):
    from schemas import apply_sql

    apply_sql(con, "meta/meta.sql")
    con.execute("INSERT INTO meta.fhir_export_pending VALUES ('ResearchStudy', 'NCT0666', 'r1'), "
                "('Organization', 'shared-0a', 'r0'), ('Group', 'NCT0001', 'r2')")
    con.execute("INSERT INTO meta.fhir_export_pending_study VALUES ('NCT06668571', 'r1')")
    assert export.pending_studies(con) is None  # r2 pended an NCT id part and recorded no study
    con.execute("INSERT INTO meta.fhir_export_pending_study VALUES ('NCT00010000', 'r2'), ('NCT06668571', 'r2')")
    assert export.pending_studies(con) == {"NCT06668571", "NCT00010000"}  # r0 touched shared parts only
    export.clear_pending(con)
    assert con.execute("SELECT (SELECT count(*) FROM meta.fhir_export_pending) + "
                       "(SELECT count(*) FROM meta.fhir_export_pending_study)").fetchone()[0] == 0


def test_splicing_picks_its_studies_out_of_a_crowded_part(con, tmp_path):
    """Every record of tests/data is alone in its NCT id range, so twenty copies of the last one's
    ResearchStudy and Group resources go in beside it under NCT ids of the same range, half of them
    with `meta` before `id` (their lines are parsed, not read by prefix). Four of them change; the
    splice has to find each one's run among the others."""
    base = con.execute("SELECT max(nct_id) FROM fhir.resource").fetchone()[0]
    rows = con.execute("SELECT resource_type, id, version_id, last_updated, CAST(resource AS VARCHAR) FROM fhir.resource "
                       "WHERE nct_id = ? AND resource_type IN ('ResearchStudy', 'Group')", [base]).fetchall()
    twins = [f"{base[:PREFIX]}{n:04d}" for n in range(20, 40)]
    assert base not in twins and len(rows) > 2
    for i, twin in enumerate(twins):
        for rtype, rid, version, updated, text in rows:
            res = json.loads(text.replace(base.lower(), twin.lower()))
            if i % 2:  # id after meta
                res = {"resourceType": res["resourceType"], "meta": res.get("meta"),
                       **{k: v for k, v in res.items() if k not in ("resourceType", "meta")}}
            con.execute("INSERT INTO fhir.resource VALUES (?, ?, ?, ?, ?, ?)",
                        [rtype, res["id"], version, updated, twin, json.dumps(res)])
    inc, full = tmp_path / "inc", tmp_path / "full"
    export_ndjson(con, "fhir", inc, transaction_time="t0")
    part = inc / "fhir" / "ResearchStudy" / f"{base[:PREFIX]}.ndjson"
    assert sum(1 for line in part.read_bytes().splitlines() if not line.startswith(b'{"resourceType":"ResearchStudy","id":')) >= 10
    gone, retitled, reordered, grown = twins[3], twins[8], twins[15], twins[12]
    con.execute("DELETE FROM fhir.resource WHERE nct_id = ?", [gone])
    for nct in (retitled, reordered):
        con.execute("UPDATE fhir.resource SET resource = json_merge_patch(resource, '{\"title\": \"amended\"}') "
                    "WHERE nct_id = ? AND resource_type = 'ResearchStudy'", [nct])
    rtype, rid, version, updated, nct, text = con.execute(
        "SELECT resource_type, id, version_id, last_updated, nct_id, CAST(resource AS VARCHAR) FROM fhir.resource "
        "WHERE nct_id = ? AND resource_type = 'Group' ORDER BY id LIMIT 1", [grown]).fetchone()
    new = json.loads(text)
    new["id"] = rid + "0"
    con.execute("INSERT INTO fhir.resource VALUES (?, ?, ?, ?, ?, ?)", [rtype, new["id"], version, updated, nct, json.dumps(new)])
    studies = {gone, retitled, reordered, grown}
    touched = parts_of(con, "nct_id IN (SELECT unnest(?::VARCHAR[]))", [sorted(studies)]) | {
        ("ResearchStudy", base[:PREFIX]), ("Group", base[:PREFIX])}

    stats: dict = {}
    export_parts(con, "fhir", inc, touched, studies=studies, stats=stats, transaction_time="t1")

    export_ndjson(con, "fhir", full, transaction_time="t1")
    assert files(inc) == files(full)
    assert stats == {"spliced": 2, "edited": 0}  # both parts spliced, neither fell back to the table


def _whole(con, root):
    export_ndjson(con, "fhir", root, transaction_time="t1")
    return root


def _edit_a_line(path) -> None:
    """A value changed by hand in one line: the line count still adds up."""
    lines = path.read_bytes().splitlines(keepends=True)
    res = json.loads(lines[0])
    res["meta"] = {**res.get("meta", {}), "source": "edited by hand"}
    lines[0] = json.dumps(res, separators=(",", ":")).encode() + b"\n"
    path.write_bytes(b"".join(lines))


def test_a_part_edited_by_hand_is_written_from_the_table_by_the_next_export_touched_or_not(con, tmp_path):
    """Edits survived: an untouched part stood as edited, and a touched one was spliced around the
    edited line (its count still added up) and carried it on."""
    inc, full = tmp_path / "inc", tmp_path / "full"
    export_ndjson(con, "fhir", inc, transaction_time="t0")
    touched, studies = _day(con)
    owned = sorted(k for k in touched if not is_shared(k[1]))
    untouched = sorted({(o["type"], o["url"].split("/")[1][:-7]) for o in
                        json.loads((inc / "fhir" / "manifest.json").read_text())["output"]} - touched)
    for rtype, part in (owned[0], untouched[0]):
        _edit_a_line(inc / "fhir" / export.part_url(rtype, part))
    assert export.edited_parts(inc / "fhir", export.read_manifest(inc / "fhir")) == {owned[0], untouched[0]}

    stats: dict = {}
    export_parts(con, "fhir", inc, touched, studies=studies, stats=stats, transaction_time="t1")

    export_ndjson(con, "fhir", full, transaction_time="t1")
    assert files(inc) == files(full)
    assert stats == {"spliced": len(owned) - 1, "edited": 2}
    assert export.edited_parts(inc / "fhir", export.read_manifest(inc / "fhir")) == set()


def test_an_edited_part_is_restored_by_a_publish_with_nothing_pending(con, tmp_path):
    from schemas import apply_sql

    apply_sql(con, "meta/meta.sql")
    export_ndjson(con, "fhir", tmp_path / "full", transaction_time="t0")
    assert export.export_pending(con, tmp_path / "full")[:2] == (0, 0)  # nothing pending, nothing edited: no work
    path = next((tmp_path / "full" / "fhir" / "ResearchStudy").glob("*.ndjson"))
    before = path.read_bytes()
    _edit_a_line(path)
    written, spliced, _ = export.export_pending(con, tmp_path / "full")
    assert (written, spliced) == (1, 0) and path.read_bytes() == before
