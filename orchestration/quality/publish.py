"""The end of every run: publish what passed the gate and swap the analysts' file."""
from pathlib import Path

import dagster as dg

from expectations.runtime import now_utc
from orchestration.resources import WAREHOUSE_POOL, PathsResource, WarehouseResource
from schemas import apply_sql
from schemas.omop.ddl import create_omop_schema
from transforms.fhir.export import PART_SQL, clear_pending, export_pending
from transforms.fhir.participant_publish import drop_unstaged_participants
from transforms.fhir.store import NOT_PARTICIPANT, create_fhir_schema
from transforms.omop.participants.publish import clear_published_sites
from transforms.omop.publish import cover_events, merge_stage
from transforms.publish import ensure_stages, publish_batch
from transforms.sites.fingerprint import publish_fingerprint
from trialhouse.settings import stage_workers
from trialhouse.snapshot import clear_owed, mark_owed, owed_path, publish_snapshot
from trialhouse.workfile import without_headroom

# Suites whose blocking checks guard this asset (they ran, and passed, or it would not run).
SUITES = ["ctgov_registry", "fhir_staging", "omop_dqd", "site_protocol"]


def merge_fhir(con, run_id: str) -> dict[str, int]:
    """The batch's studies replace their published resources whole; shared ones are upserted."""
    # The export parts of every row replaced or added, so the export rewrites those files only.
    con.execute(
        f"INSERT INTO meta.fhir_export_pending SELECT DISTINCT resource_type, {PART_SQL}, ? FROM ("
        " SELECT resource_type, nct_id, id FROM fhir.resource WHERE nct_id IN (SELECT nct_id FROM stage.ctgov_study)"
        f" AND {NOT_PARTICIPANT}"
        " UNION ALL SELECT resource_type, nct_id, id FROM fhir.resource"
        "  WHERE (resource_type, id) IN (SELECT resource_type, id FROM stage_fhir.resource)"
        " UNION ALL SELECT resource_type, nct_id, id FROM stage_fhir.resource)", [run_id])
    # and the studies whose resources those parts replace, so the export splices their lines in: the
    # batch's studies and the owner of every staged row (the export trusts this list to be complete)
    con.execute("INSERT INTO meta.fhir_export_pending_study SELECT nct_id, ? FROM (SELECT nct_id FROM stage.ctgov_study"
                " UNION SELECT nct_id FROM stage_fhir.resource WHERE nct_id IS NOT NULL)", [run_id])
    # Not their participants: those go with their deliveries (drop_unstaged_participants, below).
    con.execute(f"DELETE FROM fhir.resource WHERE nct_id IN (SELECT nct_id FROM stage.ctgov_study) AND {NOT_PARTICIPANT}")
    # The published table has no PRIMARY KEY (see create_fhir_schema): its keys stay unique because
    # every staged key is deleted before the staged rows go in, and those must be unique themselves.
    dup = con.execute("SELECT resource_type, id, count(*) FROM stage_fhir.resource GROUP BY ALL HAVING count(*) > 1"
                      " ORDER BY ALL LIMIT 1").fetchone()
    if dup:
        raise ValueError(f"stage_fhir.resource holds {dup[0]}/{dup[1]} {dup[2]} times: nothing is published")
    drop_unstaged_participants(con, run_id)  # a participant no current delivery holds any more
    # Delete then insert, not INSERT OR REPLACE: DuckDB's upsert holds the whole batch in memory
    # (1.2 M resources ran out of memory under a 1 GB cap; the plain insert spills and took 7.8 s).
    con.execute("DELETE FROM fhir.resource WHERE (resource_type, id) IN (SELECT resource_type, id FROM stage_fhir.resource)")
    n = con.execute("INSERT INTO fhir.resource SELECT * FROM stage_fhir.resource").fetchone()[0]
    return {"fhir.resource": n}


