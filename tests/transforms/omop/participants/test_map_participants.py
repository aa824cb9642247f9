"""Site participant data (synthetic, generated) -> OMOP person-level tables."""
import shutil

import pytest

from expectations.dqd.checks import FATAL_CHECKS, run_dqd
from transforms.omop._db import table_checksum, values_cut
from transforms.omop.participants import map_participants, pseudonym
from transforms.omop.participants.publish import clear_published_sites
from transforms.omop.participants.queries import named_queries, run_query
from transforms.omop.publish import merge_stage
from transforms.sites.ingest import ingest_site_deliveries
from trialhouse.synth_site import generate_delivery

TABLES = ("person", "observation_period", "visit_occurrence", "drug_exposure", "measurement", "observation",
          "condition_occurrence", "cohort", "location", "care_site", "provider")
EVENT_TYPES = {"visit_occurrence": "visit_type_concept_id", "drug_exposure": "drug_type_concept_id",
               "measurement": "measurement_type_concept_id", "observation": "observation_type_concept_id",
               "condition_occurrence": "condition_type_concept_id", "observation_period": "period_type_concept_id"}


def raw_count(con, domain, where="TRUE"):
    return con.execute(f"SELECT count(*) FROM raw.sdtm_row_current WHERE domain = ? AND ({where})", [domain]).fetchone()[0]


def count(con, table, schema="stage_omop"):
    return con.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()[0]


def test_every_domain_maps_with_expected_row_counts(mapped):
    con, c = mapped.con, mapped.counts
    phq_total = raw_count(con, "QS", "(record->>'$.QSTESTCD') = 'PHQ9TOT'")
    expected = {
        "person": raw_count(con, "DM"), "observation_period": raw_count(con, "DM"), "cohort": raw_count(con, "DM"),
        "visit_occurrence": raw_count(con, "SV"), "drug_exposure": raw_count(con, "EX"),
        "condition_occurrence": raw_count(con, "AE"),
        # VS + PHQ-9 items (no verified concept: 0, measurement); the total (Observation domain) is not here
        "measurement": raw_count(con, "VS") + raw_count(con, "QS") - phq_total,
        # PHQ-9 totals + DS + AE severity and seriousness
        "observation": phq_total + raw_count(con, "DS") + 2 * raw_count(con, "AE"),
        "location": 2, "care_site": 2, "provider": 2,
    }
    assert expected["person"] == 40
    assert {k: c[k] for k in expected} == expected
    for table, n in expected.items():
        assert count(con, table) == (n + 1 if table == "provider" else n), table  # + the registry's overall official


def test_rows_carry_crf_type_and_concepts_from_the_maps(mapped):
    con = mapped.con
    for table, col in EVENT_TYPES.items():
        assert con.execute(f"SELECT DISTINCT {col} FROM stage_omop.{table}").fetchall() == [(32809,)], table
    assert set(con.execute("SELECT DISTINCT gender_concept_id FROM stage_omop.person").fetchall()) <= {(8507,), (8532,)}
    vs = dict(con.execute("SELECT measurement_source_value, min(measurement_concept_id) FROM stage_omop.measurement "
                          "WHERE measurement_source_value IN ('WEIGHT', 'HEIGHT', 'BMI', 'SYSBP', 'DIABP', 'HR') "
                          "GROUP BY 1").fetchall())
    assert vs == {"WEIGHT": 3025315, "HEIGHT": 3036277, "BMI": 3038553, "SYSBP": 3004249, "DIABP": 3012888, "HR": 3027018}
    units = dict(con.execute("SELECT unit_source_value, min(unit_concept_id) FROM stage_omop.measurement "
                             "WHERE unit_source_value IS NOT NULL GROUP BY 1").fetchall())
    assert units == {"kg": 9529, "cm": 8582, "kg/m2": 9531, "mmHg": 8876, "beats/min": 8541}
    drugs = dict(con.execute("SELECT drug_source_value, min(drug_concept_id) FROM stage_omop.drug_exposure GROUP BY 1").fetchall())
    assert drugs == {"KETAMINE": 0, "PLACEBO": 19079524}
    # A placebo's zero dose of the active drug is no quantity of saline: NULL, never an implausible 0.
    assert con.execute("SELECT count(*) FILTER (WHERE quantity IS NOT NULL), count(*) FILTER (WHERE quantity = 0) "
                       "FROM stage_omop.drug_exposure WHERE drug_source_value = 'PLACEBO'").fetchone() == (0, 0)
    ex = con.execute("SELECT count(*) FILTER (WHERE (quantity IS NULL AND drug_source_value <> 'PLACEBO') "
                     "OR dose_unit_source_value <> 'mg' OR route_source_value "
                     "<> 'INTRAVENOUS' OR drug_exposure_end_datetime - drug_exposure_start_datetime <> INTERVAL 40 MINUTE "
                     "OR visit_occurrence_id IS NULL) FROM stage_omop.drug_exposure").fetchone()[0]
    assert ex == 0
    # PHQ-9 total: concept 3042932 is in the Observation domain -> observation, with the visit
    assert con.execute("SELECT count(*), count(visit_occurrence_id) FROM stage_omop.observation "
                       "WHERE observation_concept_id = 3042932").fetchone()[0] > 0
    ds = dict(con.execute("SELECT observation_source_value, min(observation_concept_id) FROM stage_omop.observation "
                          "WHERE observation_source_value IN ('COMPLETED', 'WITHDRAWAL BY SUBJECT') GROUP BY 1").fetchall())
    assert ds.get("COMPLETED") == 40482840 and ds.get("WITHDRAWAL BY SUBJECT", 4087907) == 4087907


