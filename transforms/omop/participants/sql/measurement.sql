-- VS and QS results. Each row's concept decides its table (DESIGN: route by domain_id): QS rows
-- whose concept is in the Observation domain go to observation.sql; unmapped (0) rows stay here.
CREATE OR REPLACE TEMP TABLE _pt_result AS
WITH x AS (
    -- one JSON parse per row: the same positions for VS and QS variables
    SELECT r.pseudonym, r.owner, r.domain, r.consent_date,
           list_transform(json_extract_string(r.record, ['$.VSSEQ', '$.VSTESTCD', '$.VSSTRESN', '$.VSSTRESC',
               '$.VSORRES', '$.VSSTRESU', '$.VSDTC', '$.VISITNUM']), v -> nullif(trim(v), '')) AS v
    FROM _pt_row r WHERE r.domain = 'VS'
    UNION ALL
    SELECT r.pseudonym, r.owner, r.domain, r.consent_date,
           list_transform(json_extract_string(r.record, ['$.QSSEQ', '$.QSTESTCD', '$.QSSTRESN', '$.QSSTRESC',
               '$.QSORRES', '$.QSSTRESU', '$.QSDTC', '$.VISITNUM']), v -> nullif(trim(v), '')) AS v
    FROM _pt_row r WHERE r.domain = 'QS'
)
SELECT pseudonym || '|' || domain || '|' || v[1] AS natural_key, owner, pseudonym, domain,
       v[2] AS testcd, pt_num(v[3]) AS value_num, coalesce(v[4], v[5]) AS value_text, v[6] AS unit,
       v[7] AS dtc, v[8] AS visitnum, consent_date
FROM x;

CREATE OR REPLACE TEMP TABLE _pt_result_routed AS
-- A unit given but not mapped is concept 0 (unit_source_value keeps it); no unit at all stays NULL.
SELECT x.*, coalesce(c.concept_id, 0) AS concept_id,
       CASE WHEN x.unit IS NOT NULL THEN coalesce(u.concept_id, 0) END AS unit_concept_id,
       CASE WHEN coalesce(c.concept_id, 0) <> 0 AND vc.domain_id = 'Observation' THEN 'observation'
            ELSE 'measurement' END AS target
FROM _pt_result x
LEFT JOIN _pt_map c ON c.map = lower(x.domain) || 'testcd' AND c.source_code = x.testcd
LEFT JOIN {vocab}.concept vc ON vc.concept_id = c.concept_id
LEFT JOIN _pt_map u ON u.map = 'unit' AND u.source_code = x.unit;

CREATE OR REPLACE TEMP TABLE _pt_measurement_src AS SELECT * FROM _pt_result_routed WHERE target = 'measurement';

-- @ids
CREATE OR REPLACE TEMP TABLE _pt_measurement AS
SELECT m.id AS measurement_id, p.id AS person_id, x.concept_id AS measurement_concept_id,
       pt_start(x.dtc, x.consent_date, NULL) AS measurement_date, pt_ts(x.dtc) AS measurement_datetime,
       $crf AS measurement_type_concept_id, x.value_num AS value_as_number,
       x.unit_concept_id, v.visit_occurrence_id,
       x.testcd AS measurement_source_value, x.concept_id AS measurement_source_concept_id,
       x.unit AS unit_source_value, x.value_text AS value_source_value
FROM _pt_measurement_src x
JOIN {meta}.omop_id_map m ON m.table_name = 'measurement' AND m.natural_key = x.natural_key
JOIN {meta}.omop_id_map p ON p.table_name = 'person' AND p.natural_key = x.pseudonym
LEFT JOIN _pt_visit_key v ON v.pseudonym = x.pseudonym AND v.visitnum = x.visitnum
WHERE pt_start(x.dtc, x.consent_date, NULL) IS NOT NULL;
