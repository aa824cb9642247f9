-- One row per participant with a DM row: its pseudonym (computed in Python, _pt_pseudonym), site,
-- person_id, and the dates that bound its data.
CREATE OR REPLACE TEMP TABLE _pt_subject AS
WITH dm AS (
    SELECT usubjid, min(nct_id) AS nct_id, min(site_id) AS site_id, min_by(record, delivery_key) AS record
    FROM _pt_src WHERE domain = 'DM' GROUP BY usubjid
),
events AS (
    -- one JSON parse per row: a list extraction instead of one json_extract per variable; starts as
    -- the mappings date them (pt_start: a partial start within the consent's period is the consent)
    -- (a row holds one domain's variables, so least() is its start)
    SELECT usubjid, min(least(pt_start(d[1], consent, d[2]), pt_start(d[3], consent, d[4]), pt_start(d[5], consent, NULL),
                              pt_start(d[6], consent, NULL), pt_start(d[7], consent, d[8]), pt_start(d[9], consent, NULL)))
               AS first_date,
           max(greatest(pt_date(coalesce(d[2], d[1])), pt_date(coalesce(d[4], d[3])), pt_start(d[5], consent, NULL),
                        pt_start(d[6], consent, NULL), pt_date(coalesce(d[8], d[7])), pt_start(d[9], consent, NULL))) AS last_date
    FROM (SELECT s.usubjid, pt_date(pt_text(dm.record, 'RFICDTC')) AS consent,
                 list_transform(json_extract_string(s.record, ['$.SVSTDTC', '$.SVENDTC', '$.EXSTDTC', '$.EXENDTC',
                 '$.VSDTC', '$.QSDTC', '$.AESTDTC', '$.AEENDTC', '$.DSSTDTC']), x -> nullif(trim(x), '')) AS d
          FROM _pt_src s LEFT JOIN dm USING (usubjid) WHERE s.domain <> 'DM')
    GROUP BY usubjid
)
SELECT dm.usubjid, dm.nct_id, dm.site_id, dm.record, p.pseudonym,
       dm.nct_id || '|site:' || dm.site_id AS owner,
       pt_date(pt_text(dm.record, 'RFICDTC')) AS consent_date,
       least(pt_date(pt_text(dm.record, 'RFICDTC')), e.first_date) AS start_date,
       greatest(pt_date(pt_text(dm.record, 'RFICDTC')), pt_date(pt_text(dm.record, 'RFENDTC')),
                pt_date(pt_text(dm.record, 'DTHDTC')), e.last_date) AS end_date
FROM dm
JOIN _pt_pseudonym p USING (usubjid)
LEFT JOIN events e USING (usubjid);

-- Every non-DM row of a participant who has a DM row (others cannot have a person_id).
CREATE OR REPLACE TEMP VIEW _pt_row AS
SELECT r.*, s.pseudonym, s.owner, s.consent_date
FROM _pt_src r JOIN _pt_subject s USING (usubjid)
WHERE r.domain <> 'DM';
