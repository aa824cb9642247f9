-- EX -> drug_exposure, natural key pseudonym|EX|EXSEQ. EXDOSE goes to quantity (the CT WG ETL
-- does the same; the unit stays in dose_unit_source_value), EXTRT/EXROUTE through source_concepts.csv.
-- A zero dose (SDTM's convention for placebo: EXDOSE 0 of the active drug) is no quantity of the
-- drug recorded (saline), so it is left NULL rather than published as an implausible 0 (DQD
-- plausibleValueLow on drug_exposure.quantity).
CREATE OR REPLACE TEMP TABLE _pt_ex AS
SELECT r.pseudonym || '|EX|' || pt_text(r.record, 'EXSEQ') AS natural_key, r.owner, r.pseudonym, r.record, r.consent_date,
       pt_text(r.record, 'EXSTDTC') AS st, coalesce(pt_text(r.record, 'EXENDTC'), pt_text(r.record, 'EXSTDTC')) AS en
FROM _pt_row r WHERE r.domain = 'EX';

-- @ids
CREATE OR REPLACE TEMP TABLE _pt_drug_exposure AS
SELECT m.id AS drug_exposure_id, p.id AS person_id, coalesce(d.concept_id, 0) AS drug_concept_id,
       pt_start(x.st, x.consent_date, x.en) AS drug_exposure_start_date, pt_ts(x.st) AS drug_exposure_start_datetime,
       greatest(pt_date(x.en), pt_start(x.st, x.consent_date, x.en)) AS drug_exposure_end_date, pt_end_ts(x.en, x.st) AS drug_exposure_end_datetime,
       $crf AS drug_type_concept_id,
       nullif(pt_num(pt_text(x.record, 'EXDOSE')), 0) AS quantity,
       coalesce(rt.concept_id, 0) AS route_concept_id,
       v.visit_occurrence_id,
       pt_text(x.record, 'EXTRT') AS drug_source_value, 0 AS drug_source_concept_id,
       pt_text(x.record, 'EXROUTE') AS route_source_value,
       pt_text(x.record, 'EXDOSU') AS dose_unit_source_value
FROM _pt_ex x
JOIN {meta}.omop_id_map m ON m.table_name = 'drug_exposure' AND m.natural_key = x.natural_key
JOIN {meta}.omop_id_map p ON p.table_name = 'person' AND p.natural_key = x.pseudonym
LEFT JOIN _pt_map d ON d.map = 'extrt' AND d.source_code = upper(pt_text(x.record, 'EXTRT'))
LEFT JOIN _pt_map rt ON rt.map = 'exroute' AND rt.source_code = upper(pt_text(x.record, 'EXROUTE'))
LEFT JOIN _pt_visit_key v ON v.pseudonym = x.pseudonym AND v.visitnum = pt_text(x.record, 'VISITNUM')
WHERE pt_start(x.st, x.consent_date, x.en) IS NOT NULL;
