"""The end of every run: publish what passed the gate and swap the analysts' file."""
import dagster as dg

from orchestration.resources import WAREHOUSE_POOL, WarehouseResource
from transforms.publish import publish_batch
from trialhouse.snapshot import publish_snapshot

# Suites whose blocking checks guard this asset (they ran, and passed, or it would not run).
SUITES = ["ctgov_registry"]
MERGES: list = []


@dg.asset(
    key=dg.AssetKey(["publish", "warehouse"]),
    group_name="quality",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[dg.AssetKey(["stage", "ctgov_study"])],
    # Publish only what passed every blocking check upstream (within the same run or an earlier one).
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    description=(
        "Publishes the gated batch in one DuckDB transaction (staged FHIR and OMOP rows into the `fhir` and "
        "`omop` schemas, meta.study_state, a meta.load_log row), then swaps in the analysts' read-only file: "
        "a checkpointed copy of the work database, replaced atomically so a reader never waits on a load "
        "and never sees half of one."
    ),
)
def published_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        log = publish_batch(con, context.run.run_id, SUITES, MERGES)
        path = publish_snapshot(con, warehouse.published)
    return dg.MaterializeResult(
        metadata={
            "studies_published": dg.MetadataValue.int(log["studies_published"]),
            "quarantined": dg.MetadataValue.int(log["quarantined"]),
            "table_counts": dg.MetadataValue.json(log["table_counts"]),
            "path": dg.MetadataValue.path(str(path)),
            "size_bytes": dg.MetadataValue.int(path.stat().st_size),
        }
    )
