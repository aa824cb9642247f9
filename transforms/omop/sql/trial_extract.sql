-- Flatten the study records of {source} (columns nct_id, payload) into temp tables, one per
-- repeated element. Everything downstream reads these, never the JSON.
-- Each record is parsed once: one multi-path json_extract pulls every field and repeated element
-- the mapping reads (a path per `->>` re-parsed the whole 17 KB document 25 times per study).
-- {source} holds one row per nct_id (map_trials de-duplicates a source that does not first: a
-- DISTINCT ON here held the chunk's payloads in a hash table, which ran out of a 512 MB cap).
CREATE OR REPLACE TEMP TABLE _trial_payload AS
WITH src AS (
    SELECT nct_id, payload FROM {source}
), x AS (
    SELECT nct_id, json_extract(payload, [
        '$.protocolSection.identificationModule.briefTitle',                 -- 1
        '$.protocolSection.identificationModule.officialTitle',
        '$.protocolSection.statusModule.overallStatus',
        '$.protocolSection.designModule.studyType',
        '$.protocolSection.designModule.enrollmentInfo.count',               -- 5
        '$.protocolSection.designModule.enrollmentInfo.type',
        '$.protocolSection.statusModule.startDateStruct.date',
        '$.protocolSection.statusModule.primaryCompletionDateStruct.date',
        '$.protocolSection.statusModule.completionDateStruct.date',
        '$.protocolSection.statusModule.lastUpdatePostDateStruct.date',      -- 10
        '$.protocolSection.sponsorCollaboratorsModule.leadSponsor.name',
        '$.protocolSection.eligibilityModule.eligibilityCriteria',
        '$.protocolSection.eligibilityModule.sex',
        '$.protocolSection.eligibilityModule.minimumAge',
        '$.protocolSection.eligibilityModule.maximumAge',                    -- 15
        '$.protocolSection.eligibilityModule.healthyVolunteers',
        '$.protocolSection.designModule.phases',
        '$.protocolSection.contactsLocationsModule.locations',
        '$.protocolSection.contactsLocationsModule.overallOfficials',
        '$.protocolSection.armsInterventionsModule.armGroups',               -- 20
        '$.protocolSection.conditionsModule.conditions',
        '$.protocolSection.armsInterventionsModule.interventions',
        '$.derivedSection.conditionBrowseModule.meshes',
        '$.derivedSection.interventionBrowseModule.meshes'                   -- 24
    ]) AS v
    FROM src
)
SELECT nct_id,
       v[1]->>'$'  AS brief_title,
       v[2]->>'$'  AS official_title,
       v[3]->>'$'  AS overall_status,
       v[4]->>'$'  AS study_type,
       v[5]->>'$'  AS enrollment_count,
       v[6]->>'$'  AS enrollment_type,
       v[7]->>'$'  AS start_date_raw,
       v[8]->>'$'  AS primary_completion_raw,
       v[9]->>'$'  AS completion_date_raw,
       v[10]->>'$' AS last_update_raw,
       v[11]->>'$' AS lead_sponsor,
       v[12]->>'$' AS eligibility_criteria,
       v[13]->>'$' AS eligibility_sex,
       v[14]->>'$' AS minimum_age,
       v[15]->>'$' AS maximum_age,
       v[16]->>'$' AS healthy_volunteers,
       v[17] AS phases, v[18] AS locations, v[19] AS officials, v[20] AS arm_groups,
       v[21] AS conditions, v[22] AS interventions, v[23] AS condition_meshes, v[24] AS intervention_meshes
FROM x;

CREATE OR REPLACE TEMP TABLE _trial_study AS
SELECT nct_id, brief_title, official_title, overall_status, study_type,
       TRY_CAST(enrollment_count AS DOUBLE) AS enrollment_count,
       enrollment_type, start_date_raw, primary_completion_raw, completion_date_raw, last_update_raw,
       lead_sponsor, eligibility_criteria, eligibility_sex, minimum_age, maximum_age, healthy_volunteers
FROM _trial_payload;

CREATE OR REPLACE TEMP TABLE _trial_phase AS
SELECT p.nct_id, ph.value->>'$' AS phase
FROM _trial_payload p, json_each(p.phases) ph;

-- json_each is quadratic on long arrays (a study can list over 1,000 sites): unnest a JSON[] instead.
-- Each site's JSON is parsed once for all its fields and its contacts (a `->>` per field parsed it ten
-- times), and its natural key is computed here rather than by an UPDATE of the whole table: sites and
-- contacts 165 -> 128 ms per 5,000 studies, the same rows.
CREATE OR REPLACE TEMP TABLE _trial_site AS
WITH arr AS (
    SELECT nct_id, CAST(locations AS JSON[]) AS locs
    FROM _trial_payload
    WHERE locations IS NOT NULL
),
loc AS (
    SELECT nct_id, unnest(locs) AS value, unnest(range(len(locs))) AS key FROM arr
),
field AS (
    SELECT nct_id, key,
           json_extract_string(value, ['$.facility', '$.city', '$.state', '$.zip', '$.country',
                                       '$.geoPoint.lat', '$.geoPoint.lon']) AS f,
           json_extract(value, '$.contacts') AS contacts
    FROM loc
),
site AS (
    SELECT nct_id,
           CAST(key AS INTEGER)           AS site_idx,
           nullif(trim(f[1]), '')         AS facility,
           nullif(trim(f[2]), '')         AS city,
           nullif(trim(f[3]), '')         AS state,
           nullif(trim(f[4]), '')         AS zip,
           nullif(trim(f[5]), '')         AS country,
           TRY_CAST(f[6] AS DOUBLE)       AS latitude,
           TRY_CAST(f[7] AS DOUBLE)       AS longitude,
           contacts
    FROM field
)
-- Natural key of a site: normalised facility + city + state + country (see care_site.py), and the
-- zip too where the study itself lists that key at different zips ("Research Site" in one city, four
-- zips; no zip counts as one); sites of one key all at one zip, or all without, stay one site under the
-- plain key, the one other studies' listings of it have.
SELECT nct_id, site_idx, facility, city, state, zip, country, latitude, longitude, contacts,
       CASE WHEN count(DISTINCT coalesce(zip_key, '')) OVER (PARTITION BY nct_id, base_key) > 1
            THEN base_key || '|zip:' || coalesce(zip_key, '')
            ELSE base_key END AS site_key
