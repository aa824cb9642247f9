CREATE OR REPLACE TEMP TABLE _trial_cohort AS
SELECT a.nct_id,
       a.nct_id || '|arm|' || trim(regexp_replace(lower(strip_accents(a.label)), '[^a-z0-9]+', ' ', 'g')) AS natural_key,
       min(a.label) AS label,
       min(concat_ws(E'\n',
           'Arm type: ' || a.arm_type,
           a.description,
           CASE WHEN len(a.intervention_names) > 0 THEN 'Interventions: ' || array_to_string(a.intervention_names, '; ') END
       )) AS description
FROM _trial_arm a
GROUP BY ALL
UNION ALL
SELECT s.nct_id, s.nct_id || '|population', 'Study population',
       'All participants of the study (the registry record defines no arm groups)'
FROM _trial_study s
WHERE NOT EXISTS (SELECT 1 FROM _trial_arm a WHERE a.nct_id = s.nct_id);
