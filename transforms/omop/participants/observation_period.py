"""One ``observation_period`` per participant: consent (or first data) to the last data date, so
every event of the participant falls inside it; type 32809 Case Report Form.
Natural key ``<pseudonym>|op`` (source rows ``_pt_op_src`` are built by ``person.sql``)."""
from __future__ import annotations

from transforms.omop.participants._common import CRF_TYPE, allocate, insert_spec, run_sql


def map_observation_period(con, schema: str, meta: str, vocab: str) -> int:
    allocate(con, meta, "observation_period", "_pt_op_src")
    run_sql(con, "observation_period.sql", {"crf": CRF_TYPE}, meta=meta, vocab=vocab)
    return insert_spec(con, schema, "observation_period", "_pt_observation_period")
