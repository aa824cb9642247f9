"""DuckDB storage, the flat views, and the bulk NDJSON export, over the 32 single-study files."""

from __future__ import annotations

import copy
import json
import re

import duckdb
import pandas as pd
import pytest

from transforms.fhir import map_study
from transforms.fhir.export import export_ndjson
from transforms.fhir.store import create_fhir_schema, write_resources


@pytest.fixture(scope="module")
def con(top_level_resources):
    con = duckdb.connect()
    create_fhir_schema(con, "stage_fhir")
    write_resources(con, "stage_fhir", top_level_resources)
    yield con
    con.close()


def test_one_row_per_resource_and_upsert_is_idempotent(con, top_level_resources):
    keys = {(r["resourceType"], r["id"]) for r in top_level_resources}
    count = lambda: con.execute("SELECT count(*) FROM stage_fhir.resource").fetchone()[0]
    assert count() == len(keys)
    create_fhir_schema(con, "stage_fhir")  # idempotent
    write_resources(con, "stage_fhir", top_level_resources)
    assert count() == len(keys)
    row = con.execute(
        "SELECT version_id, last_updated, nct_id, resource ->> '$.title' FROM stage_fhir.resource "
        "WHERE resource_type = 'ResearchStudy' AND id = ?", ["nct06668571"]).fetchone()
    assert row[0] == "1" and row[1].year == 2025 and row[2] == "NCT06668571"
    assert row[3] == "Intravenous Ketamine for Treatment-Resistant Depression"
    shared = con.execute("SELECT count(*) FROM stage_fhir.resource WHERE resource_type = 'Organization' "
                         "AND nct_id IS NOT NULL").fetchone()[0]
    assert shared == 0  # organisations belong to no single study


def test_new_version_replaces_rows(con, seed_resources):
    bumped = [dict(r, meta={"versionId": "7", "lastUpdated": "2026-01-01T00:00:00Z"}) for r in seed_resources]
    write_resources(con, "stage_fhir", bumped)
    assert con.execute("SELECT version_id FROM stage_fhir.resource WHERE id = 'nct06668571'").fetchone() == ("7",)
    write_resources(con, "stage_fhir", seed_resources)


def test_new_version_drops_what_it_no_longer_has(top_level_resources, seed_record):
    con = duckdb.connect()
    create_fhir_schema(con, "fhir")
    write_resources(con, "fhir", top_level_resources)
    before = con.execute("SELECT count(*) FROM fhir.resource").fetchone()[0]
    newer = copy.deepcopy(seed_record)
    del newer["protocolSection"]["contactsLocationsModule"]["locations"]
    newer["protocolSection"]["armsInterventionsModule"]["interventions"].pop()
    write_resources(con, "fhir", map_study(newer, version_id="2"))
    sites = con.execute("SELECT count(*) FROM fhir.research_study_site WHERE nct_id = 'NCT06668571'").fetchone()[0]
    assert sites == 0
    evs = con.execute("SELECT count(*) FROM fhir.resource WHERE nct_id = 'NCT06668571' "
                      "AND resource_type = 'EvidenceVariable'").fetchone()[0]
    assert evs == 1
    # the per-site study and one intervention are gone; the shared Location stays
    assert con.execute("SELECT count(*) FROM fhir.resource").fetchone()[0] == before - 2


def test_research_study_view(con):
    row = con.execute("SELECT * FROM stage_fhir.research_study WHERE nct_id = 'NCT06668571'").fetchone()
    cols = [d[0] for d in con.description]
    got = dict(zip(cols, row))
    assert got == {
        "nct_id": "NCT06668571", "title": "Intravenous Ketamine for Treatment-Resistant Depression",
        "status": "recruiting", "phase": "phase-2", "purpose": "treatment", "start_date": "2025-02-10",
        "end_date": "2027-12-31", "target_enrollment": 30, "actual_enrollment": None, "sponsor": "Mayo Clinic",
        "countries": ["US"],
    }
    assert con.execute("SELECT count(*) FROM stage_fhir.research_study").fetchone()[0] == 32


