-- The current roster of each site being mapped, shaped like the registry extract (_trial_site,
-- _trial_site_contact, _trial_official) so the registry's location / care_site / provider mappings
-- run unchanged: same natural keys, so the registry's Mayo Clinic site and site 001's roster row
-- are one care_site, and its principal investigator one provider. As in the registry's, the zip joins
-- the key of sites the study's roster lists under one facility, city, state and country; counted over
-- the study's whole current roster, not the sites mapped this run, so a site's key does not depend on
-- which of its neighbours delivered with it.
CREATE OR REPLACE TEMP TABLE _trial_site AS
WITH keyed AS (
    SELECT r.*,
           CASE WHEN nullif(trim(r.facility), '') IS NULL THEN 'study:' || r.nct_id || '|' ELSE '' END
           || concat_ws('|', coalesce(pt_norm(r.facility), ''), coalesce(pt_norm(r.city), ''),
                             coalesce(pt_norm(r.state), ''), coalesce(pt_norm(r.country), '')) AS base_key
    FROM {rosters} r
),
counted AS (
    SELECT *, count(*) OVER (PARTITION BY nct_id, base_key) AS listed,
           CAST(row_number() OVER (PARTITION BY nct_id ORDER BY site_id) - 1 AS INTEGER) AS site_idx
    FROM keyed
)
SELECT r.nct_id,
       r.site_idx,
       nullif(trim(r.facility), '') AS facility,
       nullif(trim(r.city), '')     AS city,
       nullif(trim(r.state), '')    AS state,
       nullif(trim(r.postal_code), '') AS zip,
       nullif(trim(r.country), '')  AS country,
       TRY_CAST(nullif(r.latitude, '') AS DOUBLE)  AS latitude,
       TRY_CAST(nullif(r.longitude, '') AS DOUBLE) AS longitude,
       r.site_id,
       nullif(trim(r.principal_investigator), '') AS principal_investigator,
       CASE WHEN r.listed > 1 THEN r.base_key || '|zip:' || coalesce(trim(regexp_replace(lower(r.postal_code), '[^a-z0-9]+', ' ', 'g')), '')
            ELSE r.base_key END AS site_key
FROM counted r
WHERE r.nct_id || '|site:' || r.site_id IN (SELECT owner FROM _pt_owner);

CREATE OR REPLACE TEMP TABLE _trial_site_contact AS
SELECT nct_id, site_idx, 0 AS contact_idx, site_key, principal_investigator AS name, 'PRINCIPAL_INVESTIGATOR' AS role
FROM _trial_site WHERE principal_investigator IS NOT NULL;

CREATE OR REPLACE TEMP TABLE _trial_official AS
SELECT CAST(NULL AS VARCHAR) AS nct_id, CAST(NULL AS INTEGER) AS official_idx, CAST(NULL AS VARCHAR) AS name,
       CAST(NULL AS VARCHAR) AS affiliation, CAST(NULL AS VARCHAR) AS role
WHERE false;
