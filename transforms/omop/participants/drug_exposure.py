"""EX -> ``drug_exposure``; natural key ``<pseudonym>|EX|<EXSEQ>``.

KETAMINE has no verified concept (0 + drug_source_value), PLACEBO is the study's normal saline
(19079524); route concept 0 + route_source_value INTRAVENOUS; EXDOSE in ``quantity`` with EXDOSU in
``dose_unit_source_value`` (as the CT WG ETL does).
"""
from __future__ import annotations

from transforms.omop.participants._common import CRF_TYPE, allocate, insert_spec, run_sql


def map_drug_exposure(con, schema: str, meta: str, vocab: str) -> int:
    run_sql(con, "drug_exposure.sql", part=0, meta=meta, vocab=vocab)
    allocate(con, meta, "drug_exposure", "_pt_ex")
    run_sql(con, "drug_exposure.sql", {"crf": CRF_TYPE}, part=1, meta=meta, vocab=vocab)
    return insert_spec(con, schema, "drug_exposure", "_pt_drug_exposure")