def test_ae_severity_and_seriousness_link_to_their_condition(mapped):
    con = mapped.con
    rows = con.execute(
        "SELECT o.observation_source_value, o.observation_concept_id, o.value_as_string, o.person_id = c.person_id "
        "FROM stage_omop.observation o JOIN stage_omop.condition_occurrence c ON c.condition_occurrence_id = o.observation_event_id "
        "WHERE o.obs_event_field_concept_id = 1147127").fetchall()
    assert len(rows) == 2 * count(con, "condition_occurrence")
    assert {(r[0], r[1]) for r in rows} == {("AESEV", 4077563), ("AESER", 0)}
    assert all(r[3] for r in rows)
    named = dict(con.execute("SELECT condition_source_value, min(condition_concept_id) FROM stage_omop.condition_occurrence "
                             "GROUP BY 1").fetchall())
    assert named["NAUSEA"] == 31967 and named["HEADACHE"] == 378253 and named["DISSOCIATION"] == 0


def test_pseudonyms_only_no_subject_ids_and_sites_shared_with_the_registry(mapped):
    con = mapped.con
    usubjids = [r[0] for r in con.execute("SELECT usubjid FROM raw.sdtm_row_current WHERE domain = 'DM'").fetchall()]
    got = {r[0] for r in con.execute("SELECT person_source_value FROM stage_omop.person").fetchall()}
    assert got == {pseudonym(u, b"synthetic-test-pseudonym-key-000") for u in usubjids}
    for table in TABLES:
        text = con.execute(f"SELECT string_agg(CAST(t AS VARCHAR), ' ') FROM stage_omop.{table} t").fetchone()[0] or ""
        assert "NCT06668571-0" not in text and "synthetic-test-pseudonym-key" not in text, table
    # site 001 is the registry's Mayo Clinic site: one care_site, the registry's id
    mayo = con.execute("SELECT care_site_id FROM stage_omop.care_site WHERE care_site_name = 'Mayo Clinic in Rochester'").fetchall()
    assert len(mayo) == 1
    sites = dict(con.execute("SELECT cs.care_site_name, count(*) FROM stage_omop.person p JOIN stage_omop.care_site cs "
                             "USING (care_site_id) GROUP BY 1").fetchall())
    assert sites == {"Mayo Clinic in Rochester": 20, "Synthetic Site 2": 20}
    # the site's address is the care site's; person.location_id is the person's own, which no delivery holds
    assert con.execute("SELECT count(*) FROM stage_omop.person WHERE location_id IS NOT NULL").fetchone()[0] == 0
    pis = con.execute("SELECT provider_name, care_site_id FROM stage_omop.provider WHERE provider_name LIKE 'Synthetic%' "
                      "ORDER BY 1").fetchall()
    assert pis[0] == ("Synthetic Investigator 1", mayo[0][0])


