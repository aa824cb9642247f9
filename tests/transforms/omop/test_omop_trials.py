"""Trial and site mapping over the real records in tests/data/ctgov (seed NCT06668571 among them)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from transforms.omop._db import reset_cuts, table_checksum, values_cut
from transforms.omop.concept_mapping import coverage_report
from transforms.omop.trials import map_trials
from transforms.omop.vocabulary import load_vocabulary

REPO = Path(__file__).resolve().parents[3]
CTGOV = REPO / "tests" / "data" / "ctgov"
SEED = "NCT06668571"
TRIAL_TABLES = ("location", "care_site", "provider", "source_to_concept_map", "cohort_definition", "metadata", "cdm_source")
# NCT04267848 (1,148 sites) also lists "Mayo Clinic in Rochester", Rochester, Minnesota, United States.
SHARES_MAYO = "NCT04267848"


def _seed() -> dict:
    return json.loads((CTGOV / f"{SEED}.json").read_text())


def _checksums(con) -> dict:
    sums = {t: table_checksum(con, "omop", t) for t in TRIAL_TABLES}
    sums["id_map"] = con.execute("SELECT count(*), sum(hash(m)) FROM meta.omop_id_map m").fetchone()
    return sums


def test_counts_and_load_order(mapped_con):
    counts = map_trials(mapped_con)  # second run over the same input
    assert list(counts) == list(TRIAL_TABLES)
    n_studies = len(list(CTGOV.glob("NCT*.json")))
    assert mapped_con.execute("SELECT count(*) FROM omop.metadata WHERE name LIKE '%:nct_id'").fetchone()[0] == n_studies
    assert mapped_con.execute("SELECT count(*) FROM omop.cdm_source").fetchone()[0] == 1


def test_seed_site_lands_in_location(mapped_con):
    rows = mapped_con.execute(
        "SELECT l.city, l.state, l.country_source_value, l.location_source_value, l.country_concept_id "
        "FROM omop.care_site c JOIN omop.location l USING (location_id) "
        "WHERE c.care_site_name = 'Mayo Clinic in Rochester'"
    ).fetchall()
    assert len(rows) == 1
    city, state, country, source_value, country_concept = rows[0]
    assert (city, state, country) == ("Rochester", "MN", "United States")
    assert source_value.startswith("Rochester, Minnesota") and source_value.endswith("United States")
    assert country_concept == 0  # the demo vocabulary has no Geography concepts


def test_zip_plus_4_keeps_its_nine_digits_and_a_longer_postal_code_is_not_cut(raw_helpers):
    """location.zip is varchar(9): "57117-5134" was cut to "57117-513", another place's code."""
    rec = json.loads((CTGOV / f"{SHARES_MAYO}.json").read_text())
    sites = rec["protocolSection"]["contactsLocationsModule"]["locations"]
    assert any(s.get("zip") == "57117-5134" for s in sites)
    far = copy.deepcopy(next(s for s in sites if s.get("zip") == "57117-5134"))
    far.update(facility="A clinic with a long postal code", city="Tehran", state=None, country="Iran",
               zip="1983963113")
    sites.append(far)
    con = raw_helpers.connection([])
    raw_helpers.insert(con, rec, f"{SHARES_MAYO}.json")
    load_vocabulary(con, "omop")
    map_trials(con)
    zips = con.execute("SELECT city, zip FROM omop.location WHERE location_source_value LIKE '%57117-5134%'"
                       " OR city = 'Tehran' ORDER BY city").fetchall()
    assert zips == [("Sioux Falls", "571175134"), ("Tehran", None)]
    assert con.execute("SELECT location_source_value FROM omop.location WHERE city = 'Tehran'").fetchone()[0] == \
        "Tehran, 1983963113, Iran"
    assert con.execute("SELECT count(*) FROM omop.location WHERE zip LIKE '%-%' AND country_source_value = "
                       "'United States'").fetchone()[0] == 0


