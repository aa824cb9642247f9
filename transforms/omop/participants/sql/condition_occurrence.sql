-- AE -> condition_occurrence, natural key pseudonym|AE|AESEQ. Concept: a standard, valid Condition
-- concept whose name equals AEDECOD (case-insensitive; unique match only), else 0.
CREATE OR REPLACE TEMP TABLE _pt_ae AS
SELECT r.pseudonym || '|AE|' || pt_text(r.record, 'AESEQ') AS natural_key, r.owner, r.pseudonym, r.record,
       pt_text(r.record, 'AEDECOD') AS decod, pt_text(r.record, 'AESTDTC') AS st, pt_text(r.record, 'AEENDTC') AS en
FROM _pt_row r WHERE r.domain = 'AE';

-- @ids
CREATE OR REPLACE TEMP TABLE _pt_condition_occurrence AS
WITH by_name AS (
    SELECT lower(concept_name) AS lname, min(concept_id) AS concept_id
    FROM {vocab}.concept
    WHERE domain_id = 'Condition' AND standard_concept = 'S' AND invalid_reason IS NULL
    GROUP BY 1 HAVING count(*) = 1
)
SELECT m.id AS condition_occurrence_id, p.id AS person_id, coalesce(n.concept_id, 0) AS condition_concept_id,
       pt_date(a.st) AS condition_start_date, pt_ts(a.st) AS condition_start_datetime,
       pt_date(a.en) AS condition_end_date, pt_ts(a.en) AS condition_end_datetime,
       $crf AS condition_type_concept_id,
       (SELECT min(v.visit_occurrence_id) FROM _pt_visit_key v
        WHERE v.pseudonym = a.pseudonym AND pt_date(a.st) BETWEEN v.visit_start_date AND v.visit_end_date) AS visit_occurrence_id,
       a.decod AS condition_source_value, 0 AS condition_source_concept_id
FROM _pt_ae a
JOIN {meta}.omop_id_map m ON m.table_name = 'condition_occurrence' AND m.natural_key = a.natural_key
JOIN {meta}.omop_id_map p ON p.table_name = 'person' AND p.natural_key = a.pseudonym
LEFT JOIN by_name n ON n.lname = lower(a.decod)
WHERE pt_date(a.st) IS NOT NULL;