def merge_omop(con, run_id: str) -> dict[str, int]:
    # Participant rows are owned per site: a delivery replaces its site's published rows whole.
    if con.execute("SELECT count(*) FROM stage_omop.person").fetchone()[0]:
        clear_published_sites(con, "stage_omop", "omop", "meta", "raw.sdtm_row_current")
    merged = merge_stage(con, "stage_omop", "omop", "stage.ctgov_study")
    cover_events(con, "omop")
    return merged


def merge_site_state(con, run_id: str) -> dict[str, int]:
    import datetime as dt

    return {"meta.site_state": publish_fingerprint(con, run_id, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))}


MERGES: list = [merge_fhir, merge_omop, merge_site_state]


def export_and_swap(context, con, warehouse: WarehouseResource, paths: PathsResource, changed: bool):
    """Bring the FHIR export up to the work file behind `con` and swap the analysts' file in: the end of
    a publish, and, when a run died between its publish's transaction and its swap, the start of the
    next run (finish_unfinished_publish). Returns (parts written, parts spliced, manifest, replaced, stats)."""
    path = Path(warehouse.published)
    # An earlier publish that stopped before its export (parts left pending) or its swap (the marker).
    unfinished = con.execute("SELECT count(*) FROM meta.fhir_export_pending WHERE run_id <> ?",
                             [context.run.run_id]).fetchone()[0] or owed_path(warehouse.published).exists()
    replaced = bool(changed or unfinished or not path.exists())
    if replaced:
        # From before the export's first part is written until the swap, the marker says the export and
        # the analysts' file are being brought up to the work file, and may disagree with each other: set
        # after the export, a run killed while writing it left parts of the new publish beside a manifest
        # and an analysts' file of the old, and no sign of it (a crash-consistency review).
        mark_owed(warehouse.published)
    with without_headroom(con):  # the export reads much and deletes nothing
        found: dict = {}
        parts, spliced, manifest = export_pending(con, paths.export_path, threads=stage_workers(), stats=found)
    if found.get("edited"):
        context.log.warning(f"{found['edited']} FHIR export part(s) had changed since the export wrote them "
                            f"(edited by hand?): written again from the warehouse")
    stats = None
    if replaced:
        # The export is written: its bookkeeping goes before the swap, so the analysts' file does not
        # list parts as pending; the marker alone says the swap is still owed.
        clear_pending(con)
        apply_sql(con, "meta/meta.sql")  # this may be the first step of a run (finish_unfinished_publish)
        con.execute("DELETE FROM meta.snapshot_taken")
        con.execute("INSERT INTO meta.snapshot_taken VALUES (?)", [now_utc()])
        stats = publish_snapshot(con, warehouse.published)
        clear_owed(warehouse.published)
        context.log.info(f"snapshot {stats.mode}{f' (compared {stats.compared})' if stats.compared else ''}: "
                         f"{stats.bytes_written:,} of {stats.size_bytes:,} bytes written")
    else:  # nothing new: the analysts' file already holds this state
        context.log.info("nothing changed since the last publish: snapshot kept")
        clear_pending(con)  # the export is done
    return parts, spliced, manifest, replaced, stats


def recorded_since_snapshot(con) -> bool:
    """Whether the work file holds a record held, or a file failed, since the analysts' file was swapped
    in. A run killed between its gate and its publish left its holds in the work file alone: the rerun
    found nothing to publish, kept the snapshot, and the analysts' quarantine.record never named them
    until a publish that changed something (a crash-consistency review)."""
    return bool(con.execute(
        "SELECT greatest((SELECT max(quarantined_at) FROM quarantine.record),"
        " (SELECT max(first_seen) FROM raw.landed_file WHERE status = 'failed'))"
        " > coalesce((SELECT max(taken_at) FROM meta.snapshot_taken), TIMESTAMP '1970-01-01')").fetchone()[0])