def test_arm_membership_is_cohort_rows_of_the_registry_arms(mapped):
    con = mapped.con
    arms = dict(con.execute("SELECT cd.cohort_definition_name, count(*) FROM stage_omop.cohort c "
                            "JOIN stage_omop.cohort_definition cd USING (cohort_definition_id) GROUP BY 1").fetchall())
    assert arms == {"NCT06668571: Ketamine Group": 20, "NCT06668571: Normal Saline/Placebo Group": 20}
    assert con.execute("SELECT count(*) FROM stage_omop.cohort WHERE cohort_start_date > cohort_end_date").fetchone()[0] == 0


def test_dqd_fatal_checks_pass_on_registry_plus_participant_rows(mapped):
    results = run_dqd(mapped.con, "stage_omop", checks=set(FATAL_CHECKS), vocab_schema="omop")
    assert results
    failed = [(r.check_name, r.table, r.field, r.violated, r.examples[:3]) for r in results if r.failed]
    assert failed == []


def test_analyst_queries_each_one_sql(mapped):
    con = mapped.con
    assert set(named_queries()) == {"phq9_change_by_arm", "adverse_events_by_arm", "participants_per_site"}
    phq = {r[0]: r for r in run_query(con, "phq9_change_by_arm", "NCT06668571", cdm="stage_omop")}
    assert set(phq) == {"Ketamine Group", "Normal Saline/Placebo Group"}
    assert phq["Ketamine Group"][4] < phq["Normal Saline/Placebo Group"][4] < 0  # ketamine lowers PHQ-9 more
    ae = run_query(con, "adverse_events_by_arm", "NCT06668571", cdm="stage_omop")
    assert sum(r[2] for r in ae) == count(con, "condition_occurrence")
    assert {r[0] for r in ae} == {"Ketamine Group", "Normal Saline/Placebo Group"}
    sites = run_query(con, "participants_per_site", "NCT06668571", cdm="stage_omop")
    assert [(s, n) for s, n, _ in sites] == [("Mayo Clinic in Rochester", 20), ("Synthetic Site 2", 20)]


def checksums(con, schema="stage_omop"):
    out = {t: table_checksum(con, schema, t) for t in TABLES}
    out["id_map"] = con.execute("SELECT count(*), sum(hash(m)) FROM meta.omop_id_map m").fetchone()
    return out


def test_reload_is_a_noop(con, tmp_path, pt):
    pt.prepare(con, tmp_path / "landing", participants=12, sites=2, seed=5)
    first = map_participants(con, pseudonym_key=pt.key)
    before = checksums(con)
    assert map_participants(con, pseudonym_key=pt.key) == first
    assert checksums(con) == before


def test_superseding_delivery_replaces_that_sites_rows(con, tmp_path, pt):
    landing = tmp_path / "landing"
    pt.prepare(con, landing, participants=12, sites=2, seed=5)
    map_participants(con, pseudonym_key=pt.key)
    site2 = "SELECT count(*), sum(hash(p)) FROM stage_omop.person p WHERE care_site_id = (SELECT care_site_id " \
            "FROM stage_omop.care_site WHERE care_site_name = 'Synthetic Site 2')"
    before2 = con.execute(site2).fetchone()
    # a later cut of site 001 only, with fewer participants: its old rows must all go
    later = generate_delivery(tmp_path / "later", participants=8, sites=2, seed=9, cutoff="2026-09-30")[0]
    shutil.copytree(later, landing / "sites" / later.name)
    ingest_site_deliveries(con, landing, run_id="t2")
    map_participants(con, pseudonym_key=pt.key)
    dm = con.execute("SELECT site_id, count(*) FROM raw.sdtm_row_current WHERE domain = 'DM' GROUP BY 1 ORDER BY 1").fetchall()
    assert dm == [("001", 4), ("002", 6)]
    assert count(con, "person") == 10
    assert count(con, "cohort") == 10
    assert count(con, "visit_occurrence") == con.execute(
        "SELECT count(*) FROM raw.sdtm_row_current WHERE domain = 'SV'").fetchone()[0]
    assert con.execute(site2).fetchone() == before2