def test_recruiting_phase2_studies_by_country(con):
    rows = con.execute("""
        SELECT country, count(*) AS studies
        FROM stage_fhir.research_study, unnest(countries) AS t(country)
        WHERE status = 'recruiting' AND phase = 'phase-2'
        GROUP BY country ORDER BY country""").fetchall()
    assert rows == [("CN", 1), ("US", 2)]


def test_sites_per_study(con):
    rows = dict(con.execute(
        "SELECT nct_id, count(*) FROM stage_fhir.research_study_site GROUP BY nct_id").fetchall())
    assert rows["NCT06668571"] == 1 and rows["NCT04267848"] == 1148
    seed = con.execute("SELECT facility, city, state, country, recruitment_status FROM stage_fhir.research_study_site "
                       "WHERE nct_id = 'NCT06668571'").fetchone()
    assert seed == ("Mayo Clinic in Rochester", "Rochester", "Minnesota", "United States", "recruiting")
    located = con.execute("SELECT count(*) FROM stage_fhir.research_study_site WHERE latitude IS NOT NULL").fetchone()[0]
    assert located > 1000


def test_studies_per_mesh_condition(con):
    rows = con.execute("""
        SELECT mesh_code, mesh_term, count(DISTINCT nct_id) AS studies
        FROM stage_fhir.research_study_condition WHERE mesh_code IS NOT NULL
        GROUP BY ALL ORDER BY studies DESC, mesh_code LIMIT 1""").fetchall()
    assert rows == [("D003924", "Diabetes Mellitus, Type 2", 6)]
    seed = con.execute("SELECT mesh_code FROM stage_fhir.research_study_condition "
                       "WHERE nct_id = 'NCT06668571' AND mesh_code IS NOT NULL ORDER BY 1").fetchall()
    assert seed == [("D003866",), ("D061218",)]


def test_arm_view(con):
    rows = con.execute("SELECT link_id, arm_type, interventions FROM stage_fhir.research_study_arm "
                       "WHERE nct_id = 'NCT06668571' ORDER BY link_id").fetchall()
    assert rows == [("ketamine-group", "experimental", ["Drug: Ketamine"]),
                    ("normal-saline-placebo-group", "placebo-comparator", ["Drug: Normal Saline"])]


def test_schema_name_that_is_a_keyword_still_works(seed_resources):
    con = duckdb.connect()
    create_fhir_schema(con, "select")
    assert write_resources(con, "select", seed_resources) == len(seed_resources)
    assert con.execute('SELECT count(*) FROM "select".research_study').fetchone() == (1,)


@pytest.mark.parametrize("bad", ["fhir; DROP TABLE x", "Fhir", "1fhir", "", "fhir.resource", "a" * 64])
def test_schema_names_are_checked(bad):
    con = duckdb.connect()
    with pytest.raises(ValueError):
        create_fhir_schema(con, bad)
    with pytest.raises(ValueError):
        write_resources(con, bad, [])


def test_export_loads_back_and_every_reference_resolves(con, tmp_path):
    manifest = export_ndjson(con, "stage_fhir", tmp_path, transaction_time="2026-01-01T00:00:00+00:00")
    out = tmp_path / "fhir"
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["requiresAccessToken"] is False and manifest["transactionTime"] == "2026-01-01T00:00:00+00:00"
    table_counts = dict(con.execute("SELECT resource_type, count(*) FROM stage_fhir.resource GROUP BY 1").fetchall())
    per_type: dict[str, int] = {}
    for entry in manifest["output"]:
        path = out / entry["url"]
        assert path.parent.name == entry["type"]
        n = duckdb.execute("SELECT count(*) FROM read_ndjson_objects(?)", [str(path)]).fetchone()[0]
        assert n == entry["count"]
        per_type[entry["type"]] = per_type.get(entry["type"], 0) + n
    assert per_type == table_counts
    # the seed study's part is its NCT id range; organisations no study owns are in `shared-xx` buckets
    assert (out / "ResearchStudy" / "NCT0666.ndjson").is_file()
    orgs = sorted(p.stem for p in (out / "Organization").glob("*.ndjson"))
    assert orgs and all(re.fullmatch(r"shared-[0-9a-f]{2}", p) for p in orgs)

    studies = duckdb.execute("SELECT id, title FROM read_json(?, format = 'newline_delimited') WHERE id = ?",
                             [str(out / "ResearchStudy" / "*.ndjson"), "nct06668571"]).fetchall()
    assert studies == [("nct06668571", "Intravenous Ketamine for Treatment-Resistant Depression")]

    exported, references = set(), []

    def collect(node):
        if isinstance(node, dict):
            if isinstance(node.get("reference"), str):
                references.append(node["reference"])
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    for path in out.glob("*/*.ndjson"):
        for line in path.read_text(encoding="utf-8").splitlines():
            res = json.loads(line)
            exported.add(f"{res['resourceType']}/{res['id']}")
            collect(res)
    assert len(references) > 3000
    unresolved = [r for r in references if r not in exported]
    assert unresolved == []


