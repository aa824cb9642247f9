"""Trial-site deliveries: raw ingestion, a thin shell around transforms.sites.ingest."""
from typing import Optional

import dagster as dg

from orchestration.quality.publish import finish_unfinished_publish
from orchestration.resources import WAREHOUSE_POOL, PathsResource, WarehouseResource
from transforms.sites.ingest import ingest_site_deliveries
from transforms.landing_layout import nested_deliveries

RAW_SITES = dg.AssetKey(["raw", "site_delivery"])


class DeliveryConfig(dg.Config):
    """Delivery folder names under <landing>/sites/ (the landing sensor's batch); none: all of them."""

    deliveries: Optional[list[str]] = None


@dg.asset(
    key=RAW_SITES,
    group_name="sites",
    kinds={"duckdb", "csv"},
    pool=WAREHOUSE_POOL,
    # Runs once on a new instance even with no delivery yet, so site staging and publish are never
    # waiting on a missing upstream; afterwards the landing sensor drives it.
    automation_condition=dg.AutomationCondition.missing() & ~dg.AutomationCondition.in_progress(),
    description=(
        "Site deliveries under `<landing>/sites/<delivery_id>/` (manifest.json, sites.csv, SDTM dm/ds/sv/ex/vs/qs/ae "
        "CSVs; contract in schemas/sites/). Append-only in raw.site_delivery / raw.sdtm_row / raw.site_roster_row. "
        "A delivery loads only when complete: a missing listed file, a checksum mismatch or a contract violation "
        "holds it whole with the reason in quarantine.record; a newer cut-off supersedes the older delivery."
    ),
)
def site_delivery(context: dg.AssetExecutionContext, config: DeliveryConfig, warehouse: WarehouseResource,
                  paths: PathsResource) -> dg.MaterializeResult:
    landing = paths.existing_landing()
    with warehouse.connect() as con:
        finished = finish_unfinished_publish(context, con, warehouse, paths)  # before any gate of this run
        s = ingest_site_deliveries(con, landing, run_id=context.run.run_id, deliveries=config.deliveries)
        current = con.execute("SELECT count(*) FROM raw.site_delivery_current").fetchone()[0]
    summary = s.as_dict()
    for name in s.waiting:  # nothing is decided for them yet, and nothing else would say so
        deeper = nested_deliveries(landing / "sites" / name)
        if deeper:
            context.log.warning(f"sites/{name}: no manifest.json, but its subfolders {', '.join(deeper[:5])} have one: "
                                "a delivery is read only as sites/<delivery id>/, one level down")
        else:
            context.log.warning(f"sites/{name}: no manifest.json yet; the delivery waits until it arrives")
    for why in s.undecided:
        context.log.warning(why)
    for why in s.superseded_why:
        context.log.info(why)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": dg.MetadataValue.int(sum(summary["rows"].values())),
        # not decided this run, each with why (cannot be read, changed while read): said again every run
        "undecided_folders": dg.MetadataValue.md("\n".join(f"- {w}" for w in s.undecided[:20]) or "none"),
        # superseded this run (on arrival, or displaced by a newer one), each with by what
        "superseded_deliveries": dg.MetadataValue.md("\n".join(f"- {w}" for w in s.superseded_why[:20]) or "none"),
        **{k: dg.MetadataValue.int(v) for k, v in summary.items() if isinstance(v, int)},
        "rows_per_file": dg.MetadataValue.json(summary["rows"]),
        "current_deliveries": dg.MetadataValue.int(current),
        "waiting_folders": dg.MetadataValue.md("\n".join(f"- sites/{n}" for n in s.waiting[:20]) or "none"),
        # held as `quarantine list` counts them: deliveries the contract holds, and folders with nothing
        # to read (held as paths, each run that finds them so)
        "quarantined": dg.MetadataValue.int(summary["held"] + len(s.unreadable)),
        "finished_earlier_publish": dg.MetadataValue.bool(finished),
    })
