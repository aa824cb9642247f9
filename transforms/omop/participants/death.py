"""DM / DS / AE -> ``death``: one row per participant who died (the rule is ``transforms/sites/death.py``,
this is its SQL twin). Type 32809 Case Report Form; cause from the fatal AE's condition concept.

``death`` has no primary key: its rows are replaced per person (``_common.clear_sites``, and here for a
participant who moved site), as ``cohort``'s are. A participant said to have died without any date is
held by the gate before this runs (``completeness.death_date``), so no row is left without its
required ``death_date``.
"""
from __future__ import annotations

from schemas.omop.spec import quote
from transforms.omop.participants._common import CRF_TYPE, insert_spec, run_sql


def map_death(con, schema: str, meta: str, vocab: str) -> int:
    run_sql(con, "death.sql", {"crf": CRF_TYPE}, meta=meta, vocab=vocab)
    con.execute(f"DELETE FROM {quote(schema)}.death WHERE person_id IN (SELECT person_id FROM _pt_death)")
    return insert_spec(con, schema, "death", "_pt_death")
