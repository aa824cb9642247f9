-- Current SDTM rows minus the rows the gate held back (anti join on the row's key).
CREATE OR REPLACE TEMP MACRO pt_text(r, k) AS nullif(trim(json_extract_string(r, '$.' || k)), '');
-- Partial ISO dates (YYYY, YYYY-MM) are imputed to the first day: OMOP dates are required.
CREATE OR REPLACE TEMP MACRO pt_date(x) AS TRY_CAST(CASE length(x) WHEN 4 THEN x || '-01-01'
                                                  WHEN 7 THEN x || '-01' ELSE left(x, 10) END AS DATE);
-- A start given only to its month or year is the first day of that period, unless the participant
-- consented within it: then the consent date. Imputed to the 1st, an AE of "2025-03" by a participant
-- who consented on 15 March began before consent and pulled their observation period back with it.
-- (The SDTM convention of imputing a partial start to the reference start when they share the period.)
-- Never past the row's own end when that is a full date: an AE of "2025-02" that ended on 20 February
-- by a participant consented on the 26th starts on the 1st (the data say it began before consent).
CREATE OR REPLACE TEMP MACRO pt_start(x, consent, en) AS CASE
    WHEN length(x) IN (4, 7) AND consent BETWEEN pt_date(x)
         AND CASE length(x) WHEN 4 THEN make_date(year(pt_date(x)), 12, 31) ELSE last_day(pt_date(x)) END
         AND (length(en) IS NULL OR length(en) < 10 OR consent <= pt_date(en))
    THEN consent ELSE pt_date(x) END;
CREATE OR REPLACE TEMP MACRO pt_ts(x) AS CASE WHEN length(x) >= 16 THEN TRY_CAST(replace(x, 'T', ' ') AS TIMESTAMP) END;
-- An end time is the earliest point of its precision not before the start, as a partial end date is:
-- an end of 09:45 after a start of 09:45:30 read as 09:45:00, ended before it started, and failed DQD's
-- plausibleStartBeforeEnd, blocking every publish (a review). An end before the start at the precision
-- both have is held by the gate (plausibility.end_before_start) and never reaches here.
CREATE OR REPLACE TEMP MACRO pt_end_ts(en, st) AS CASE WHEN pt_ts(en) < pt_ts(st) THEN pt_ts(st) ELSE pt_ts(en) END;
CREATE OR REPLACE TEMP MACRO pt_num(x) AS TRY_CAST(x AS DOUBLE);
CREATE OR REPLACE TEMP MACRO pt_norm(x) AS trim(regexp_replace(lower(strip_accents(x)), '[^a-z0-9]+', ' ', 'g'));

CREATE OR REPLACE TEMP TABLE _pt_owner AS
SELECT DISTINCT nct_id || '|site:' || site_id AS owner FROM {source};

CREATE OR REPLACE TEMP TABLE _pt_src AS
SELECT s.delivery_key, s.delivery_id, s.nct_id, s.site_id, upper(s.domain) AS domain, s.row_number, s.usubjid,
       CAST(s.record AS JSON) AS record
FROM {source} s
ANTI JOIN {exclude} x ON x.delivery_key = s.delivery_key AND upper(x.domain) = upper(s.domain)
                     AND x.row_number = s.row_number;

CREATE OR REPLACE TEMP TABLE _pt_map AS
SELECT map, source_code, CAST(concept_id AS INTEGER) AS concept_id, unit_source
FROM read_csv($concepts, header = true, all_varchar = true);
