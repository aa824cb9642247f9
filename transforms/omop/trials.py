"""Map ClinicalTrials.gov study records to OMOP CDM v5.4 rows (sites, investigators, arms, trial facts).

Pure transform: reads the relation ``source`` (columns ``nct_id`` and ``payload``, API v2
JSON), writes the CDM tables of ``schema`` and the id map in ``id_map_schema``, nothing else.
The vocabulary must already be loaded in ``schema`` (or ``vocab_schema``) (``transforms.omop.vocabulary``).

Keyed so a re-run is a no-op: ids come from ``meta.omop_id_map``; shared rows (location,
care_site, provider) are replaced by id, study-owned rows (cohort_definition, metadata) are
replaced for the studies in ``source`` only, concept decisions by source code; all in one
transaction (or the caller's).
"""

from __future__ import annotations

import duckdb

from schemas.omop.ddl import create_omop_schema
from schemas.omop.spec import check_identifier, check_relation
from transforms.omop._db import sql_file, transaction
from transforms.omop.care_site import map_care_sites
from transforms.omop.cdm_source import map_cdm_source
from transforms.omop.cohort_definition import map_cohort_definitions
from transforms.omop.concept_mapping import map_concepts
from transforms.omop.id_map import ensure_id_map
from transforms.omop.location import map_locations
from transforms.omop.metadata import map_metadata
from transforms.omop.provider import map_providers

_TEMP_TABLES = (
    "_trial_payload", "_trial_study", "_trial_phase", "_trial_site", "_trial_site_contact", "_trial_official",
    "_trial_arm", "_trial_condition", "_trial_intervention", "_trial_mesh", "_trial_provider", "_trial_term",
    "_trial_term_use", "_trial_concept_choice", "_trial_cohort", "_trial_fact", "_omop_site_keys",
    "_omop_location", "_omop_care_site", "_omop_provider_keys", "_omop_provider", "_omop_stcm",
    "_omop_cohort_keys", "_omop_cohort_definition", "_omop_metadata_keys", "_omop_metadata", "_trial_source",
)


def _one_row_per_study(con: duckdb.DuckDBPyConnection, source: str) -> str:
    """`source` itself when it has one row per nct_id (a staged batch does), else a de-duplicated copy.

    The check reads keys only. De-duplicating inside the extract held every payload of the chunk in
    a hash table: with 5,000 studies that needed ~200 MB of DuckDB's 512 MB cap and failed late in a
    100,000-study run, once the staged tables had taken the rest."""
    if con.execute(f"SELECT count(*) = count(DISTINCT nct_id) FROM {source}").fetchone()[0]:
        return source
    con.execute(f"CREATE OR REPLACE TEMP TABLE _trial_source AS "
                f"SELECT DISTINCT ON (nct_id) nct_id, payload FROM {source} ORDER BY nct_id")
    return "_trial_source"


def map_trials(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str = "raw.ctgov_study_current",
    schema: str = "omop",
    id_map_schema: str = "meta",
    vocab_schema: str | None = None,
) -> dict[str, int]:
    """Map every study in ``source``; returns rows written per CDM table, in load order.

    ``vocab_schema`` (default ``schema``) is where the vocabulary tables are read, so a staging
    schema can be mapped against the published vocabulary instead of holding a second copy.
    """
    check_relation(source)
    check_identifier(schema)
    check_identifier(id_map_schema)
    vocab = check_identifier(vocab_schema or schema)
    create_omop_schema(con, schema)
    ensure_id_map(con, id_map_schema)
    counts: dict[str, int] = {}
    with transaction(con):
        con.execute(sql_file("trial_extract.sql", source=_one_row_per_study(con, source)))
        con.execute(sql_file("site_zip_key.sql", meta=id_map_schema))
        counts["location"] = map_locations(con, schema, id_map_schema, vocab)
        counts["care_site"] = map_care_sites(con, schema, id_map_schema)
        counts["provider"] = map_providers(con, schema, id_map_schema)
        counts["source_to_concept_map"] = map_concepts(con, schema, vocab)
        counts["cohort_definition"] = map_cohort_definitions(con, schema, id_map_schema)
        counts["metadata"] = map_metadata(con, schema, id_map_schema, vocab)
        counts["cdm_source"] = map_cdm_source(con, schema, vocab)
        for name in _TEMP_TABLES:
            con.execute(f"DROP TABLE IF EXISTS temp.main.{check_identifier(name)}")
    return counts
