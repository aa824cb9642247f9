-- FHIR R5 resources as JSON, one row per resource; {schema} is substituted by
-- transforms.fhir.store after the name is checked against its pattern; it is quoted here so a
-- name that happens to be an SQL keyword still works.
-- nct_id is the owning study, NULL for resources shared across studies (Organization, Location).
-- No PRIMARY KEY: (resource_type, id) is kept unique by the writers (transforms.fhir.store and the
-- publish, which checks the staged keys), see create_fhir_schema.
CREATE SCHEMA IF NOT EXISTS "{schema}";

CREATE TABLE IF NOT EXISTS "{schema}".resource (
    resource_type VARCHAR NOT NULL,
    id            VARCHAR NOT NULL,
    version_id    VARCHAR NOT NULL,
    last_updated  TIMESTAMPTZ,
    nct_id        VARCHAR,
    resource      JSON NOT NULL
);
