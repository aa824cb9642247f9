-- Observation rows from three sources, one natural key scheme:
--   QS results whose concept is in the Observation domain   pseudonym|QS|QSSEQ
--   DS disposition events (PHUSE DSDECOD map)                pseudonym|DS|DSSEQ
--   AE severity and seriousness, linked to their condition   pseudonym|AE|AESEQ|AESEV / |AESER
-- The AE link uses the CDM v5.4 columns observation_event_id (= condition_occurrence_id) and
-- obs_event_field_concept_id (1147127, condition_occurrence.condition_occurrence_id) rather than
-- fact_relationship, which has no key of its own and so cannot be replaced per site or per row.
CREATE OR REPLACE TEMP TABLE _pt_observation_src AS
SELECT natural_key, owner, pseudonym, concept_id, dtc, value_num, CAST(NULL AS VARCHAR) AS value_text,
       unit_concept_id, unit AS unit_source, testcd AS source_value, concept_id AS source_concept_id,
       visitnum, CAST(NULL AS VARCHAR) AS event_key, value_text AS value_source, consent_date, CAST(NULL AS VARCHAR) AS en
FROM _pt_result_routed WHERE target = 'observation'
UNION ALL
SELECT r.pseudonym || '|DS|' || pt_text(r.record, 'DSSEQ'), r.owner, r.pseudonym, coalesce(d.concept_id, 0),
       pt_text(r.record, 'DSSTDTC'), NULL, pt_text(r.record, 'DSDECOD'), NULL, NULL,
       pt_text(r.record, 'DSDECOD'), 0, NULL, NULL, pt_text(r.record, 'DSTERM'), r.consent_date, NULL
FROM _pt_row r LEFT JOIN _pt_map d ON d.map = 'dsdecod' AND d.source_code = pt_text(r.record, 'DSDECOD')
WHERE r.domain = 'DS'
UNION ALL
SELECT a.natural_key || '|' || k.var, a.owner, a.pseudonym,
       CASE WHEN k.var = 'AESEV' THEN (SELECT concept_id FROM _pt_map WHERE map = 'aesev') ELSE 0 END,
       a.st, NULL, pt_text(a.record, k.var), NULL, NULL, k.var, 0, NULL, a.natural_key, pt_text(a.record, k.var), a.consent_date, a.en
FROM _pt_ae a, (VALUES ('AESEV'), ('AESER')) k(var)
WHERE pt_text(a.record, k.var) IS NOT NULL;

-- @ids
CREATE OR REPLACE TEMP TABLE _pt_observation AS
SELECT m.id AS observation_id, p.id AS person_id, o.concept_id AS observation_concept_id,
       pt_start(o.dtc, o.consent_date, o.en) AS observation_date, pt_ts(o.dtc) AS observation_datetime,
       $crf AS observation_type_concept_id, o.value_num AS value_as_number, o.value_text AS value_as_string,
       o.unit_concept_id, coalesce(v.visit_occurrence_id, c.visit_occurrence_id) AS visit_occurrence_id,
       o.source_value AS observation_source_value, o.source_concept_id AS observation_source_concept_id,
       o.unit_source AS unit_source_value, o.value_source AS value_source_value,
       e.id AS observation_event_id,
       CASE WHEN e.id IS NOT NULL THEN (SELECT concept_id FROM _pt_map WHERE map = 'link'
                                        AND source_code = 'condition_occurrence') END AS obs_event_field_concept_id
FROM _pt_observation_src o
JOIN {meta}.omop_id_map m ON m.table_name = 'observation' AND m.natural_key = o.natural_key
JOIN {meta}.omop_id_map p ON p.table_name = 'person' AND p.natural_key = o.pseudonym
LEFT JOIN _pt_visit_key v ON v.pseudonym = o.pseudonym AND v.visitnum = o.visitnum
LEFT JOIN {meta}.omop_id_map e ON e.table_name = 'condition_occurrence' AND e.natural_key = o.event_key
LEFT JOIN _pt_condition_occurrence c ON c.condition_occurrence_id = e.id
WHERE pt_start(o.dtc, o.consent_date, o.en) IS NOT NULL;
