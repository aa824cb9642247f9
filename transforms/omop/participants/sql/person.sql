-- DM -> person. Birth: BRTHDTC as precise as given; else year of consent minus AGE (AGEU YEARS).
CREATE OR REPLACE TEMP TABLE _pt_person_src AS
SELECT s.pseudonym AS natural_key, s.owner, s.*,
       pt_text(s.record, 'BRTHDTC') AS brthdtc,
       pt_text(s.record, 'SEX') AS sex, pt_text(s.record, 'RACE') AS race, pt_text(s.record, 'ETHNIC') AS ethnic
FROM _pt_subject s;

-- @ids
CREATE OR REPLACE TEMP TABLE _pt_person AS
SELECT m.id                                               AS person_id,
       coalesce(g.concept_id, 0)                          AS gender_concept_id,
       coalesce(TRY_CAST(left(p.brthdtc, 4) AS INTEGER),
                year(p.consent_date) - TRY_CAST(pt_text(p.record, 'AGE') AS INTEGER)) AS year_of_birth,
       CASE WHEN length(p.brthdtc) >= 7 THEN TRY_CAST(substr(p.brthdtc, 6, 2) AS INTEGER) END AS month_of_birth,
       CASE WHEN length(p.brthdtc) >= 10 THEN TRY_CAST(substr(p.brthdtc, 9, 2) AS INTEGER) END AS day_of_birth,
       coalesce(r.concept_id, 0)                          AS race_concept_id,
       coalesce(e.concept_id, 0)                          AS ethnicity_concept_id,
       -- The person's own address, which a delivery does not hold: the site's is the care site's
       -- (person.location_id is "the physical address of the person"; OHDSI's trial ETL leaves it empty).
       CAST(NULL AS BIGINT)                               AS location_id,
       c.id                                               AS care_site_id,
       p.pseudonym                                        AS person_source_value,
       p.sex                                              AS gender_source_value,
       0                                                  AS gender_source_concept_id,
       p.race                                             AS race_source_value,
       0                                                  AS race_source_concept_id,
       p.ethnic                                           AS ethnicity_source_value,
       0                                                  AS ethnicity_source_concept_id
FROM _pt_person_src p
JOIN {meta}.omop_id_map m ON m.table_name = 'person' AND m.natural_key = p.pseudonym
LEFT JOIN _pt_map g ON g.map = 'sex' AND g.source_code = p.sex
LEFT JOIN _pt_map r ON r.map = 'race' AND r.source_code = p.race
LEFT JOIN _pt_map e ON e.map = 'ethnic' AND e.source_code = p.ethnic
LEFT JOIN _trial_site ts ON ts.nct_id = p.nct_id AND ts.site_id = p.site_id
LEFT JOIN {meta}.omop_id_map c ON c.table_name = 'care_site' AND c.natural_key = ts.site_key;

-- One observation period per participant: consent (or first data) to the last data date.
CREATE OR REPLACE TEMP TABLE _pt_op_src AS
SELECT pseudonym || '|op' AS natural_key, owner, pseudonym, start_date, coalesce(end_date, start_date) AS end_date
FROM _pt_subject WHERE start_date IS NOT NULL;
