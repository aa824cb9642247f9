"""QS results in the Observation domain, DS disposition and AE severity/seriousness -> ``observation``.

DS: the PHUSE DSDECOD map (completed -> 40482840, any other reason -> 4087907 Patient withdrawn from
trial) with DSDECOD as value_as_string. AE severity (concept 4077563 Severity) and seriousness
(concept 0, source value AESER) point at their condition through observation_event_id +
obs_event_field_concept_id 1147127 (CDM v5.4), not fact_relationship: that table has no key, so
its rows could not be replaced per site.
"""
from __future__ import annotations

from transforms.omop.participants._common import CRF_TYPE, allocate, insert_spec, run_sql


def map_observation(con, schema: str, meta: str, vocab: str) -> int:
    run_sql(con, "observation.sql", part=0, meta=meta, vocab=vocab)
    allocate(con, meta, "observation", "_pt_observation_src")
    run_sql(con, "observation.sql", {"crf": CRF_TYPE}, part=1, meta=meta, vocab=vocab)
    return insert_spec(con, schema, "observation", "_pt_observation")
