"""The end of every run: publish what passed the gate and swap the analysts' file."""
import dagster as dg

from orchestration.resources import WAREHOUSE_POOL, WarehouseResource
from trialhouse.snapshot import publish_snapshot


@dg.asset(
    key=dg.AssetKey(["publish", "warehouse"]),
    group_name="quality",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[dg.AssetKey(["stage", "ctgov_study"])],
    # Publish only what passed every blocking check upstream (within the same run or an earlier one).
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    description=(
        "The published warehouse analysts query: a checkpointed copy of the work database, "
        "swapped in atomically (os.replace) so a reader never waits on a load and never sees half of one."
    ),
)
def published_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        studies = con.execute("SELECT count(DISTINCT nct_id) FROM raw.ctgov_study_version").fetchone()[0]
        path = publish_snapshot(con, warehouse.published)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "size_bytes": dg.MetadataValue.int(path.stat().st_size),
            "raw_studies": dg.MetadataValue.int(studies),
        }
    )
