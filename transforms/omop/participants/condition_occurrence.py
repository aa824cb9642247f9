"""AE -> ``condition_occurrence``; natural key ``<pseudonym>|AE|<AESEQ>``.

Concept: a standard Condition concept whose name equals AEDECOD (unique, case-insensitive match in
the loaded vocabulary), else 0; AEDECOD is the source value. Severity and seriousness are linked
``observation`` rows (``observation.py``).
"""
from __future__ import annotations

from transforms.omop.participants._common import CRF_TYPE, allocate, insert_spec, run_sql


def map_condition_occurrence(con, schema: str, meta: str, vocab: str) -> int:
    run_sql(con, "condition_occurrence.sql", part=0, meta=meta, vocab=vocab)
    allocate(con, meta, "condition_occurrence", "_pt_ae")
    run_sql(con, "condition_occurrence.sql", {"crf": CRF_TYPE}, part=1, meta=meta, vocab=vocab)
    return insert_spec(con, schema, "condition_occurrence", "_pt_condition_occurrence")
