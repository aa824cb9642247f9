"""SV -> ``visit_occurrence``; natural key ``<pseudonym>|SV|<VISITNUM>`` (SDTM SV has no --SEQ).

Visit concept Outpatient Visit (9202) for every protocol visit, source value the PHUSE visit-map key
``EPOCH:VISIT``. Also builds ``_pt_visit_key``, through which EX/VS/QS rows find their visit by
VISITNUM and AE rows by date.
"""
from __future__ import annotations

from transforms.omop.participants._common import CRF_TYPE, allocate, insert_spec, run_sql


def map_visit_occurrence(con, schema: str, meta: str, vocab: str) -> int:
    run_sql(con, "visit_occurrence.sql", part=0, meta=meta, vocab=vocab)
    allocate(con, meta, "visit_occurrence", "_pt_sv")
    run_sql(con, "visit_occurrence.sql", {"crf": CRF_TYPE}, part=1, meta=meta, vocab=vocab)
    return insert_spec(con, schema, "visit_occurrence", "_pt_visit_occurrence")
