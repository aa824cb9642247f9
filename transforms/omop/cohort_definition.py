"""Trial arms to ``cohort_definition`` (OHDSI Clinical Trials WG: an arm is a cohort definition,
its participants later ``cohort`` rows).

Link to the study, both ways: ``cohort_definition_name`` is ``"<NCT id>: <arm label>"``, and
each arm has a ``metadata`` row ``<NCT id>:arm_cohort`` whose ``value_as_number`` is the
``cohort_definition_id`` (see ``metadata.py``). The study's eligibility (sex, ages, healthy
volunteers, criteria text) goes to ``cohort_definition_syntax``: an arm's participants are the
eligible ones assigned to it. A study without arm groups (common for observational studies)
gets one ``"<NCT id>: Study population"`` definition so its eligibility still has a home.
``definition_type_concept_id`` and ``subject_concept_id`` are 0: no verified concept for them.

Natural key ``<NCT id>|arm|<normalised label>`` (or ``|population``), owned by the study; the exact
label follows (``...|<label>``) when another arm of the study normalises the same
(``transforms/ctgov/arm_labels.py``).
"""

from __future__ import annotations

import duckdb

from schemas.omop.spec import check_identifier, quote
from transforms.omop._db import insert_from, sql_file
from transforms.omop.id_map import assign_ids


def map_cohort_definitions(con: duckdb.DuckDBPyConnection, schema: str, id_map_schema: str) -> int:
    """Replace the cohort definitions of the extracted studies; returns rows written."""
    check_identifier(schema)
    con.execute(sql_file("cohort_definition_stage.sql"))
    con.execute("CREATE OR REPLACE TEMP TABLE _omop_cohort_keys AS "
                "SELECT natural_key, nct_id AS owner, nct_id AS first_seen FROM _trial_cohort")
    assign_ids(con, id_map_schema, "cohort_definition", "_omop_cohort_keys")
    con.execute(sql_file("cohort_definition.sql", meta=id_map_schema))
    con.execute(
        f"DELETE FROM {quote(schema)}.cohort_definition WHERE cohort_definition_id IN ("
        f"SELECT id FROM {quote(id_map_schema)}.omop_id_map "
        "WHERE table_name = 'cohort_definition' AND owner IN (SELECT nct_id FROM _trial_study))"
    )
    return insert_from(con, schema, "cohort_definition", "_omop_cohort_definition")
