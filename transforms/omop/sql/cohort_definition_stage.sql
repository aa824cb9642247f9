-- An arm's key is its normalised label, unless another label of the study normalises the same
-- ("Age ≥ 65" and "Age < 65"; labels in a non-Latin script, all ''): then the exact label follows,
-- so the two arms stay two (transforms/ctgov/arm_labels.py; participants/sql/cohort.sql matches alike).
CREATE OR REPLACE TEMP TABLE _trial_cohort AS
WITH arm AS (
    SELECT a.*, trim(regexp_replace(lower(strip_accents(a.label)), '[^a-z0-9]+', ' ', 'g')) AS norm
    FROM _trial_arm a
), unclear AS (
    SELECT nct_id, norm FROM arm GROUP BY nct_id, norm HAVING count(DISTINCT label) > 1 OR norm = ''
)
SELECT a.nct_id,
       a.nct_id || '|arm|' || a.norm || CASE WHEN u.norm IS NULL THEN '' ELSE '|' || a.label END AS natural_key,
       min(a.label) AS label,
       min(concat_ws(E'\n',
           'Arm type: ' || a.arm_type,
           a.description,
           CASE WHEN len(a.intervention_names) > 0 THEN 'Interventions: ' || array_to_string(a.intervention_names, '; ') END
       )) AS description
FROM arm a
LEFT JOIN unclear u ON u.nct_id = a.nct_id AND u.norm = a.norm
GROUP BY ALL
UNION ALL
SELECT s.nct_id, s.nct_id || '|population', 'Study population',
       'All participants of the study (the registry record defines no arm groups)'
FROM _trial_study s
WHERE NOT EXISTS (SELECT 1 FROM _trial_arm a WHERE a.nct_id = s.nct_id);
