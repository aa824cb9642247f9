"""DM / DS / AE -> OMOP death (participants/sql/death.sql), the SQL twin of transforms/sites/death.py:
both take the same date on generated (synthetic) deliveries, the cause is the fatal AE's condition, and a
death goes when a newer delivery no longer says it, in the stage and in the published schema."""
import datetime as dt
import json
import shutil

from schemas.omop.ddl import create_omop_schema
from transforms.omop.participants import map_participants, pseudonym
from transforms.omop.participants.publish import clear_published_sites
from transforms.omop.publish import merge_stage
from transforms.sites.death import death_of
from transforms.sites.ingest import ingest_site_deliveries
from trialhouse.synth_site import generate_delivery


def _patch(con, usubjid, domain, where, **values):
    """Set (or, with None, remove) variables of the raw rows of one participant's domain."""
    con.execute(f"UPDATE raw.sdtm_row SET record = json_merge_patch(record, ?) WHERE usubjid = ? AND domain = ? AND {where}",
                [json.dumps(values), usubjid, domain])


def test_the_omop_mapping_takes_the_date_the_rule_takes(con, tmp_path, pt):
    """Generated deaths say it in DM, DS and a fatal AE; four are changed so each source in turn gives
    the date, one to a partial date alone, one to a partial date DS gives to the day. death_date is the
    rule's date; a partial one lies in its period, on no day before the participant's last data."""
    pt.prepare(con, tmp_path / "landing", participants=12, sites=1, seed=5, deaths=5)
    dead = [u for (u,) in con.execute("SELECT usubjid FROM raw.sdtm_row_current WHERE domain = 'DM' "
                                      "AND json_extract_string(record, 'DTHFL') = 'Y' ORDER BY usubjid").fetchall()]
    assert len(dead) == 5
    ds_only, ae_only, partial, dm_first, refined = dead

    def day_before(u, domain, var):
        value = con.execute(f"SELECT json_extract_string(record, '{var}') FROM raw.sdtm_row WHERE usubjid = ? "
                            f"AND domain = ? AND json_extract_string(record, '{var}') IS NOT NULL "
                            "ORDER BY 1 DESC LIMIT 1", [u, domain]).fetchone()[0]
        return (dt.date.fromisoformat(value[:10]) - dt.timedelta(days=1)).isoformat()

    # the generator dates all three alike: the later sources get an earlier date, so taking them first shows
    _patch(con, dm_first, "DS", "json_extract_string(record, 'DSDECOD') = 'DEATH'",
           DSSTDTC=day_before(dm_first, "DS", "DSSTDTC"))
    _patch(con, ds_only, "DM", "TRUE", DTHDTC=None)
    _patch(con, ds_only, "AE", "json_extract_string(record, 'AEOUT') = 'FATAL'", AEENDTC=day_before(ds_only, "AE", "AEENDTC"))
    _patch(con, ae_only, "DM", "TRUE", DTHDTC=None, DTHFL=None)
    _patch(con, ae_only, "DS", "json_extract_string(record, 'DSDECOD') = 'DEATH'", DSDECOD="LOST TO FOLLOW-UP")
    month = con.execute("SELECT json_extract_string(record, 'DTHDTC') FROM raw.sdtm_row WHERE usubjid = ? AND domain = 'DM'",
                        [partial]).fetchone()[0][:7]
    _patch(con, partial, "DM", "TRUE", DTHDTC=month)
    _patch(con, partial, "DS", "json_extract_string(record, 'DSDECOD') = 'DEATH'", DSDECOD="LOST TO FOLLOW-UP")
    _patch(con, partial, "AE", "json_extract_string(record, 'AEOUT') = 'FATAL'", AEOUT="NOT RECOVERED/NOT RESOLVED")
    # DM's month, DS's day within it (a day before the AE's): the day counts, from DS
    refined_day = day_before(refined, "DS", "DSSTDTC")
    _patch(con, refined, "DS", "json_extract_string(record, 'DSDECOD') = 'DEATH'", DSSTDTC=refined_day)
    _patch(con, refined, "DM", "TRUE", DTHDTC=refined_day[:7])
    map_participants(con, pseudonym_key=pt.key)

    rows: dict[str, dict[str, list[dict]]] = {}
    for u, d, rec in con.execute("SELECT usubjid, domain, record FROM raw.sdtm_row_current").fetchall():
        rows.setdefault(u, {}).setdefault(d, []).append(json.loads(rec))
    by_python = {pseudonym(u, pt.key): death_of(r) for u, r in rows.items()}
    by_sql = dict(con.execute("SELECT p.person_source_value, d.death_date FROM stage_omop.death d "
                              "JOIN stage_omop.person p USING (person_id)").fetchall())
    assert set(by_sql) == {k for k, v in by_python.items() if v is not None} == {pseudonym(u, pt.key) for u in dead}
    fields = {u: by_python[pseudonym(u, pt.key)].field for u in dead}
    assert [fields[u] for u in (ds_only, ae_only, partial, dm_first, refined)] == [
        "ds.DSSTDTC", "ae.AEENDTC", "dm.DTHDTC", "dm.DTHDTC", "ds.DSSTDTC"]
    assert by_python[pseudonym(refined, pt.key)].dtc == refined_day
    for u in dead:
        death, day = by_python[pseudonym(u, pt.key)], by_sql[pseudonym(u, pt.key)]
        if len(death.dtc) >= 10:
            assert day == dt.date.fromisoformat(death.dtc[:10]), u
        else:
            last = max(v[:10] for recs in rows[u].values() for r in recs for k, v in r.items()
                       if k.endswith("DTC") and k not in ("BRTHDTC", "DTHDTC") and v and v[:7] == month)
            assert day.isoformat()[:7] == month and day == max(dt.date.fromisoformat(last), day.replace(day=1)), u
    causes = con.execute("SELECT DISTINCT death_type_concept_id, cause_concept_id, cause_source_value, "
                         "cause_source_concept_id FROM stage_omop.death ORDER BY ALL").fetchall()
    # 4329847 Myocardial infarction, by AEDECOD; no cause where no AE was fatal
    assert causes == [(32809, 4329847, "MYOCARDIAL INFARCTION", 0), (32809, None, None, None)]
    assert con.execute("SELECT count(*) FROM stage_omop.death d JOIN stage_omop.observation_period o USING (person_id) "
                       "WHERE d.death_date NOT BETWEEN o.observation_period_start_date "
                       "AND o.observation_period_end_date").fetchone()[0] == 0