def test_a_value_cut_to_its_column_is_noted_with_its_row(raw_helpers):
    """location_source_value is varchar(50): "Sioux Falls, South Dakota, 57117-5134, United States" (52)
    loses its last characters. Each cut is noted once per row (a second mapping of the same study
    adds none), with the row and the value's length, so the gate can report it."""
    rec = json.loads((CTGOV / f"{SHARES_MAYO}.json").read_text())
    con = raw_helpers.connection([])
    raw_helpers.insert(con, rec, f"{SHARES_MAYO}.json")
    load_vocabulary(con, "omop")
    map_trials(con)
    first = values_cut(con)
    map_trials(con)
    assert values_cut(con) == first
    cut = {(c["table"], c["column"]): c for c in first}
    location = cut[("location", "location_source_value")]
    at_limit = con.execute("SELECT count(*) FROM omop.location WHERE length(location_source_value) = 50").fetchone()[0]
    assert 0 < location["rows"] <= at_limit and location["spec_length"] == 50 and location["longest"] > 50
    sioux = con.execute("SELECT location_id, location_source_value FROM omop.location "
                        "WHERE location_source_value LIKE 'Sioux Falls, South Dakota, 57117-5134%'").fetchall()
    assert [len(v) for _, v in sioux] == [50]
    noted = {r[0] for r in con.execute("SELECT row_key FROM temp.main._omop_values_cut WHERE column_name = "
                                       "'location_source_value' AND length = 52").fetchall()}
    assert str(sioux[0][0]) in noted
    assert all(len(e) < 200 and "cut to 50" in e for e in location["examples"]) and len(location["examples"]) == 5
    reset_cuts(con)
    assert values_cut(con) == []
    assert all(n <= 9 for (n,) in con.execute("SELECT length(zip) FROM omop.location WHERE zip IS NOT NULL").fetchall())


def test_shared_facility_is_one_care_site_across_studies_and_runs(raw_helpers):
    """Mapped one study at a time, the shared Mayo site keeps one care_site and one id."""
    con = raw_helpers.connection([CTGOV / f"{SEED}.json"])
    load_vocabulary(con, "omop")
    map_trials(con)
    first = con.execute("SELECT care_site_id, location_id FROM omop.care_site").fetchall()
    assert len(first) == 1
    raw_helpers.insert(con, json.loads((CTGOV / f"{SHARES_MAYO}.json").read_text()), f"{SHARES_MAYO}.json")
    map_trials(con)
    mayo = con.execute(
        "SELECT care_site_id, location_id FROM omop.care_site WHERE care_site_name = 'Mayo Clinic in Rochester'"
    ).fetchall()
    assert mayo == first
    # and the seed's principal investigator is linked to it
    pi = con.execute("SELECT care_site_id FROM omop.provider WHERE provider_name LIKE 'Balwinder Singh%'").fetchall()
    assert pi == [(first[0][0],)]


