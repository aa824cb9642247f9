-- Death: one row per participant whom DM (DTHFL = Y or DTHDTC), a DS DEATH or a FATAL AE says died.
-- The SQL twin of transforms/sites/death.py (death_of): the date from DM.DTHDTC, else the earliest
-- DS DEATH DSSTDTC, else the earliest FATAL AE's AEENDTC, taken at the most precise any source gives
-- it; the gate holds a participant said to have died with none of them (completeness.death_date) or
-- with data dated after it (plausibility.after_death).
-- Cause: the fatal AE whose end gives the earliest date (then the lowest AESEQ), as its condition maps
-- (OHDSI CT WG docs/death.md: cause from the AE with AEOUT = FATAL).
CREATE OR REPLACE TEMP TABLE _pt_death AS
WITH ds AS (
    SELECT pseudonym, min(pt_text(record, 'DSSTDTC')) AS dtc
    FROM _pt_row WHERE domain = 'DS' AND upper(pt_text(record, 'DSDECOD')) = 'DEATH' GROUP BY pseudonym
),
ae AS (
    SELECT a.pseudonym, min(a.en) AS dtc,
           arg_min(c.condition_concept_id, (a.en IS NULL, a.en, TRY_CAST(pt_text(a.record, 'AESEQ') AS INTEGER))) AS cause_concept_id,
           arg_min(a.decod, (a.en IS NULL, a.en, TRY_CAST(pt_text(a.record, 'AESEQ') AS INTEGER))) AS cause_source_value
    FROM _pt_ae a
    LEFT JOIN {meta}.omop_id_map m ON m.table_name = 'condition_occurrence' AND m.natural_key = a.natural_key
    LEFT JOIN _pt_condition_occurrence c ON c.condition_occurrence_id = m.id
    WHERE upper(pt_text(a.record, 'AEOUT')) = 'FATAL'
    GROUP BY a.pseudonym
),
chosen AS (
    SELECT s.pseudonym, s.end_date,
           coalesce(pt_text(s.record, 'DTHDTC'), ds.dtc, ae.dtc) AS dtc, ae.cause_concept_id, ae.cause_source_value
    FROM _pt_subject s
    LEFT JOIN ds USING (pseudonym)
    LEFT JOIN ae USING (pseudonym)
    WHERE upper(pt_text(s.record, 'DTHFL')) = 'Y' OR pt_text(s.record, 'DTHDTC') IS NOT NULL
       OR ds.pseudonym IS NOT NULL OR ae.pseudonym IS NOT NULL
),
-- Every date a source gives (refine() in death.py): the chosen date, given more precisely by any
-- source, is taken at the most precise, then earliest, then the sources' order.
given AS (
    SELECT pseudonym, pt_text(record, 'DTHDTC') AS dtc, 0 AS ord FROM _pt_subject
    UNION ALL
    SELECT pseudonym, pt_text(record, 'DSSTDTC'), 1 FROM _pt_row WHERE domain = 'DS' AND upper(pt_text(record, 'DSDECOD')) = 'DEATH'
    UNION ALL
    SELECT pseudonym, en, 2 FROM _pt_ae WHERE upper(pt_text(record, 'AEOUT')) = 'FATAL'
),
died AS (
    SELECT c.pseudonym, c.end_date, c.cause_concept_id, c.cause_source_value,
           coalesce(arg_min(g.dtc, (-length(g.dtc), g.dtc, g.ord)), c.dtc) AS dtc
    FROM chosen c
    LEFT JOIN given g ON g.pseudonym = c.pseudonym AND starts_with(g.dtc, c.dtc)
    GROUP BY c.pseudonym, c.end_date, c.cause_concept_id, c.cause_source_value, c.dtc
)
SELECT p.id AS person_id,
       -- A partial date is the earliest day of its period on which the participant was no longer seen
       -- alive: its first day, or their last data date within the period. DQD's convention (the last day
       -- of the period) can fall after the delivery's cut-off, even after the run.
       CASE WHEN length(d.dtc) >= 10 THEN pt_date(d.dtc)
            ELSE greatest(pt_date(d.dtc), least(d.end_date, CASE length(d.dtc)
                 WHEN 4 THEN make_date(CAST(d.dtc AS INTEGER), 12, 31) ELSE last_day(pt_date(d.dtc)) END)) END AS death_date,
       pt_ts(d.dtc) AS death_datetime,
       $crf AS death_type_concept_id,
       d.cause_concept_id, d.cause_source_value,
       CASE WHEN d.cause_source_value IS NOT NULL THEN 0 END AS cause_source_concept_id
FROM died d
JOIN {meta}.omop_id_map p ON p.table_name = 'person' AND p.natural_key = d.pseudonym
WHERE pt_date(d.dtc) IS NOT NULL;
