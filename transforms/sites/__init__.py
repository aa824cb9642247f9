"""Site deliveries (schemas/sites/CONTRACT.md): contract checks and raw ingestion, no Dagster."""