def test_sites_a_study_lists_under_one_name_and_city_are_told_apart_by_zip(raw_helpers):
    """NCT03549754 lists 13 sites named "Research Site" in 5 cities (4 in Almaty, zips apart): keyed by
    facility, city, state and country alone they were 5 care sites, while FHIR kept 13 Locations. Sites
    listed once keep the key without the zip, which studies disagree on (Mayo stays one care site)."""
    con = raw_helpers.connection([CTGOV / "NCT03549754.json", CTGOV / f"{SEED}.json", CTGOV / f"{SHARES_MAYO}.json"])
    load_vocabulary(con, "omop")
    map_trials(con)
    research = con.execute(
        "SELECT l.city, l.zip FROM omop.care_site c JOIN omop.location l USING (location_id) "
        "WHERE c.care_site_name = 'Research Site' AND l.city IN ('Almaty', 'Taichung', 'Kharkiv', 'Kyiv', 'São Paulo') "
        "ORDER BY l.city, coalesce(l.zip, '')").fetchall()
    locations = json.loads((CTGOV / "NCT03549754.json").read_text())["protocolSection"]["contactsLocationsModule"]["locations"]
    listed = sorted(((x["city"], x.get("zip")) for x in locations if x.get("facility") == "Research Site"
                     and x["city"] in ("Almaty", "Taichung", "Kharkiv", "Kyiv", "São Paulo")), key=lambda t: (t[0], t[1] or ""))
    assert len(listed) == 13 and research == listed
    mayo = con.execute("SELECT count(*) FROM omop.care_site WHERE care_site_name = 'Mayo Clinic in Rochester'").fetchone()[0]
    assert mayo == 1
    # recorded per study for the rosters, and replaced with the study's next version
    assert con.execute("SELECT DISTINCT nct_id FROM meta.site_zip_key").fetchall() == [("NCT03549754",)]
    newer = json.loads((CTGOV / "NCT03549754.json").read_text())
    newer["protocolSection"]["contactsLocationsModule"]["locations"] = [
        x for x in newer["protocolSection"]["contactsLocationsModule"]["locations"] if x.get("facility") != "Research Site"]
    newer["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2026-01-05"
    raw_helpers.insert(con, newer, "constructed/NCT03549754-v2.json")
    map_trials(con)
    assert con.execute("SELECT count(*) FROM meta.site_zip_key").fetchone()[0] == 0


def test_a_site_a_study_lists_twice_at_one_zip_keeps_the_key_other_studies_share(raw_helpers):
    """Listed twice at one zip (or twice without one) it is one place: the plain key, so the other study
    listing Mayo Clinic in Rochester still shares its care site (a '|zip:' key kept them apart)."""
    seed = _seed()
    locs = seed["protocolSection"]["contactsLocationsModule"]["locations"]
    locs.append(dict(locs[0]))
    con = raw_helpers.connection([CTGOV / f"{SHARES_MAYO}.json"])
    raw_helpers.insert(con, seed, f"constructed/{SEED}-mayo-twice.json")
    load_vocabulary(con, "omop")
    map_trials(con)
    keys = con.execute("SELECT natural_key FROM meta.omop_id_map WHERE table_name = 'care_site' "
                       "AND natural_key LIKE 'mayo clinic in rochester%'").fetchall()
    assert keys == [("mayo clinic in rochester|rochester|minnesota|united states",)]


def test_a_shared_site_is_described_by_the_first_study_listing_it_whole(raw_helpers):
    """Two studies list Mayo Clinic in Rochester; the first by NCT id without its zip and coordinates,
    the second with them.
    Its location is that study's row, empty fields too, not filled from the other study: the OMOP stage
    maps NCT id ranges a chunk at a time and keeps the first chunk's row, so a site is described the
    same way however the batch is chunked (tests/test_chunked_run.py), and never from two studies."""
    first = json.loads((CTGOV / f"{SHARES_MAYO}.json").read_text())
    assert SHARES_MAYO < SEED
    mayo = [s for s in first["protocolSection"]["contactsLocationsModule"]["locations"]
            if s.get("facility") == "Mayo Clinic in Rochester" and s.get("city") == "Rochester"]
    assert mayo
    for site in mayo:
        site.pop("zip", None)
        site.pop("geoPoint", None)
    second = _seed()  # lists the site with no zip or coordinates: give it both
    second["protocolSection"]["contactsLocationsModule"]["locations"][0].update(
        zip="55905", geoPoint={"lat": 44.02163, "lon": -92.4699})
    con = raw_helpers.connection([])
    raw_helpers.insert(con, first, f"{SHARES_MAYO}.json")
    raw_helpers.insert(con, second, f"{SEED}.json")
    load_vocabulary(con, "omop")
    map_trials(con)
    assert con.execute(
        "SELECT l.city, l.zip, l.latitude FROM omop.care_site c JOIN omop.location l USING (location_id) "
        "WHERE c.care_site_name = 'Mayo Clinic in Rochester'").fetchall() == [("Rochester", None, None)]


@pytest.mark.parametrize("order", ["as registered", "reversed"])
def test_a_contact_listed_twice_at_a_site_is_the_first_listing(raw_helpers, order):
    """NCT05766735's second site lists Chiara Fabris as CONTACT, then as PRINCIPAL_INVESTIGATOR: one
    provider, described by the first listing. Both listings shared one position (the site's), so which
    role won was up to DuckDB's aggregation order."""
    record = json.loads((CTGOV / "NCT05766735.json").read_text())
    site = record["protocolSection"]["contactsLocationsModule"]["locations"][1]
    listed = [c for c in site["contacts"] if c.get("name") == "Chiara Fabris, PhD"]
    assert [c["role"] for c in listed] == ["CONTACT", "PRINCIPAL_INVESTIGATOR"]
    if order == "reversed":
        site["contacts"] = site["contacts"][::-1]
    con = raw_helpers.connection([])
    raw_helpers.insert(con, record, "NCT05766735.json")
    load_vocabulary(con, "omop")
    map_trials(con)
    roles = con.execute("SELECT p.specialty_source_value FROM omop.provider p JOIN meta.omop_id_map m "
                        "ON m.table_name = 'provider' AND m.id = p.provider_id "
                        "WHERE p.provider_name = ? AND m.natural_key LIKE 'site|%'",  # not the overall official
                        ["Chiara Fabris, PhD"]).fetchall()
    assert roles == [("CONTACT",) if order == "as registered" else ("PRINCIPAL_INVESTIGATOR",)]


def test_sites_deduplicated_across_all_studies(mapped_con):
    dupes = mapped_con.execute(
        "SELECT care_site_name, location_id, count(*) FROM omop.care_site c JOIN omop.location l USING (location_id) "
        "WHERE care_site_name IS NOT NULL GROUP BY care_site_name, location_id, l.city, l.country_source_value "
        "HAVING count(*) > 1"
    ).fetchall()
    assert dupes == []
    n_sites = sum(
        len(json.loads(p.read_text())["protocolSection"].get("contactsLocationsModule", {}).get("locations", []))
        for p in CTGOV.glob("NCT*.json")
    )
    assert mapped_con.execute("SELECT count(*) FROM omop.care_site").fetchone()[0] < n_sites


def test_seed_arms_are_cohort_definitions_linked_to_nct(mapped_con):
    arms = mapped_con.execute(
        "SELECT cohort_definition_id, cohort_definition_name, cohort_definition_syntax, cohort_initiation_date "
        "FROM omop.cohort_definition WHERE cohort_definition_name LIKE ? ORDER BY 2", [f"{SEED}: %"]
    ).fetchall()
    assert [a[1] for a in arms] == [f"{SEED}: Ketamine Group", f"{SEED}: Normal Saline/Placebo Group"]
    assert all("PHQ-9 total score" in a[2] and "Minimum age: 18 Years" in a[2] for a in arms)
    assert str(arms[0][3]) == "2025-02-10"
    links = mapped_con.execute(
        "SELECT CAST(value_as_number AS INTEGER) FROM omop.metadata WHERE name = ? ORDER BY 1", [f"{SEED}:arm_cohort"]
    ).fetchall()
    assert sorted(a[0] for a in arms) == [x[0] for x in links]


def test_seed_trial_facts_in_metadata(mapped_con):
    facts = dict(mapped_con.execute(
        "SELECT name, coalesce(value_as_string, CAST(value_as_number AS VARCHAR)) FROM omop.metadata "
        "WHERE name IN (?, ?, ?)", [f"{SEED}:nct_id", f"{SEED}:phase", f"{SEED}:overall_status"]
    ).fetchall())
    assert facts == {f"{SEED}:nct_id": SEED, f"{SEED}:phase": "PHASE2", f"{SEED}:overall_status": "RECRUITING"}
    target = mapped_con.execute(
        "SELECT value_as_number, value_as_string FROM omop.metadata WHERE name = ?", [f"{SEED}:enrollment_target"]
    ).fetchone()
    assert target == (30.0, "ESTIMATED")


def test_seed_condition_maps_to_standard_snomed_with_rule(mapped_con):
    row = mapped_con.execute(
        "SELECT s.target_concept_id, s.source_code_description, c.vocabulary_id, c.standard_concept, c.domain_id "
        "FROM omop.source_to_concept_map s JOIN omop.concept c ON c.concept_id = s.target_concept_id "
        "WHERE s.source_vocabulary_id = 'CTGOV_CONDITION' AND s.source_code = 'treatment resistant depression'"
    ).fetchone()
    assert row == (4152280, "rule=curated; Treatment Resistant Depression", "SNOMED", "S", "Condition")
    on_study = mapped_con.execute(
        "SELECT value_as_concept_id FROM omop.metadata WHERE name = ? AND value_as_string = 'Treatment Resistant Depression'",
        [f"{SEED}:condition"],
    ).fetchone()
    assert on_study == (4152280,)


def test_unmapped_terms_keep_zero_and_source_value(mapped_con):
    unmapped = mapped_con.execute(
        "SELECT count(*) FROM omop.source_to_concept_map WHERE target_concept_id = 0 "
        "AND target_vocabulary_id = 'None' AND source_code_description LIKE 'rule=unmapped; %'"
    ).fetchone()[0]
    assert unmapped > 0
    assert mapped_con.execute(
        "SELECT count(*) FROM omop.source_to_concept_map WHERE length(source_code) > 50"
    ).fetchone()[0] == 0


def test_coverage_report(mapped_con):
    report = coverage_report(mapped_con, "omop")
    rules = {(r["source_vocabulary_id"], r["rule"]) for r in report}
    assert ("CTGOV_CONDITION", "curated") in rules
    assert ("CTGOV_CONDITION", "name_exact") in rules
    for vocab in {r["source_vocabulary_id"] for r in report}:
        assert sum(r["pct_of_vocabulary"] for r in report if r["source_vocabulary_id"] == vocab) == pytest.approx(100, abs=0.5)


def test_reload_is_a_noop(mapped_con):
    before = _checksums(mapped_con)
    counts = map_trials(mapped_con)
    assert counts["cdm_source"] == 0
    assert _checksums(mapped_con) == before


def test_ids_stable_whatever_the_order_of_arrival(raw_helpers):
    """A subset mapped first, then everything: the seed's ids equal those of a one-shot load."""
    one_shot = raw_helpers.connection()
    load_vocabulary(one_shot, "omop")
    map_trials(one_shot)
    later = raw_helpers.connection([CTGOV / f"{SEED}.json"])
    load_vocabulary(later, "omop")
    map_trials(later)
    seed_ids = later.execute("SELECT natural_key, id FROM meta.omop_id_map ORDER BY 1").fetchall()
    for path in sorted(CTGOV.glob("NCT*.json")):
        if path.stem != SEED:
            raw_helpers.insert(later, json.loads(path.read_text()), path.name)
    map_trials(later)
    assert later.execute("SELECT natural_key, id FROM meta.omop_id_map WHERE natural_key IN "
                         "(SELECT unnest(?)) ORDER BY 1", [[k for k, _ in seed_ids]]).fetchall() == seed_ids
    # same rows, whatever the ids (arm_cohort rows carry a cohort_definition_id, so they are left out)
    q = ("SELECT name, value_as_string, value_as_number, value_as_concept_id FROM omop.metadata "
         "WHERE name NOT LIKE '%:arm_cohort' ORDER BY ALL")
    assert later.execute(q).fetchall() == one_shot.execute(q).fetchall()


def test_new_version_replaces_the_study_rows(raw_helpers):
    """A (constructed) newer version of the seed with one arm left: the dropped arm and its link disappear."""
    con = raw_helpers.connection([CTGOV / f"{SEED}.json"])
    load_vocabulary(con, "omop")
    map_trials(con)
    newer = copy.deepcopy(_seed())
    newer["protocolSection"]["armsInterventionsModule"]["armGroups"] = newer["protocolSection"]["armsInterventionsModule"]["armGroups"][:1]
    newer["protocolSection"]["statusModule"]["overallStatus"] = "COMPLETED"
    newer["protocolSection"]["statusModule"]["lastUpdatePostDateStruct"]["date"] = "2026-01-05"
    raw_helpers.insert(con, newer, "constructed/NCT06668571-v2.json")
    map_trials(con)
    names = con.execute("SELECT cohort_definition_name FROM omop.cohort_definition").fetchall()
    assert names == [(f"{SEED}: Ketamine Group",)]
    assert con.execute("SELECT value_as_string FROM omop.metadata WHERE name = ?", [f"{SEED}:overall_status"]).fetchall() == [("COMPLETED",)]
    assert con.execute("SELECT count(*) FROM omop.metadata WHERE name = ?", [f"{SEED}:arm_cohort"]).fetchone()[0] == 1
    assert str(con.execute("SELECT source_release_date FROM omop.cdm_source").fetchone()[0]) == "2026-01-05"


def test_cdm_version_concept_comes_from_the_vocabulary_or_is_zero(raw_helpers):
    """The spec finds it with VOCABULARY_ID = 'CDM' AND CONCEPT_CLASS = 'CDM': the demo subset has none
    (0); an Athena download has 756265, which the row then carries (it was 0 whatever the vocabulary)."""
    con = raw_helpers.connection([CTGOV / f"{SEED}.json"])
    load_vocabulary(con, "omop")
    map_trials(con)
    assert con.execute("SELECT cdm_version_concept_id FROM omop.cdm_source").fetchone()[0] == 0
    con.execute("INSERT INTO omop.concept VALUES (756264, 'OMOP CDM Version 5.3.1', 'Metadata', 'CDM', 'CDM', 'S', "
                "'CDM v5.3.1', DATE '2019-01-01', DATE '2099-12-31', NULL), (756265, 'OMOP CDM Version 5.4.0', 'Metadata', "
                "'CDM', 'CDM', 'S', 'CDM v5.4.0', DATE '2021-01-01', DATE '2099-12-31', NULL)")
    map_trials(con)
    assert con.execute("SELECT cdm_version_concept_id FROM omop.cdm_source").fetchone()[0] == 756265


def test_source_relation_can_be_a_gated_subset(raw_con):
    load_vocabulary(raw_con, "omop")
    raw_con.execute("CREATE SCHEMA gate")
    # a view cannot take parameters: the gate's subset is materialised as a table
    raw_con.execute("CREATE TABLE gate.passed AS SELECT nct_id, payload FROM raw.ctgov_study_current WHERE nct_id = ?",
                    [SEED])
    counts = map_trials(raw_con, source="gate.passed", schema="stage_omop", id_map_schema="meta")
    assert counts["cohort_definition"] == 2
    assert raw_con.execute("SELECT count(DISTINCT split_part(name, ':', 1)) FROM stage_omop.metadata").fetchone()[0] == 1


def test_field_projected_page_records_map_without_error(raw_helpers):
    """page_biomcp_* pages hold partial records (only some modules): mapping must not fail on missing parts."""
    con = raw_helpers.connection([])
    for page in sorted((CTGOV / "pages").glob("page_biomcp_*_fields.json")):
        for i, study in enumerate(json.loads(page.read_text())["studies"]):
            raw_helpers.insert(con, study, page.relative_to(REPO).as_posix(), f"studies[{i}]")
    load_vocabulary(con, "omop")
    counts = map_trials(con)
    assert counts["metadata"] > 0
    assert con.execute("SELECT count(*) FROM omop.cohort_definition").fetchone()[0] >= 1


@pytest.mark.parametrize("kwargs", [{"source": "raw.x; DROP TABLE raw.landed_file"}, {"schema": "omop--"},
                                    {"id_map_schema": "Meta"}])
def test_identifiers_are_checked(raw_con, kwargs):
    with pytest.raises(ValueError):
        map_trials(raw_con, **kwargs)


def test_transforms_never_import_dagster():
    for path in (REPO / "transforms").rglob("*.py"):
        assert "dagster" not in path.read_text(), path


def test_mesh_maps_to_rule_wins_when_the_vocabulary_holds_mesh(raw_helpers):
    """With a MeSH concept and its 'Maps to' loaded, the MeSH term maps by rule mesh_maps_to, before curation.

    The MeSH concept uses a local id (2,000,000,000 and up is reserved for site-defined concepts):
    the demo vocabulary has no MeSH and no real MeSH concept id is verified here.
    """
    con = raw_helpers.connection([CTGOV / f"{SEED}.json"])
    load_vocabulary(con, "omop")
    con.execute("INSERT INTO omop.concept VALUES (2000000001, 'Depressive Disorder, Treatment-Resistant', 'Condition', "
                "'MeSH', 'Main Heading', NULL, 'D061218', DATE '1970-01-01', DATE '2099-12-31', NULL)")
    con.execute("INSERT INTO omop.concept_relationship VALUES (2000000001, 4152280, 'Maps to', "
                "DATE '1970-01-01', DATE '2099-12-31', NULL)")
    map_trials(con)
    rows = dict(con.execute(
        "SELECT source_code, source_code_description FROM omop.source_to_concept_map "
        "WHERE source_vocabulary_id = 'CTGOV_COND_MESH' AND target_concept_id = 4152280"
    ).fetchall())
    assert rows == {"D061218": "rule=mesh_maps_to; Depressive Disorder, Treatment-Resistant"}


def test_joins_the_callers_transaction(raw_con):
    """Inside the publish step's transaction, a rollback takes the mapping with it."""
    load_vocabulary(raw_con, "omop")
    raw_con.execute("BEGIN TRANSACTION")
    counts = map_trials(raw_con)
    assert counts["metadata"] > 0
    raw_con.execute("ROLLBACK")
    assert raw_con.execute("SELECT count(*) FROM omop.metadata").fetchone()[0] == 0
    assert map_trials(raw_con)["metadata"] == counts["metadata"]


def test_a_failed_mapping_leaves_nothing_behind(raw_con):
    load_vocabulary(raw_con, "omop")
    raw_con.execute("CREATE TABLE raw.broken AS SELECT nct_id, '{not json' AS payload FROM raw.ctgov_study_current")
    with pytest.raises(Exception):
        map_trials(raw_con, source="raw.broken")
    assert raw_con.execute("SELECT count(*) FROM omop.location").fetchone()[0] == 0


def test_a_source_with_several_rows_per_study_maps_like_one_row_each(raw_con, raw_helpers):
    """Duplicates are dropped before the extract, so each study is mapped once."""
    load_vocabulary(raw_con, "omop")
    once = raw_helpers.connection()
    load_vocabulary(once, "omop")
    map_trials(once)
    raw_con.execute("CREATE TABLE raw.twice AS SELECT nct_id, payload FROM raw.ctgov_study_current "
                    "UNION ALL SELECT nct_id, payload FROM raw.ctgov_study_current")
    map_trials(raw_con, source="raw.twice")
    assert _checksums(raw_con) == _checksums(once)
