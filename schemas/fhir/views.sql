-- Flat SQL-on-FHIR-style views over {schema}.resource. {schema} is substituted by
-- transforms.fhir.store after the name is checked against its pattern; it is quoted here so a
-- name that happens to be an SQL keyword still works.

-- The registry studies themselves (per-site ResearchStudy rows have partOf and are left out).
CREATE OR REPLACE VIEW "{schema}".research_study AS
WITH s AS (
    SELECT nct_id, resource AS r
    FROM "{schema}".resource
    WHERE resource_type = 'ResearchStudy' AND json_extract(resource, '$.partOf') IS NULL
)
SELECT
    nct_id,
    r ->> '$.title' AS title,
    list_filter(
        json_extract(r, '$.progressStatus[*]'),
        lambda p: json_extract_string(p, '$.state.coding[0].code') IS DISTINCT FROM 'overall-study'
              AND json_extract(p, '$.period') IS NULL
    )[1] ->> '$.state.coding[0].code' AS status,
    r ->> '$.phase.coding[0].code' AS phase,
    r ->> '$.primaryPurposeType.coding[0].code' AS purpose,
    r ->> '$.period.start' AS start_date,
    r ->> '$.period.end' AS end_date,
    CAST(r ->> '$.recruitment.targetNumber' AS INTEGER) AS target_enrollment,
    CAST(r ->> '$.recruitment.actualNumber' AS INTEGER) AS actual_enrollment,
    list_filter(
        json_extract(r, '$.associatedParty[*]'),
        lambda a: json_extract_string(a, '$.role.coding[0].code') = 'lead-sponsor'
    )[1] ->> '$.name' AS sponsor,
    list_filter(json_extract_string(r, '$.region[*].coding[0].code'), lambda c: c IS NOT NULL) AS countries
FROM s;

-- One row per site of a study: the per-site ResearchStudy (status) joined to its Location.
CREATE OR REPLACE VIEW "{schema}".research_study_site AS
SELECT
    s.nct_id,
    s.id AS site_id,
    l.id AS location_id,
    l.resource ->> '$.name' AS facility,
    l.resource ->> '$.address.city' AS city,
    l.resource ->> '$.address.state' AS state,
    l.resource ->> '$.address.country' AS country,
    s.resource ->> '$.progressStatus[0].state.coding[0].code' AS recruitment_status,
    s.resource ->> '$.progressStatus[0].state.text' AS recruitment_status_source,
    CAST(l.resource ->> '$.position.latitude' AS DOUBLE) AS latitude,
    CAST(l.resource ->> '$.position.longitude' AS DOUBLE) AS longitude
FROM "{schema}".resource AS s
JOIN "{schema}".resource AS l
  ON l.resource_type = 'Location'
 AND ('Location/' || l.id) = json_extract_string(s.resource, '$.site[0].reference')
WHERE s.resource_type = 'ResearchStudy' AND json_extract(s.resource, '$.partOf') IS NOT NULL;

-- One row per arm (comparison group), with the interventions it exposes participants to.
CREATE OR REPLACE VIEW "{schema}".research_study_arm AS
WITH g AS (
    SELECT nct_id, unnest(json_extract(resource, '$.comparisonGroup[*]')) AS g
    FROM "{schema}".resource
    WHERE resource_type = 'ResearchStudy' AND json_extract(resource, '$.partOf') IS NULL
)
SELECT
    nct_id,
    g ->> '$.linkId' AS link_id,
    g ->> '$.name' AS name,
    g ->> '$.type.coding[0].code' AS arm_type,
    g ->> '$.description' AS description,
    json_extract_string(g, '$.intendedExposure[*].display') AS interventions
FROM g;

-- One row per condition entry: registry wording (mesh_code NULL) or a MeSH heading.
CREATE OR REPLACE VIEW "{schema}".research_study_condition AS
WITH c AS (
    SELECT nct_id, unnest(json_extract(resource, '$.condition[*]')) AS c
    FROM "{schema}".resource
    WHERE resource_type = 'ResearchStudy' AND json_extract(resource, '$.partOf') IS NULL
)
SELECT
    nct_id,
    c ->> '$.text' AS condition,
    CASE WHEN c ->> '$.coding[0].system' = 'http://id.nlm.nih.gov/mesh' THEN c ->> '$.coding[0].code' END AS mesh_code,
    CASE WHEN c ->> '$.coding[0].system' = 'http://id.nlm.nih.gov/mesh' THEN c ->> '$.coding[0].display' END AS mesh_term
FROM c;