def test_exclude_leaves_out_held_rows(con, tmp_path, pt):
    pt.prepare(con, tmp_path / "landing", participants=6, sites=1, seed=2)
    con.execute("CREATE TABLE held AS SELECT delivery_key, usubjid, domain, row_number FROM raw.sdtm_row_current "
                "WHERE usubjid = 'NCT06668571-001-0001' "
                "UNION ALL (SELECT delivery_key, usubjid, domain, row_number FROM raw.sdtm_row_current "
                "WHERE domain = 'EX' AND usubjid = 'NCT06668571-001-0002' ORDER BY row_number LIMIT 1)")
    counts = map_participants(con, pseudonym_key=pt.key, exclude="held")
    assert counts["person"] == 5
    ex = con.execute("SELECT count(*) FROM raw.sdtm_row_current WHERE domain = 'EX' AND usubjid <> 'NCT06668571-001-0001'").fetchone()[0]
    assert counts["drug_exposure"] == ex - 1


def test_publish_clears_sites_before_the_by_key_merge(con, tmp_path, pt):
    pt.prepare(con, tmp_path / "landing", participants=6, sites=1, seed=2)
    from schemas.omop.ddl import create_omop_schema
    create_omop_schema(con, "omop")
    map_participants(con, pseudonym_key=pt.key)
    con.execute("CREATE TABLE batch AS SELECT 'NCT06668571' AS nct_id")
    for _ in range(2):  # publishing the same stage twice: no duplicate cohort rows, nothing stale
        clear_published_sites(con, "stage_omop", "omop")
        merge_stage(con, "stage_omop", "omop", "batch")
    assert count(con, "cohort", "omop") == count(con, "cohort") == 6
    assert count(con, "measurement", "omop") == count(con, "measurement")


def test_identifiers_are_checked(con):
    with pytest.raises(ValueError):
        map_participants(con, pseudonym_key=b"k" * 32, source_rows="raw.sdtm_row_current; DROP TABLE x")
    with pytest.raises(ValueError):
        pseudonym("NCT06668571-001-0001", b"short")


def test_a_participant_value_cut_to_its_column_is_noted(con, tmp_path, pt):
    """condition_source_value is varchar(50): a longer AE term is cut to fit, and noted with its row
    for the gate's `value_cut` warning (the whole term stays in raw.sdtm_row)."""
    pt.prepare(con, tmp_path / "landing", participants=6, sites=1, seed=2)
    long_term = "INFUSION SITE REACTION WITH ERYTHEMA, SWELLING AND PAIN AT THE CANNULA"
    row = con.execute("SELECT delivery_key, row_number FROM raw.sdtm_row WHERE domain = 'AE' ORDER BY row_number "
                      "LIMIT 1").fetchone()
    con.execute("UPDATE raw.sdtm_row SET record = json_merge_patch(record, json_object('AEDECOD', ?)) "
                "WHERE delivery_key = ? AND domain = 'AE' AND row_number = ?", [long_term, *row])
    map_participants(con, pseudonym_key=pt.key)
    cut = {(c["table"], c["column"]): c for c in values_cut(con)}
    noted = cut[("condition_occurrence", "condition_source_value")]
    assert noted["rows"] == 1 and noted["longest"] == len(long_term) and noted["spec_length"] == 50
    stored = con.execute("SELECT condition_occurrence_id, condition_source_value FROM stage_omop.condition_occurrence "
                         "WHERE condition_source_value LIKE 'INFUSION SITE REACTION%'").fetchall()
    assert [v for _, v in stored] == [long_term[:50]]
    assert noted["examples"][0].startswith(f"condition_occurrence {stored[0][0]}: condition_source_value of "
                                           f"{len(long_term)} characters cut to 50")