def finish_unfinished_publish(context, con, warehouse: WarehouseResource, paths: PathsResource) -> bool:
    """At a run's start, on its first step's connection: finish the export and swap of a publish whose
    run died after its transaction.

    Left for that run's next publish, they waited on every gate in between: a gate that blocks run
    after run (schema drift) kept the export ahead of the analysts' file until a correction landed
    (found by killing a run between its export and its swap). Returns whether there was one."""
    pending = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'meta' "
                          "AND table_name = 'fhir_export_pending'").fetchone()[0] and con.execute(
        "SELECT count(*) FROM meta.fhir_export_pending").fetchone()[0]
    if not (pending or owed_path(warehouse.published).exists()):
        return False
    context.log.warning("finishing the export and swap of a publish whose run stopped before them")
    export_and_swap(context, con, warehouse, paths, changed=True)
    return True


def _per_type(manifest: dict) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in manifest["output"]:
        out[o["type"]] = out.get(o["type"], 0) + o["count"]
    return out


@dg.asset(
    key=dg.AssetKey(["publish", "warehouse"]),
    group_name="quality",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    deps=[dg.AssetKey(["stage", "ctgov_study"]), dg.AssetKey(["stage", "fhir_resource"]), dg.AssetKey(["stage", "omop"]),
          dg.AssetKey(["stage", "site_data"])],
    # Publish only what passed every blocking check upstream (within the same run or an earlier one).
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    description=(
        "Publishes the gated batch in one DuckDB transaction (staged FHIR and OMOP rows into the `fhir` and "
        "`omop` schemas, meta.study_state, a meta.load_log row), then swaps in the analysts' read-only file: "
        "the checkpointed work database's exact bytes (the previous snapshot, patched where DuckDB's block "
        "checksums differ), "
        "replaced atomically so a reader never waits on a load "
        "and never sees half of one."
    ),
)
def published_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                        paths: PathsResource) -> dg.MaterializeResult:
    with warehouse.connect() as con:
        create_fhir_schema(con, "fhir")
        create_omop_schema(con, "omop")
        ensure_stages(con)  # a run of the publish without the steps that stage
        log = publish_batch(con, context.run.run_id, SUITES, MERGES)
        unpublished = recorded_since_snapshot(con)
    # A new connection for the export and the swap: what the transaction's deletes pinned in DuckDB goes
    # with the old one (see trialhouse.workfile.delete_headroom).
    # cdm_source is re-derived every run; any other merged row, published study or new hold is a change,
    # and so is a hold or a failed file recorded since the last swap by a run that did not publish.
    changed = bool(log["studies_published"] or log["quarantined"] or any(
        v for k, v in log["merged"].items() if k != "omop.cdm_source") or unpublished)
    with warehouse.connect() as con:
        parts, spliced, manifest, replaced, stats = export_and_swap(context, con, warehouse, paths, changed)
    path = stats.path if stats else Path(warehouse.published)
    snapshot = {}
    if stats:
        snapshot = {"snapshot_mode": dg.MetadataValue.text(stats.mode),
                    "snapshot_bytes_written": dg.MetadataValue.int(stats.bytes_written)}
        if stats.compared:  # 'whole' only after a patch that died midway or an odd-sized standby
            snapshot["snapshot_compared"] = dg.MetadataValue.text(stats.compared)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": dg.MetadataValue.int(sum(log["table_counts"].values())),
            "studies_published": dg.MetadataValue.int(log["studies_published"]),
            "quarantined": dg.MetadataValue.int(log["quarantined"]),
            "table_counts": dg.MetadataValue.json(log["table_counts"]),
            "rows_merged": dg.MetadataValue.json({k: v for k, v in log["merged"].items() if v}),
            "fhir_export": dg.MetadataValue.path(str(paths.export_path / "fhir" / "manifest.json")),
            "fhir_exported": dg.MetadataValue.json(_per_type(manifest)),
            "fhir_parts_rewritten": dg.MetadataValue.int(parts),
            # of those, NCT id parts whose changed studies' lines were spliced into the existing file
            "fhir_parts_spliced": dg.MetadataValue.int(spliced),
            "path": dg.MetadataValue.path(str(path)),
            "snapshot_replaced": dg.MetadataValue.bool(replaced),
            **snapshot,
            "size_bytes": dg.MetadataValue.int(path.stat().st_size),
        }
    )