def test_unkeyed_staging_schema_stays_one_row_per_resource(top_level_resources):
    """Staging has no PRIMARY KEY (upserts into the keyed table took 43 s of the FHIR stage at 100,000
    studies): the writer replaces by key itself, so a shared resource written by a later chunk
    replaces the earlier one instead of adding a second row."""
    con = duckdb.connect()
    create_fhir_schema(con, "stage_fhir")
    assert not con.execute("SELECT count(*) FROM duckdb_constraints() WHERE schema_name = 'stage_fhir' "
                           "AND constraint_type = 'PRIMARY KEY'").fetchone()[0]
    keys = {(r["resourceType"], r["id"]) for r in top_level_resources}
    write_resources(con, "stage_fhir", top_level_resources)
    write_resources(con, "stage_fhir", top_level_resources)
    org = next(r for r in top_level_resources if r["resourceType"] == "Organization")
    write_resources(con, "stage_fhir", [dict(org, name="Renamed by a later chunk")], replace_studies=False)
    rows = con.execute("SELECT resource_type, id, count(*) FROM stage_fhir.resource GROUP BY ALL").fetchall()
    assert {(t, i) for t, i, _ in rows} == keys and all(n == 1 for *_, n in rows)
    assert con.execute("SELECT resource ->> '$.name' FROM stage_fhir.resource WHERE resource_type = 'Organization' "
                       "AND id = ?", [org["id"]]).fetchone()[0] == "Renamed by a later chunk"


def test_new_studies_in_slices_give_the_table_one_batch_gives(top_level_resources):
    """The FHIR stage writes each study once, slice by slice: a study's own resources go straight in,
    shared ones wait in `shared_pending` and are folded once at the end (replacing them by key on every
    slice scanned the whole staged table each time). The result is the table the batch written as one
    frame gives: a shared resource as first written (slices go in NCT id order, so the first study that
    lists it describes it, as OMOP's care sites and providers)."""
    from transforms.fhir.store import append_new_studies, fold_shared, resource_rows

    org = next(r for r in top_level_resources if r["resourceType"] == "Organization")
    half = len(top_level_resources) // 2
    slices = [top_level_resources[:half], top_level_resources[half:]] + [[dict(org, name=n)] for n in ("Later", "Latest")]
    tables, set_aside = {}, {}
    for how in ("one frame", "append", "append, later copies not written"):
        con = duckdb.connect()
        create_fhir_schema(con, "stage_fhir")
        if how == "one frame":
            write_resources(con, "stage_fhir", [r for part in slices for r in part], replace_studies=False)
        else:
            keys = set() if how.endswith("not written") else None
            for seq, part in enumerate(slices, 1):
                append_new_studies(con, "stage_fhir", resource_rows((r["id"], r) for r in part), seq, pending_keys=keys)
            shared = {r["id"] for r in top_level_resources if r["resourceType"] in ("Organization", "Location")}
            staged = {i for (i,) in con.execute("SELECT id FROM stage_fhir.resource").fetchall()}
            assert shared and not shared & staged  # set aside until the fold
            set_aside[how] = con.execute("SELECT count(*) FROM stage_fhir.shared_pending").fetchone()[0]
            fold_shared(con, "stage_fhir")
            assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'shared_pending'").fetchone()[0]
            fold_shared(con, "stage_fhir")  # nothing pending: a no-op
        tables[how] = con.execute("SELECT resource_type, id, nct_id, resource::VARCHAR FROM stage_fhir.resource "
                                  "ORDER BY ALL").fetchall()
    assert tables["append"] == tables["one frame"] == tables["append, later copies not written"]
    # set aside once a key (the halves share some sites; "Later" and "Latest" are copies), yet folded the same
    unique = len({(r["resourceType"], r["id"]) for r in top_level_resources if r["resourceType"] in ("Organization", "Location")})
    assert set_aside["append, later copies not written"] == unique <= set_aside["append"] - 2
    keys = [(t, i) for t, i, *_ in tables["append"]]
    assert len(keys) == len(set(keys)) == len({(r["resourceType"], r["id"]) for r in top_level_resources})
    name = json.loads(next(r for t, i, _, r in tables["append"] if (t, i) == ("Organization", org["id"])))["name"]
    assert name == org["name"] not in ("Later", "Latest")