def test_an_ae_links_to_the_visit_under_way_at_its_start(mapped):
    """An infusion visit and a follow-up visit can share a day: the AE went to the lowest visit id of
    its day, e.g. FOLLOW-UP:DAY 7 for an AE at 13:26 during the 12:08-15:48 open-label infusion."""
    con = mapped.con
    rows = con.execute("""
        SELECT c.condition_occurrence_id, c.visit_occurrence_id,
               list(v.visit_occurrence_id ORDER BY v.visit_occurrence_id) FILTER (
                   WHERE c.condition_start_datetime BETWEEN v.visit_start_datetime AND v.visit_end_datetime) AS under_way
        FROM stage_omop.condition_occurrence c
        JOIN stage_omop.visit_occurrence v ON v.person_id = c.person_id
        WHERE c.condition_start_datetime IS NOT NULL
        GROUP BY ALL""").fetchall()
    during = [(cid, linked, under) for cid, linked, under in rows if under]
    assert len(during) >= 5
    assert all(linked in under for _, linked, under in during)


def test_every_vital_sign_and_unit_the_contract_accepts_maps_where_the_vocabulary_has_it(con, tmp_path, pt):
    """vs.schema.json accepts TEMP, RESP and OXYSAT in C, breaths/min and %: they fell to concept 0 and a
    NULL unit though the vocabulary holds Body temperature, Respiratory rate, degree Celsius and percent.
    OXYSAT has no concept the shared files verify (concept 0); an unmapped unit is 0, not NULL."""
    pt.prepare(con, tmp_path / "landing", participants=4, sites=1, seed=2)
    rows = con.execute("SELECT delivery_key, row_number FROM raw.sdtm_row WHERE domain = 'VS' ORDER BY row_number "
                       "LIMIT 3").fetchall()
    for (key, number), (testcd, value, unit) in zip(rows, [("TEMP", "37.2", "C"), ("RESP", "16", "breaths/min"),
                                                            ("OXYSAT", "97", "%")]):
        con.execute("UPDATE raw.sdtm_row SET record = json_merge_patch(record, json_object('VSTESTCD', ?, "
                    "'VSORRES', ?, 'VSSTRESC', ?, 'VSSTRESN', ?, 'VSORRESU', ?, 'VSSTRESU', ?)) "
                    "WHERE delivery_key = ? AND domain = 'VS' AND row_number = ?",
                    [testcd, value, value, value, unit, unit, key, number])
    map_participants(con, pseudonym_key=pt.key)
    got = con.execute("SELECT measurement_source_value, measurement_concept_id, unit_source_value, unit_concept_id "
                      "FROM stage_omop.measurement WHERE measurement_source_value IN ('TEMP', 'RESP', 'OXYSAT') "
                      "ORDER BY 1").fetchall()
    assert got == [("OXYSAT", 0, "%", 8554), ("RESP", 3024171, "breaths/min", 8541), ("TEMP", 3020891, "C", 586323)]
    concepts = dict(con.execute("SELECT concept_id, standard_concept FROM omop.concept WHERE concept_id IN "
                                "(3020891, 3024171, 586323, 8541, 8554)").fetchall())
    assert concepts == {c: "S" for c in (3020891, 3024171, 586323, 8541, 8554)}
    assert con.execute("SELECT count(*) FROM stage_omop.measurement WHERE unit_source_value IS NOT NULL "
                       "AND unit_concept_id IS NULL").fetchone()[0] == 0


