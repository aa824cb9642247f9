"""Site participant data (SDTM rows in raw) -> OMOP CDM v5.4 person-level tables.

Pure transform over the connection it is given: reads ``source_rows`` (raw.sdtm_row_current shape:
delivery_key, delivery_id, nct_id, site_id, domain, row_number, usubjid, record JSON) and
``rosters`` (raw.site_roster_current shape), writes the CDM tables of ``schema`` and stable ids in
``id_map_schema``.omop_id_map, nothing else. One module per target table; OHDSI Clinical Trials WG
conventions (DESIGN.md "OMOP conventions for trials"); every CRF row has type concept 32809.

Replacement unit: the site. Every participant row is owned by '<NCT id>|site:<site id>' in the id
map; mapping a site first deletes that site's rows from ``schema``, then writes the current
delivery's, so a superseding delivery replaces the site's rows whole and reloading the same
delivery rewrites identical rows under identical ids (a no-op). ``publish.clear_published_sites``
does the same for the published schema before the lead's by-key merge.

Prerequisites: the vocabulary (in ``vocab_schema``) and the study's registry mapping
(``transforms.omop.trials.map_trials``) in ``schema``'s id map, so arms have cohort_definitions.
"""
from __future__ import annotations

import duckdb
import pandas as pd

from schemas.omop.ddl import create_omop_schema
from schemas.omop.spec import check_identifier, check_relation
from transforms.omop._db import reset_cuts, transaction
from transforms.omop.id_map import ensure_id_map
from transforms.omop.participants._common import CONCEPTS_CSV, clear_sites, run_sql
from transforms.omop.participants.cohort import map_cohort
from transforms.omop.participants.condition_occurrence import map_condition_occurrence
from transforms.omop.participants.death import map_death
from transforms.omop.participants.drug_exposure import map_drug_exposure
from transforms.omop.participants.measurement import map_measurement
from transforms.omop.participants.observation import map_observation
from transforms.omop.participants.observation_period import map_observation_period
from transforms.omop.participants.person import map_person
from transforms.omop.participants.pseudonym import pseudonym
from transforms.omop.participants.site import map_sites
from transforms.omop.participants.visit_occurrence import map_visit_occurrence

__all__ = ["map_participants", "pseudonym"]

_TEMP = ("_pt_owner", "_pt_src", "_pt_map", "_pt_pseudonym", "_pt_subject", "_pt_keys",
         "_pt_person_src", "_pt_person", "_pt_op_src", "_pt_observation_period", "_pt_sv", "_pt_visit_occurrence",
         "_pt_visit_key", "_pt_ex", "_pt_drug_exposure", "_pt_result", "_pt_result_routed", "_pt_measurement_src",
         "_pt_measurement", "_pt_ae", "_pt_condition_occurrence", "_pt_death", "_pt_observation_src", "_pt_observation",
         "_pt_cohort", "_pt_no_exclusions", "_trial_site", "_trial_site_contact", "_trial_official",
         "_omop_site_keys", "_omop_location", "_omop_care_site", "_trial_provider", "_omop_provider_keys",
         "_omop_provider")
_STEPS = (("person", map_person), ("observation_period", map_observation_period),
          ("visit_occurrence", map_visit_occurrence), ("drug_exposure", map_drug_exposure),
          ("measurement", map_measurement), ("condition_occurrence", map_condition_occurrence),
          ("death", map_death), ("observation", map_observation), ("cohort", map_cohort))


def map_participants(
    con: duckdb.DuckDBPyConnection,
    *,
    schema: str = "stage_omop",
    vocab_schema: str = "omop",
    id_map_schema: str = "meta",
    pseudonym_key: bytes,
    source_rows: str = "raw.sdtm_row_current",
    rosters: str = "raw.site_roster_current",
    exclude: str | None = None,
) -> dict[str, int]:
    """Map the participants of every site in ``source_rows``; returns rows written per table.

    ``exclude``: relation (delivery_key, usubjid, domain, row_number) of rows the gate held back
    (``expectations.site_gate``); they are left out. A participant without a DM row maps nothing.
    """
    for name in (schema, vocab_schema, id_map_schema):
        check_identifier(name)
    check_relation(source_rows)
    check_relation(rosters)
    create_omop_schema(con, schema)
    ensure_id_map(con, id_map_schema)
    ids = {"meta": id_map_schema, "vocab": vocab_schema}
    counts: dict[str, int] = {}
    reset_cuts(con)  # the gate reports the cuts of this mapping only (transforms.omop._db.note_cuts)
    with transaction(con):
        if exclude is None:
            con.execute("CREATE OR REPLACE TEMP TABLE _pt_no_exclusions (delivery_key BIGINT, usubjid VARCHAR, "
                        "domain VARCHAR, row_number INTEGER)")
        run_sql(con, "extract.sql", {"concepts": str(CONCEPTS_CSV)}, source=source_rows,
                exclude=check_relation(exclude) if exclude else "_pt_no_exclusions")
        _register_pseudonyms(con, pseudonym_key)
        run_sql(con, "subjects.sql")
        clear_sites(con, schema, id_map_schema, "_pt_owner")
        counts.update(map_sites(con, schema, id_map_schema, vocab_schema, rosters))
        for table, step in _STEPS:
            counts[table] = step(con, schema, **ids)
        con.execute("DROP VIEW IF EXISTS temp.main._pt_row")
        for name in _TEMP:
            con.execute(f"DROP TABLE IF EXISTS temp.main.{check_identifier(name)}")
    return counts


def _register_pseudonyms(con: duckdb.DuckDBPyConnection, key: bytes) -> None:
    """Pseudonyms are computed here, not in SQL: DuckDB has no HMAC, and the key must not be bound
    into any statement that could end up in a log or a profile."""
    subjects = [r[0] for r in con.execute("SELECT DISTINCT usubjid FROM _pt_src WHERE domain = 'DM'").fetchall()]
    frame = pd.DataFrame({"usubjid": subjects, "pseudonym": [pseudonym(u, key) for u in subjects]},
                         columns=["usubjid", "pseudonym"]).astype(str)
    con.register("_pt_pseudonym_in", frame)
    try:
        # Typed by cast: with no participant left (all held by the gate) the empty frame's columns
        # came through as INTEGER, and joining them to the id map's keys failed to cast.
        con.execute("CREATE OR REPLACE TEMP TABLE _pt_pseudonym AS SELECT CAST(usubjid AS VARCHAR) AS usubjid, "
                    "CAST(pseudonym AS VARCHAR) AS pseudonym FROM _pt_pseudonym_in")
    finally:
        con.unregister("_pt_pseudonym_in")
