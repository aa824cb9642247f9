"""Trial-level facts to ``metadata`` (OHDSI Clinical Trials WG: trial facts live in
``metadata``/``cdm_source``, no new tables).

Each row is one fact of one study: ``name`` is ``"<NCT id>:<fact>"`` with fact one of
``nct_id``, ``brief_title``, ``official_title``, ``overall_status``, ``study_type``, ``phase``
(one row per phase), ``enrollment_target`` (count in ``value_as_number``, ACTUAL/ESTIMATED in
``value_as_string``), ``start_date``/``primary_completion_date``/``completion_date``/
``last_update_post_date`` (``metadata_date``), ``lead_sponsor``, ``condition``,
``condition_mesh``, ``intervention``, ``intervention_mesh`` (mapped concept in
``value_as_concept_id``, 0 when unmapped) and ``arm_cohort`` (``value_as_number`` =
``cohort_definition_id``). ``metadata_concept_id`` is 0 (no verified concept per fact);
``metadata_type_concept_id`` is 32879 Registry when the vocabulary holds it, else 0.

Natural key ``<NCT id>|<fact>|<discriminator>``, owned by the study: re-mapping a study
replaces exactly its rows, a fact that disappeared from a newer version disappears here too.
"""

from __future__ import annotations

import duckdb

from schemas.omop.spec import check_identifier, quote
from transforms.omop._db import insert_from, sql_file
from transforms.omop.id_map import assign_ids

REGISTRY_TYPE_CONCEPT_ID = 32879  # Registry; shared reference/omop/key_concepts.csv


def map_metadata(con: duckdb.DuckDBPyConnection, schema: str, id_map_schema: str, vocab_schema: str | None = None) -> int:
    """Replace the metadata rows of the extracted studies (after concepts and cohort definitions)."""
    check_identifier(schema)
    con.execute(sql_file("metadata_stage.sql", meta=id_map_schema))
    con.execute("CREATE OR REPLACE TEMP TABLE _omop_metadata_keys AS "
                "SELECT natural_key, nct_id AS owner, nct_id AS first_seen FROM _trial_fact")
    assign_ids(con, id_map_schema, "metadata", "_omop_metadata_keys")
    con.execute(sql_file("metadata.sql", vocab=vocab_schema or schema, meta=id_map_schema), {"type_concept_id": REGISTRY_TYPE_CONCEPT_ID})
    con.execute(
        f"DELETE FROM {quote(schema)}.metadata WHERE metadata_id IN ("
        f"SELECT id FROM {quote(id_map_schema)}.omop_id_map "
        "WHERE table_name = 'metadata' AND owner IN (SELECT nct_id FROM _trial_study))"
    )
    return insert_from(con, schema, "metadata", "_omop_metadata")
