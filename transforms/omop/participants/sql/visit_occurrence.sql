-- SV -> visit_occurrence, natural key pseudonym|SV|VISITNUM. Source value is the PHUSE visit-map
-- key EPOCH:VISIT; the visit concept is Outpatient Visit (see source_concepts.csv).
CREATE OR REPLACE TEMP TABLE _pt_sv AS
SELECT r.pseudonym || '|SV|' || pt_text(r.record, 'VISITNUM') AS natural_key, r.owner, r.pseudonym,
       pt_text(r.record, 'VISITNUM') AS visitnum,
       concat_ws(':', pt_text(r.record, 'EPOCH'), pt_text(r.record, 'VISIT')) AS visit_source_value,
       pt_text(r.record, 'SVSTDTC') AS st, coalesce(pt_text(r.record, 'SVENDTC'), pt_text(r.record, 'SVSTDTC')) AS en,
       r.nct_id, r.site_id, r.consent_date
FROM _pt_row r WHERE r.domain = 'SV';

-- @ids
CREATE OR REPLACE TEMP TABLE _pt_visit_occurrence AS
SELECT m.id AS visit_occurrence_id, p.id AS person_id, v.concept_id AS visit_concept_id,
       pt_start(s.st, s.consent_date, s.en) AS visit_start_date, pt_ts(s.st) AS visit_start_datetime,
       greatest(pt_date(s.en), pt_start(s.st, s.consent_date, s.en)) AS visit_end_date, pt_end_ts(s.en, s.st) AS visit_end_datetime,
       $crf AS visit_type_concept_id, c.id AS care_site_id,
       s.visit_source_value, 0 AS visit_source_concept_id
FROM _pt_sv s
JOIN {meta}.omop_id_map m ON m.table_name = 'visit_occurrence' AND m.natural_key = s.natural_key
JOIN {meta}.omop_id_map p ON p.table_name = 'person' AND p.natural_key = s.pseudonym
JOIN _pt_map v ON v.map = 'visit' AND v.source_code = '*'
LEFT JOIN _trial_site ts ON ts.nct_id = s.nct_id AND ts.site_id = s.site_id
LEFT JOIN {meta}.omop_id_map c ON c.table_name = 'care_site' AND c.natural_key = ts.site_key
WHERE pt_start(s.st, s.consent_date, s.en) IS NOT NULL;

-- Visit of a row: by VISITNUM, else the participant's visit whose dates contain the row's date.
CREATE OR REPLACE TEMP TABLE _pt_visit_key AS
SELECT s.pseudonym, s.visitnum, o.visit_occurrence_id, o.visit_start_date, o.visit_end_date,
       o.visit_start_datetime, o.visit_end_datetime
FROM _pt_sv s JOIN {meta}.omop_id_map m ON m.table_name = 'visit_occurrence' AND m.natural_key = s.natural_key
JOIN _pt_visit_occurrence o ON o.visit_occurrence_id = m.id;