def test_a_death_a_newer_delivery_no_longer_says_goes_from_stage_and_published(con, tmp_path, pt):
    landing = tmp_path / "landing"
    pt.prepare(con, landing, participants=6, sites=1, seed=2, deaths=2)
    create_omop_schema(con, "omop")
    con.execute("CREATE TABLE batch AS SELECT 'NCT06668571' AS nct_id")

    def publish():
        map_participants(con, pseudonym_key=pt.key)
        clear_published_sites(con, "stage_omop", "omop")
        merge_stage(con, "stage_omop", "omop", "batch")
        return [con.execute(f"SELECT count(*) FROM {s}.death").fetchone()[0] for s in ("stage_omop", "omop")]

    assert publish() == [2, 2]
    assert publish() == [2, 2]  # no duplicates: death has no primary key for the merge to replace by
    # the site's next cut: the same participants, one death fewer (the same seed, deaths drawn anew)
    later = generate_delivery(tmp_path / "later", participants=6, sites=1, seed=2, deaths=1, cutoff="2026-07-31")[0]
    shutil.copytree(later, landing / "sites" / later.name)
    ingest_site_deliveries(con, landing, run_id="t2")
    assert publish() == [1, 1]
    assert con.execute("SELECT count(*) FROM omop.death d JOIN omop.person p USING (person_id)").fetchone()[0] == 1
