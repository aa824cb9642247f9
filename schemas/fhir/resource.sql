-- FHIR R5 resources as JSON, one row per resource; {schema} is substituted by
-- transforms.fhir.store after the name is checked against its pattern; it is quoted here so a
-- name that happens to be an SQL keyword still works.
-- nct_id is the owning study, NULL for resources shared across studies (Organization, Location).
-- The primary key (resource_type, id) is added for published schemas; a staging schema is built
-- without it and kept unique by its writer (transforms.fhir.store), see create_fhir_schema.
CREATE SCHEMA IF NOT EXISTS "{schema}";

CREATE TABLE IF NOT EXISTS "{schema}".resource (
    resource_type VARCHAR NOT NULL,
    id            VARCHAR NOT NULL,
    version_id    VARCHAR NOT NULL,
    last_updated  TIMESTAMPTZ,
    nct_id        VARCHAR,
    resource      JSON NOT NULL{primary_key}
);