def test_roster_sites_under_one_name_and_city_are_told_apart_by_zip_whichever_site_is_mapped(con, tmp_path, pt):
    """Two sites of one study whose rosters give the same facility, city and country ("Research Site",
    Almaty) and different postal codes were one care_site. They are two, keyed with their zip, and a
    site's key is the same when it is mapped alone (counted over the study's whole roster)."""
    pt.prepare(con, tmp_path / "landing", participants=9, sites=3, seed=3)
    con.execute("UPDATE raw.site_roster_row SET facility = 'Research Site', city = 'Almaty', state = NULL, "
                "country = 'Kazakhstan', postal_code = CASE site_id WHEN '002' THEN '050000' ELSE '050040' END "
                "WHERE site_id IN ('002', '003')")
    con.execute("CREATE TABLE only_002 AS SELECT * FROM raw.sdtm_row_current WHERE site_id = '002'")
    map_participants(con, pseudonym_key=pt.key, source_rows="only_002")
    alone = con.execute("SELECT natural_key, id FROM meta.omop_id_map WHERE table_name = 'care_site' "
                        "AND natural_key LIKE 'research site|almaty%'").fetchall()
    map_participants(con, pseudonym_key=pt.key)
    sites = con.execute("SELECT l.zip, c.care_site_id FROM stage_omop.care_site c JOIN stage_omop.location l "
                        "USING (location_id) WHERE c.care_site_name = 'Research Site' ORDER BY 1").fetchall()
    assert [z for z, _ in sites] == ["050000", "050040"]
    assert alone == [("research site|almaty||kazakhstan|zip:050000", sites[0][1])]
    persons = [con.execute("SELECT count(*) FROM stage_omop.person WHERE care_site_id = ?", [cs]).fetchone()[0]
               for _, cs in sites]
    dm = [con.execute("SELECT count(*) FROM raw.sdtm_row_current WHERE domain = 'DM' AND site_id = ?", [s]).fetchone()[0]
          for s in ("002", "003")]
    assert persons == dm and min(dm) > 0  # each site's participants at their own care site


def _mayo_at_55905(con, tmp_path, pt, seed_zips: list[str], other_zips: list[str] | None = None) -> None:
    """Site 001 (10 participants) with its roster's Mayo row at zip 55905; the seed study's registry record
    listing Mayo Clinic in Rochester at `seed_zips`, and, with `other_zips`, a second study listing it at
    those; both mapped to stage_omop, then the participants."""
    import copy
    import json

    from transforms.omop.trials import map_trials
    from transforms.omop.vocabulary import load_vocabulary

    (tmp_path / "landing" / "sites").mkdir(parents=True)
    generate_delivery(tmp_path / "landing" / "sites", participants=10, sites=1, seed=1)
    ingest_site_deliveries(con, tmp_path / "landing", run_id="t")
    con.execute("UPDATE raw.site_roster_row SET postal_code = '55905'")
    load_vocabulary(con, "omop")

    def listing(nct_id, zips):
        rec = copy.deepcopy(pt.record)
        rec["protocolSection"]["identificationModule"]["nctId"] = nct_id
        locs = rec["protocolSection"]["contactsLocationsModule"]["locations"]
        locs[:] = [{**locs[0], "zip": z} for z in zips]
        return [nct_id, json.dumps(rec)]

    studies = [listing(pt.seed, seed_zips)] + ([listing("NCT09999999", other_zips)] if other_zips else [])
    con.execute("CREATE OR REPLACE TABLE registry_src (nct_id VARCHAR, payload VARCHAR)")
    con.executemany("INSERT INTO registry_src VALUES (?, ?)", studies)
    map_trials(con, source="registry_src", schema="stage_omop", vocab_schema="omop")
    map_participants(con, pseudonym_key=pt.key)


def test_a_roster_site_the_registry_lists_among_others_of_its_name_is_the_registry_s_care_site(con, tmp_path, pt):
    """The registry lists Mayo Clinic in Rochester twice, at two zips, so its keys carry the zip; site 001's
    roster row (zip 55905) is one of them. Keyed without the zip, the roster made a third Mayo care site
    and its participants landed there, apart from the registry's sites."""
    _mayo_at_55905(con, tmp_path, pt, ["55905", "55902"])
    sites = con.execute("SELECT l.zip, (SELECT count(*) FROM stage_omop.person p WHERE p.care_site_id = c.care_site_id) "
                        "FROM stage_omop.care_site c JOIN stage_omop.location l USING (location_id) "
                        "WHERE c.care_site_name = 'Mayo Clinic in Rochester' ORDER BY 1").fetchall()
    assert sites == [("55902", 0), ("55905", 10)]


