"""The one ``cdm_source`` row describing this warehouse.

Rewritten only when something in it changes, so that ``cdm_release_date`` (today, when it is
rewritten) does not turn a no-op reload into a change. ``source_release_date`` is the latest
``lastUpdatePostDate`` mapped so far (the publish raises it to the newest participant event,
``transforms.omop.publish.cover_events``); ``vocabulary_version`` comes from the vocabulary table's
``None`` row. ``cdm_version_concept_id`` is the vocabulary's concept for CDM v5.4, found as the spec
says (``VOCABULARY_ID = 'CDM' AND CONCEPT_CLASS = 'CDM'``), so an Athena download gives it; 0 when
the vocabulary has none (the bundled demo subset), never an id written into the code.
"""

from __future__ import annotations

import datetime as dt

import duckdb

from schemas.omop.spec import check_identifier, quote
from transforms.omop.vocabulary import vocabulary_version

DESCRIPTION = {
    "cdm_source_name": "TrialHouse: ClinicalTrials.gov study records in OMOP CDM v5.4",
    "cdm_source_abbreviation": "TrialHouse",
    "cdm_holder": "TrialHouse",
    "source_description": (
        "Trial registry records (ClinicalTrials.gov API v2) mapped following the OHDSI Clinical Trials "
        "working group conventions: sites in location/care_site, investigators in provider, arms in "
        "cohort_definition, trial facts in metadata; and trial sites' participant data (SDTM deliveries) "
        "in person, observation_period, visit_occurrence, drug_exposure, condition_occurrence, "
        "measurement, observation and cohort."
    ),
    "source_documentation_reference": "https://clinicaltrials.gov/data-api/api",
    "cdm_etl_reference": "trialhouse transforms/omop",
    "cdm_version": "v5.4",
    "cdm_version_concept_id": 0,
}
_COLUMNS = (
    "cdm_source_name", "cdm_source_abbreviation", "cdm_holder", "source_description",
    "source_documentation_reference", "cdm_etl_reference", "source_release_date", "cdm_release_date",
    "cdm_version", "cdm_version_concept_id", "vocabulary_version",
)


def map_cdm_source(con: duckdb.DuckDBPyConnection, schema: str, vocab_schema: str | None = None) -> int:
    """Write the row if it differs from the stored one; returns rows written (0 or 1)."""
    check_identifier(schema)
    table = f"{quote(schema)}.cdm_source"
    batch_latest = con.execute("SELECT max(TRY_CAST(last_update_raw AS DATE)) FROM _trial_study").fetchone()[0]
    existing = con.execute(f"SELECT {', '.join(_COLUMNS)} FROM {table}").fetchall()
    old = dict(zip(_COLUMNS, existing[0])) if len(existing) == 1 else None
    dates = [d for d in (batch_latest, old and old["source_release_date"]) if d is not None]
    new = dict(DESCRIPTION)
    new["source_release_date"] = max(dates) if dates else dt.date.today()
    new["vocabulary_version"] = vocabulary_version(con, vocab_schema or schema) or "unknown"
    new["cdm_version_concept_id"] = cdm_version_concept(con, vocab_schema or schema)
    if old is not None and all(old[k] == new[k] for k in new):
        return 0
    new["cdm_release_date"] = dt.date.today()
    con.execute(f"DELETE FROM {table}")
    con.execute(
        f"INSERT INTO {table} ({', '.join(_COLUMNS)}) VALUES ({', '.join('$' + c for c in _COLUMNS)})",
        new,
    )
    return 1


def cdm_version_concept(con: duckdb.DuckDBPyConnection, vocab_schema: str) -> int:
    """The CDM vocabulary's valid concept for version 5.4 ("OMOP CDM Version 5.4.0"), or 0."""
    check_identifier(vocab_schema)
    row = con.execute(
        f"SELECT min(concept_id) FROM {quote(vocab_schema)}.concept WHERE vocabulary_id = 'CDM' "
        "AND concept_class_id = 'CDM' AND invalid_reason IS NULL "
        "AND regexp_matches(concept_name || ' ' || concept_code, '(^|[^0-9.])5\\.4([^0-9]|$)')"
    ).fetchone()
    return row[0] if row and row[0] is not None else 0
