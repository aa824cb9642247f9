-- Arm membership -> cohort. The arm is DM.ARM (the randomised assignment, intention to treat),
-- matched to the registry arm's cohort_definition through its natural key
-- '<NCT id>|arm|<normalised label>', or '<NCT id>|arm|<normalised label>|<label>' for an arm whose
-- normalised label another arm of the study shares (sql/cohort_definition_stage.sql): the exact
-- label first. A participant whose ARM names no registry arm, or only ambiguously, gets no cohort
-- row (the gate quarantines them first: transforms/ctgov/arm_labels.py).
-- Membership runs from first exposure (RFSTDTC, else consent) to the end of the participant's data.
CREATE OR REPLACE TEMP TABLE _pt_cohort AS
SELECT d.id AS cohort_definition_id, p.id AS subject_id,
       coalesce(pt_date(pt_text(s.record, 'RFSTDTC')), s.consent_date, s.start_date) AS cohort_start_date,
       greatest(coalesce(s.end_date, s.start_date),
                coalesce(pt_date(pt_text(s.record, 'RFSTDTC')), s.consent_date, s.start_date)) AS cohort_end_date
FROM _pt_subject s
JOIN {meta}.omop_id_map p ON p.table_name = 'person' AND p.natural_key = s.pseudonym
JOIN {meta}.omop_id_map d ON d.table_name = 'cohort_definition'
                         AND d.natural_key IN (s.nct_id || '|arm|' || pt_norm(pt_text(s.record, 'ARM')),
                                               s.nct_id || '|arm|' || pt_norm(pt_text(s.record, 'ARM'))
                                               || '|' || trim(pt_text(s.record, 'ARM')))
WHERE coalesce(pt_date(pt_text(s.record, 'RFSTDTC')), s.consent_date, s.start_date) IS NOT NULL
QUALIFY row_number() OVER (PARTITION BY p.id ORDER BY length(d.natural_key) DESC) = 1;