def test_a_partial_start_in_the_month_of_consent_is_the_consent_date(con, tmp_path, pt):
    """An AE known only as "2025-03" by a participant who consented on 15 March was dated 1 March: it
    began before consent and pulled the observation period back with it. Within the consent's month
    (or year) a partial start is the consent date; in an earlier month it stays that month's first day."""
    pt.prepare(con, tmp_path / "landing", participants=8, sites=1, seed=2)
    usubjid = con.execute("SELECT min(usubjid) FROM raw.sdtm_row_current WHERE domain = 'AE'").fetchone()[0]
    consent = con.execute("SELECT json_extract_string(record, '$.RFICDTC') FROM raw.sdtm_row_current "
                          "WHERE domain = 'DM' AND usubjid = ?", [usubjid]).fetchone()[0]
    month, year = consent[:7], consent[:4]
    seqs = [r[0] for r in con.execute("SELECT row_number FROM raw.sdtm_row_current WHERE domain = 'AE' AND usubjid = ? "
                                      "ORDER BY row_number", [usubjid]).fetchall()]
    assert len(seqs) >= 1 and consent[8:10] != "01"
    con.execute("UPDATE raw.sdtm_row SET record = json_merge_patch(record, json_object('AESTDTC', ?, 'AEENDTC', NULL)) "
                "WHERE domain = 'AE' AND usubjid = ? AND row_number = ?", [month, usubjid, seqs[0]])
    map_participants(con, pseudonym_key=pt.key)
    person = con.execute("SELECT person_id FROM stage_omop.person WHERE person_source_value = ?",
                         [pseudonym(usubjid, pt.key)]).fetchone()[0]
    starts = [str(r[0]) for r in con.execute("SELECT condition_start_date FROM stage_omop.condition_occurrence "
                                             "WHERE person_id = ? AND condition_start_date < ?", [person, consent]).fetchall()]
    assert starts == []
    op = con.execute("SELECT observation_period_start_date FROM stage_omop.observation_period WHERE person_id = ?",
                     [person]).fetchone()[0]
    assert str(op) == consent[:10]
    assert consent[:10] in [str(r[0]) for r in con.execute(
        "SELECT condition_start_date FROM stage_omop.condition_occurrence WHERE person_id = ?", [person]).fetchall()]
    # ended on a full date before consent: it began before consent, so its start stays the month's first
    # day (the consent date put the start after the end: DQD's plausibleStartBeforeEnd blocked the publish)
    ended = f"{month}-01" if consent[8:10] > "01" else None
    con.execute("UPDATE raw.sdtm_row SET record = json_merge_patch(record, json_object('AEENDTC', ?)) "
                "WHERE domain = 'AE' AND usubjid = ? AND row_number = ?", [ended, usubjid, seqs[0]])
    map_participants(con, pseudonym_key=pt.key)
    assert con.execute("SELECT count(*) FROM stage_omop.condition_occurrence WHERE condition_start_date > "
                       "condition_end_date").fetchone()[0] == 0
    assert f"{month}-01" in [str(r[0]) for r in con.execute(
        "SELECT condition_start_date FROM stage_omop.condition_occurrence WHERE person_id = ?", [person]).fetchall()]
    # the year alone: the same; a month before consent's stays its first day
    before = f"{int(year) - 1}-12"
    con.execute("UPDATE raw.sdtm_row SET record = json_merge_patch(record, json_object('AESTDTC', ?)) "
                "WHERE domain = 'AE' AND usubjid = ? AND row_number = ?", [before, usubjid, seqs[0]])
    map_participants(con, pseudonym_key=pt.key)
    op = con.execute("SELECT observation_period_start_date FROM stage_omop.observation_period WHERE person_id = ?",
                     [person]).fetchone()[0]
    assert str(op) == f"{before}-01"


def test_a_roster_site_takes_a_zip_key_only_from_its_own_study_s_listing(con, tmp_path, pt):
    """Another study lists Mayo Clinic in Rochester at two zips; the seed study lists it once. Looked up
    in the id map, any study's zip key took site 001 to that study's Mayo, away from its own registry's."""
    _mayo_at_55905(con, tmp_path, pt, ["55905"], other_zips=["55905", "55902"])
    rows = con.execute("SELECT k.natural_key, count(*) FROM stage_omop.person p JOIN meta.omop_id_map k "
                       "ON k.table_name='care_site' AND k.id = p.care_site_id GROUP BY 1").fetchall()
    # the seed study's registry lists Mayo once: its key is the plain one; site 001 should be there
    assert rows == [("mayo clinic in rochester|rochester|minnesota|united states", 10)]
