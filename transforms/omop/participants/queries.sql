-- Analyst queries over the mapped OMOP tables of one trial, one SQL each. `{cdm}` is the CDM schema
-- (omop once published, stage_omop before); $nct_id the study. Arms are cohorts (cohort_definition
-- name "<NCT id>: <arm label>"), visits carry the PHUSE key EPOCH:VISIT as visit_source_value.

-- name: phq9_change_by_arm
-- Mean change in PHQ-9 total (LOINC 44261-6, concept 3042932) from baseline (the blinded infusion
-- visit, day 0, before dosing) to day 1, per arm. The total is read from measurement and observation
-- alike: its table follows the concept's domain, which depends on the vocabulary version.
WITH phq9 AS (
    SELECT person_id, visit_occurrence_id, value_as_number FROM {cdm}.measurement WHERE measurement_concept_id = 3042932
    UNION ALL
    SELECT person_id, visit_occurrence_id, value_as_number FROM {cdm}.observation WHERE observation_concept_id = 3042932
),
at_visit AS (
    SELECT p.person_id, v.visit_source_value, p.value_as_number
    FROM phq9 p JOIN {cdm}.visit_occurrence v ON v.visit_occurrence_id = p.visit_occurrence_id
)
SELECT substr(cd.cohort_definition_name, length($nct_id) + 3) AS arm,
       count(*)                                            AS participants,
       round(avg(b.value_as_number), 2)                    AS mean_baseline,
       round(avg(d1.value_as_number), 2)                   AS mean_day1,
       round(avg(d1.value_as_number - b.value_as_number), 2) AS mean_change
FROM {cdm}.cohort c
JOIN {cdm}.cohort_definition cd ON cd.cohort_definition_id = c.cohort_definition_id
JOIN at_visit b  ON b.person_id = c.subject_id  AND b.visit_source_value = 'TREATMENT:INFUSION'
JOIN at_visit d1 ON d1.person_id = c.subject_id AND d1.visit_source_value = 'FOLLOW-UP:DAY 1'
WHERE cd.cohort_definition_name LIKE $nct_id || ': %'
GROUP BY ALL
ORDER BY arm;

-- name: adverse_events_by_arm
-- Adverse events (condition_occurrence from AE, type 32809 CRF) per arm and preferred term: events,
-- participants with the event, and that share of the arm, with the worst severity (linked observation).
WITH arm AS (
    SELECT c.subject_id AS person_id, substr(cd.cohort_definition_name, length($nct_id) + 3) AS arm,
           count(*) OVER (PARTITION BY c.cohort_definition_id) AS arm_size
    FROM {cdm}.cohort c JOIN {cdm}.cohort_definition cd ON cd.cohort_definition_id = c.cohort_definition_id
    WHERE cd.cohort_definition_name LIKE $nct_id || ': %'
)
SELECT a.arm, co.condition_source_value AS adverse_event, count(*) AS events,
       count(DISTINCT co.person_id) AS participants, min(a.arm_size) AS arm_participants,
       round(100.0 * count(DISTINCT co.person_id) / min(a.arm_size), 1) AS pct_of_arm,
       max_by(sev.value_as_string, CASE sev.value_as_string WHEN 'SEVERE' THEN 3 WHEN 'MODERATE' THEN 2 ELSE 1 END)
           AS worst_severity
FROM arm a
JOIN {cdm}.condition_occurrence co ON co.person_id = a.person_id AND co.condition_type_concept_id = 32809
LEFT JOIN {cdm}.observation sev ON sev.observation_event_id = co.condition_occurrence_id
     AND sev.obs_event_field_concept_id = 1147127 AND sev.observation_source_value = 'AESEV'
GROUP BY ALL
ORDER BY a.arm, events DESC, adverse_event;

-- name: participants_per_site
-- Participants per site (care_site from the site roster, one row with the registry's site), and the
-- arm split, for the study's participants (those in one of its arm cohorts).
WITH member AS (
    SELECT c.subject_id AS person_id, substr(cd.cohort_definition_name, length($nct_id) + 3) AS arm
    FROM {cdm}.cohort c JOIN {cdm}.cohort_definition cd ON cd.cohort_definition_id = c.cohort_definition_id
    WHERE cd.cohort_definition_name LIKE $nct_id || ': %'
),
per_arm AS (
    SELECT p.care_site_id, m.arm, count(*) AS n
    FROM {cdm}.person p JOIN member m ON m.person_id = p.person_id
    GROUP BY ALL
)
SELECT cs.care_site_name AS site, sum(a.n) AS participants,
       string_agg(a.arm || ': ' || a.n, '; ' ORDER BY a.arm) AS by_arm
FROM per_arm a JOIN {cdm}.care_site cs ON cs.care_site_id = a.care_site_id
GROUP BY ALL
ORDER BY participants DESC, site;
