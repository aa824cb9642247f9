-- Flatten the study records of {source} (columns nct_id, payload) into temp tables, one per
-- repeated element. Everything downstream reads these, never the JSON.
CREATE OR REPLACE TEMP TABLE _trial_payload AS
SELECT DISTINCT ON (nct_id) nct_id, CAST(payload AS JSON) AS payload FROM {source} ORDER BY nct_id;

CREATE OR REPLACE TEMP TABLE _trial_study AS
SELECT s.nct_id,
       s.payload->>'$.protocolSection.identificationModule.briefTitle'        AS brief_title,
       s.payload->>'$.protocolSection.identificationModule.officialTitle'     AS official_title,
       s.payload->>'$.protocolSection.statusModule.overallStatus'             AS overall_status,
       s.payload->>'$.protocolSection.designModule.studyType'                 AS study_type,
       TRY_CAST(s.payload->>'$.protocolSection.designModule.enrollmentInfo.count' AS DOUBLE) AS enrollment_count,
       s.payload->>'$.protocolSection.designModule.enrollmentInfo.type'       AS enrollment_type,
       s.payload->>'$.protocolSection.statusModule.startDateStruct.date'      AS start_date_raw,
       s.payload->>'$.protocolSection.statusModule.primaryCompletionDateStruct.date' AS primary_completion_raw,
       s.payload->>'$.protocolSection.statusModule.completionDateStruct.date' AS completion_date_raw,
       s.payload->>'$.protocolSection.statusModule.lastUpdatePostDateStruct.date' AS last_update_raw,
       s.payload->>'$.protocolSection.sponsorCollaboratorsModule.leadSponsor.name' AS lead_sponsor,
       s.payload->>'$.protocolSection.eligibilityModule.eligibilityCriteria'  AS eligibility_criteria,
       s.payload->>'$.protocolSection.eligibilityModule.sex'                  AS eligibility_sex,
       s.payload->>'$.protocolSection.eligibilityModule.minimumAge'           AS minimum_age,
       s.payload->>'$.protocolSection.eligibilityModule.maximumAge'           AS maximum_age,
       s.payload->>'$.protocolSection.eligibilityModule.healthyVolunteers'    AS healthy_volunteers
FROM _trial_payload s;

CREATE OR REPLACE TEMP TABLE _trial_phase AS
SELECT p.nct_id, ph.value->>'$' AS phase
FROM _trial_payload p, json_each(p.payload, '$.protocolSection.designModule.phases') ph;

-- json_each is quadratic on long arrays (a study can list over 1,000 sites): unnest a JSON[] instead.
CREATE OR REPLACE TEMP TABLE _trial_site AS
WITH arr AS (
    SELECT nct_id, CAST(payload->'$.protocolSection.contactsLocationsModule.locations' AS JSON[]) AS locs
    FROM _trial_payload
    WHERE (payload->'$.protocolSection.contactsLocationsModule.locations') IS NOT NULL
),
loc AS (
    SELECT nct_id, unnest(locs) AS value, unnest(range(len(locs))) AS key FROM arr
)
SELECT loc.nct_id,
       CAST(loc.key AS INTEGER)               AS site_idx,
       nullif(trim(loc.value->>'facility'), '') AS facility,
       nullif(trim(loc.value->>'city'), '')     AS city,
       nullif(trim(loc.value->>'state'), '')    AS state,
       nullif(trim(loc.value->>'zip'), '')      AS zip,
       nullif(trim(loc.value->>'country'), '')  AS country,
       TRY_CAST(loc.value->>'$.geoPoint.lat' AS DOUBLE) AS latitude,
       TRY_CAST(loc.value->>'$.geoPoint.lon' AS DOUBLE) AS longitude,
       loc.value AS location_json
FROM loc;

-- Natural key of a site: normalised facility + city + state + country (see care_site.py).
ALTER TABLE _trial_site ADD COLUMN site_key VARCHAR;
UPDATE _trial_site SET site_key =
    CASE WHEN facility IS NULL THEN 'study:' || nct_id || '|' ELSE '' END
    || concat_ws('|',
        coalesce(trim(regexp_replace(lower(strip_accents(facility)), '[^a-z0-9]+', ' ', 'g')), ''),
        coalesce(trim(regexp_replace(lower(strip_accents(city)), '[^a-z0-9]+', ' ', 'g')), ''),
        coalesce(trim(regexp_replace(lower(strip_accents(state)), '[^a-z0-9]+', ' ', 'g')), ''),
        coalesce(trim(regexp_replace(lower(strip_accents(country)), '[^a-z0-9]+', ' ', 'g')), ''));

CREATE OR REPLACE TEMP TABLE _trial_site_contact AS
SELECT s.nct_id, s.site_idx, s.site_key,
       nullif(trim(c.value->>'name'), '') AS name,
       c.value->>'role'                    AS role
FROM _trial_site s, json_each(s.location_json, '$.contacts') c
WHERE nullif(trim(c.value->>'name'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_official AS
SELECT p.nct_id,
       CAST(o.key AS INTEGER)                  AS official_idx,
       nullif(trim(o.value->>'name'), '')        AS name,
       nullif(trim(o.value->>'affiliation'), '') AS affiliation,
       o.value->>'role'                          AS role
FROM _trial_payload p, json_each(p.payload, '$.protocolSection.contactsLocationsModule.overallOfficials') o
WHERE nullif(trim(o.value->>'name'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_arm AS
SELECT p.nct_id,
       CAST(a.key AS INTEGER)       AS arm_idx,
       trim(a.value->>'label')      AS label,
       a.value->>'type'             AS arm_type,
       a.value->>'description'      AS description,
       CAST(a.value->'interventionNames' AS VARCHAR[]) AS intervention_names
FROM _trial_payload p, json_each(p.payload, '$.protocolSection.armsInterventionsModule.armGroups') a
WHERE nullif(trim(a.value->>'label'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_condition AS
SELECT p.nct_id, CAST(c.key AS INTEGER) AS idx, trim(c.value->>'$') AS term
FROM _trial_payload p, json_each(p.payload, '$.protocolSection.conditionsModule.conditions') c
WHERE nullif(trim(c.value->>'$'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_intervention AS
SELECT p.nct_id, CAST(i.key AS INTEGER) AS idx, trim(i.value->>'name') AS term, i.value->>'type' AS intervention_type
FROM _trial_payload p, json_each(p.payload, '$.protocolSection.armsInterventionsModule.interventions') i
WHERE nullif(trim(i.value->>'name'), '') IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_mesh AS
SELECT p.nct_id, 'condition' AS kind, m.value->>'id' AS mesh_id, m.value->>'term' AS term
FROM _trial_payload p, json_each(p.payload, '$.derivedSection.conditionBrowseModule.meshes') m
UNION ALL
SELECT p.nct_id, 'intervention', m.value->>'id', m.value->>'term'
FROM _trial_payload p, json_each(p.payload, '$.derivedSection.interventionBrowseModule.meshes') m;
