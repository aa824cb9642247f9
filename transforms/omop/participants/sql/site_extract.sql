-- The current roster of each site being mapped, shaped like the registry extract (_trial_site,
-- _trial_site_contact, _trial_official) so the registry's location / care_site / provider mappings
-- run unchanged: same natural keys, so the registry's Mayo Clinic site and site 001's roster row
-- are one care_site, and its principal investigator one provider. A site takes the zip into its key
-- as the registry's do (trial_extract.sql): where the study's whole current roster lists its facility,
-- city, state and country at different zips, or where its own study's registry listing gave the site
-- that zip key (meta.site_zip_key: the registry listed it among others of one name), so the roster's
-- site 001 and the registry's listing of it stay one care site. Counted over the whole roster, not the
-- sites mapped this run.
CREATE OR REPLACE TEMP TABLE _trial_site AS
WITH keyed AS (
    SELECT r.*,
           CASE WHEN nullif(trim(r.facility), '') IS NULL THEN 'study:' || r.nct_id || '|' ELSE '' END
           || concat_ws('|', coalesce(pt_norm(r.facility), ''), coalesce(pt_norm(r.city), ''),
                             coalesce(pt_norm(r.state), ''), coalesce(pt_norm(r.country), '')) AS base_key,
           nullif(trim(regexp_replace(lower(r.postal_code), '[^a-z0-9]+', ' ', 'g')), '') AS zip_key
    FROM {rosters} r
),
counted AS (
    SELECT *, count(DISTINCT coalesce(zip_key, '')) OVER (PARTITION BY nct_id, base_key) AS zips,
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
       CASE WHEN r.zips > 1 OR EXISTS (SELECT 1 FROM {meta}.site_zip_key k WHERE k.nct_id = r.nct_id
                                       AND k.site_key = r.base_key || '|zip:' || coalesce(r.zip_key, ''))
            THEN r.base_key || '|zip:' || coalesce(r.zip_key, '')
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
