"""Arm membership -> ``cohort`` rows against the arm's ``cohort_definition`` (OHDSI CT WG: an arm is
a cohort definition). DM.ARM is matched to the registry arm label by the definition's natural key
``<NCT id>|arm|<normalised label>``, so ``map_trials`` must have mapped the study first.
``cohort`` has no primary key; rows are replaced per person (``_common.clear_sites``)."""
from __future__ import annotations

from schemas.omop.spec import quote
from transforms.omop.participants._common import insert_spec, run_sql


def map_cohort(con, schema: str, meta: str, vocab: str) -> int:
    run_sql(con, "cohort.sql", meta=meta, vocab=vocab)
    con.execute(f"DELETE FROM {quote(schema)}.cohort WHERE subject_id IN (SELECT subject_id FROM _pt_cohort)")
    return insert_spec(con, schema, "cohort", "_pt_cohort")
