-- The shared resources (Organization, Location) a stage appended to {schema}.shared_pending slice by
-- slice (transforms.fhir.store.append_new_studies) become rows of {schema}.resource: per key the one
-- written first (slices go in NCT id order, so the first study that lists it), replacing a row of that
-- key already there, as the batch written in one frame does.
-- {schema} is substituted by transforms.fhir.store after the name is checked against its pattern.
DELETE FROM "{schema}".resource
WHERE nct_id IS NULL AND (resource_type, id) IN (SELECT resource_type, id FROM "{schema}".shared_pending);

INSERT INTO "{schema}".resource
SELECT p.resource_type, p.id, p.version_id, p.last_updated, NULL, p.resource
FROM "{schema}".shared_pending p
JOIN (SELECT resource_type, id, min(seq) AS seq FROM "{schema}".shared_pending GROUP BY ALL) first_written
    USING (resource_type, id, seq);

DROP TABLE "{schema}".shared_pending;
