"""VS and unmapped QS results -> ``measurement``; natural key ``<pseudonym>|VS|<VSSEQ>`` /
``<pseudonym>|QS|<QSSEQ>``.

Each row is routed by the domain of its concept (DESIGN): the PHQ-9 total (3042932) is in the
Observation domain of the vocabulary and goes to ``observation``; PHQ-9 items have no verified
concept and stay here with concept 0 and the test code as source value. Units through UCUM concepts.
"""
from __future__ import annotations

from transforms.omop.participants._common import CRF_TYPE, allocate, insert_spec, run_sql


def map_measurement(con, schema: str, meta: str, vocab: str) -> int:
    run_sql(con, "measurement.sql", part=0, meta=meta, vocab=vocab)
    allocate(con, meta, "measurement", "_pt_measurement_src")
    run_sql(con, "measurement.sql", {"crf": CRF_TYPE}, part=1, meta=meta, vocab=vocab)
    return insert_spec(con, schema, "measurement", "_pt_measurement")