def test_a_slice_written_inside_a_transaction_is_not_held_until_the_commit(top_level_resources):
    """The FHIR stage is one transaction: a slice's frame must be freed once written, not kept until the
    commit (a registered view dropped inside a transaction keeps its DataFrame: 2.6 GB at 100,000 studies)."""
    import gc
    import weakref

    from transforms.fhir.store import append_new_studies, resource_rows

    con = duckdb.connect()
    create_fhir_schema(con, "stage_fhir")
    con.execute("BEGIN")
    rows = resource_rows((r["id"], r) for r in top_level_resources)
    seen = []
    original = pd.DataFrame.__getitem__

    def tracked(frame, key):  # every frame append_new_studies cuts from the slice, to watch them go
        out = original(frame, key)
        if isinstance(out, pd.DataFrame):
            seen.append(weakref.ref(out))
        return out

    pd.DataFrame.__getitem__ = tracked
    try:
        append_new_studies(con, "stage_fhir", rows, 1)
    finally:
        pd.DataFrame.__getitem__ = original
    del rows
    gc.collect()
    assert seen and not [r for r in seen if r() is not None]
    con.execute("COMMIT")
    shared = [r for r in top_level_resources if r["resourceType"] in ("Organization", "Location")]
    own = len(top_level_resources) - len(shared)
    assert con.execute("SELECT count(*) FROM stage_fhir.resource").fetchone()[0] == own
    assert con.execute("SELECT count(*) FROM stage_fhir.shared_pending").fetchone()[0] == len(
        {(r["resourceType"], r["id"]) for r in shared}) > 0

# The resource table as versions before the 600,000-study run declared it, with its views.
_KEYED = """
CREATE SCHEMA IF NOT EXISTS fhir;
CREATE TABLE fhir.resource (resource_type VARCHAR NOT NULL, id VARCHAR NOT NULL, version_id VARCHAR NOT NULL,
    last_updated TIMESTAMPTZ, nct_id VARCHAR, resource JSON NOT NULL, PRIMARY KEY (resource_type, id));
"""


def test_a_resource_table_an_earlier_version_keyed_is_rebuilt_once_without_the_key(top_level_resources):
    """The published table's PRIMARY KEY index did not fit DuckDB's 512 MB cap when the 600,000-study
    registry (7.2 M resources) was inserted; a warehouse made before keeps its rows and views."""
    from transforms.fhir.store import _sql

    con = duckdb.connect()
    con.execute(_KEYED)
    con.execute(_sql("views.sql", "fhir"))
    write_resources(con, "fhir", top_level_resources)
    before = con.execute("SELECT * FROM fhir.resource ORDER BY ALL").fetchall()
    studies = con.execute("SELECT count(*) FROM fhir.research_study").fetchone()[0]

    create_fhir_schema(con, "fhir")
    create_fhir_schema(con, "fhir")  # nothing left to rebuild

    assert not con.execute("SELECT count(*) FROM duckdb_constraints() WHERE schema_name = 'fhir' "
                           "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')").fetchone()[0]
    assert con.execute("SELECT * FROM fhir.resource ORDER BY ALL").fetchall() == before
    assert con.execute("SELECT count(*) FROM fhir.research_study").fetchone()[0] == studies > 0
    assert [t for (t,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'fhir'").fetchall()] == ["resource"]
