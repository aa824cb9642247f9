-- SDTM rows of one delivery from the registered frame `incoming_sdtm`. Parameters: delivery_key, delivery_id.
INSERT INTO raw.sdtm_row (delivery_key, delivery_id, domain, row_number, usubjid, record)
SELECT $1, $2, domain, row_number, usubjid, record::JSON
FROM incoming_sdtm;
