-- Investigators with their natural key and, where known, the site_key of their care site: the first
-- mention's (by nct_id, then position) whole, as for sites (location.sql); first_seen numbers new ids.
CREATE OR REPLACE TEMP TABLE _trial_provider AS
WITH norm_site AS (
    SELECT nct_id, site_key,
           trim(regexp_replace(lower(strip_accents(facility)), '[^a-z0-9]+', ' ', 'g')) AS facility_norm
    FROM _trial_site
),
single_site AS (
    SELECT nct_id, min(site_key) AS site_key FROM _trial_site GROUP BY nct_id HAVING count(DISTINCT site_key) = 1
),
official AS (
    SELECT o.nct_id, o.name, o.role,
           'official|' || trim(regexp_replace(lower(strip_accents(o.name)), '[^a-z0-9]+', ' ', 'g'))
               || '|' || coalesce(trim(regexp_replace(lower(strip_accents(o.affiliation)), '[^a-z0-9]+', ' ', 'g')), '')
               AS natural_key,
           coalesce(
               (SELECT min(ns.site_key) FROM norm_site ns
                WHERE ns.nct_id = o.nct_id
                  AND ns.facility_norm = trim(regexp_replace(lower(strip_accents(o.affiliation)), '[^a-z0-9]+', ' ', 'g'))),
               ss.site_key) AS site_key,
           o.official_idx AS idx, 0 AS sub
    FROM _trial_official o
    LEFT JOIN single_site ss ON ss.nct_id = o.nct_id
),
contact AS (
    SELECT c.nct_id, c.name, c.role,
           'site|' || trim(regexp_replace(lower(strip_accents(c.name)), '[^a-z0-9]+', ' ', 'g')) || '|' || c.site_key
               AS natural_key,
           c.site_key,
           c.site_idx AS idx, c.contact_idx AS sub
    FROM _trial_site_contact c
)
-- Officials' and contacts' keys never meet ('official|' against 'site|'), so a key's mentions are of one kind:
-- ordered by study, then the official's or the site's position, then the contact's within the site.
SELECT DISTINCT ON (natural_key) natural_key, name, role, site_key, nct_id AS first_seen
FROM (SELECT * FROM official UNION ALL SELECT * FROM contact)
ORDER BY natural_key, nct_id, idx, sub;
