-- AE -> condition_occurrence, natural key pseudonym|AE|AESEQ. Concept: a standard, valid Condition
-- concept whose name equals AEDECOD (case-insensitive; unique match only), else 0.
CREATE OR REPLACE TEMP TABLE _pt_ae AS
SELECT r.pseudonym || '|AE|' || pt_text(r.record, 'AESEQ') AS natural_key, r.owner, r.pseudonym, r.record, r.consent_date,
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
       pt_start(a.st, a.consent_date, a.en) AS condition_start_date, pt_ts(a.st) AS condition_start_datetime,
       -- A partial end (2025-03) is the earliest day of its period not before the start: its first day
       -- came before a start in the same month, which failed DQD's plausibleStartBeforeEnd and blocked
       -- the publish. An end whose period lies wholly before the start the gate holds
       -- (plausibility.end_before_start).
       CASE WHEN length(a.en) < 10 THEN greatest(pt_date(a.en), pt_start(a.st, a.consent_date, a.en)) ELSE pt_date(a.en) END AS condition_end_date,
       pt_end_ts(a.en, a.st) AS condition_end_datetime,
       $crf AS condition_type_concept_id,
       -- The visit under way at the AE's start: several visits can share its day (an infusion visit and
       -- a follow-up), and the lowest id was taken, whichever it was.
       (SELECT v.visit_occurrence_id FROM _pt_visit_key v
        WHERE v.pseudonym = a.pseudonym AND pt_start(a.st, a.consent_date, a.en) BETWEEN v.visit_start_date AND v.visit_end_date
        ORDER BY coalesce(pt_ts(a.st) BETWEEN v.visit_start_datetime AND v.visit_end_datetime, false) DESC,
                 v.visit_occurrence_id
        LIMIT 1) AS visit_occurrence_id,
       a.decod AS condition_source_value, 0 AS condition_source_concept_id
FROM _pt_ae a
JOIN {meta}.omop_id_map m ON m.table_name = 'condition_occurrence' AND m.natural_key = a.natural_key
JOIN {meta}.omop_id_map p ON p.table_name = 'person' AND p.natural_key = a.pseudonym
LEFT JOIN by_name n ON n.lname = lower(a.decod)
WHERE pt_start(a.st, a.consent_date, a.en) IS NOT NULL;