FROM (
    SELECT *, nullif(trim(regexp_replace(lower(zip), '[^a-z0-9]+', ' ', 'g')), '') AS zip_key,
           CASE WHEN facility IS NULL THEN 'study:' || nct_id || '|' ELSE '' END
           || concat_ws('|',
               coalesce(trim(regexp_replace(lower(strip_accents(facility)), '[^a-z0-9]+', ' ', 'g')), ''),
               coalesce(trim(regexp_replace(lower(strip_accents(city)), '[^a-z0-9]+', ' ', 'g')), ''),
               coalesce(trim(regexp_replace(lower(strip_accents(state)), '[^a-z0-9]+', ' ', 'g')), ''),
               coalesce(trim(regexp_replace(lower(strip_accents(country)), '[^a-z0-9]+', ' ', 'g')), ''))
               AS base_key
    FROM site
);

CREATE OR REPLACE TEMP TABLE _trial_site_contact AS
SELECT s.nct_id, s.site_idx, CAST(c.key AS INTEGER) AS contact_idx, s.site_key,
       nullif(trim(c.value->>'name'), '') AS name,
       c.value->>'role'                    AS role
FROM _trial_site s, json_each(s.contacts) c
WHERE nullif(trim(c.value->>'name'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_official AS
SELECT p.nct_id,
       CAST(o.key AS INTEGER)                  AS official_idx,
       nullif(trim(o.value->>'name'), '')        AS name,
       nullif(trim(o.value->>'affiliation'), '') AS affiliation,
       o.value->>'role'                          AS role
FROM _trial_payload p, json_each(p.officials) o
WHERE nullif(trim(o.value->>'name'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_arm AS
SELECT p.nct_id,
       CAST(a.key AS INTEGER)       AS arm_idx,
       trim(a.value->>'label')      AS label,
       a.value->>'type'             AS arm_type,
       a.value->>'description'      AS description,
       CAST(a.value->'interventionNames' AS VARCHAR[]) AS intervention_names
FROM _trial_payload p, json_each(p.arm_groups) a
WHERE nullif(trim(a.value->>'label'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_condition AS
SELECT p.nct_id, CAST(c.key AS INTEGER) AS idx, trim(c.value->>'$') AS term
FROM _trial_payload p, json_each(p.conditions) c
WHERE nullif(trim(c.value->>'$'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_intervention AS
SELECT p.nct_id, CAST(i.key AS INTEGER) AS idx, trim(i.value->>'name') AS term, i.value->>'type' AS intervention_type
FROM _trial_payload p, json_each(p.interventions) i
WHERE nullif(trim(i.value->>'name'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_mesh AS
SELECT p.nct_id, 'condition' AS kind, m.value->>'id' AS mesh_id, m.value->>'term' AS term
FROM _trial_payload p, json_each(p.condition_meshes) m
UNION ALL
SELECT p.nct_id, 'intervention', m.value->>'id', m.value->>'term'
FROM _trial_payload p, json_each(p.intervention_meshes) m;
