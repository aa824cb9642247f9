"""Landing sensor: new or changed files under <landing>/ctgov/ become bounded ingestion runs."""
import json

import dagster as dg

from orchestration.resources import PathsResource
from transforms.ctgov.landing_scan import batches, run_key, scan_since
from trialhouse.snapshot import owed_path, work_path
from trialhouse.workfile import RunLock

RAW_CTGOV = dg.AssetKey(["raw", "ctgov_study_version"])
RAW_SITES = dg.AssetKey(["raw", "site_delivery"])


def _ctgov_config(batch) -> dict:
    return {"ops": {"raw__ctgov_study_version": {"config": {"files": [f.rel for f in batch]}}}}


def _sites_config(batch) -> dict:
    # A delivery is a folder: any changed file re-evaluates its whole folder (sites/<delivery_id>/...).
    folders = sorted({f.rel.split("/")[1] for f in batch if f.rel.count("/") >= 2})
    return {"ops": {"raw__site_delivery": {"config": {"deliveries": folders}}}}


TARGETS = {"ctgov": (RAW_CTGOV, _ctgov_config), "sites": (RAW_SITES, _sites_config)}


def landing_run_requests(paths: PathsResource, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    state = json.loads(cursor) if cursor else {}
    requests: list[dg.RunRequest] = []
    for subdir, (asset_key, run_config) in TARGETS.items():
        # The folders seen, by path and identity, so one moved in is read from its arrival
        # ("<subdir>/folders"; a cursor written before they were kept has none, and gets them now).
        known = state.get(f"{subdir}/folders")
        files, newest, folders = scan_since(paths.landing_path, subdir, int(state.get(subdir, 0)),
                                            known=known if isinstance(known, dict) else None)
        for batch in batches(files):
            requests.append(
                dg.RunRequest(
                    run_key=run_key(subdir, batch),
                    asset_selection=[asset_key],
                    run_config=run_config(batch),
                    tags={"trialhouse/landing": subdir, "trialhouse/files": str(len(batch))},
                )
            )
        state[subdir] = newest
        state[f"{subdir}/folders"] = folders
    return requests, json.dumps(state, sort_keys=True)


def finish_owed_publish(paths: PathsResource) -> list[dg.RunRequest]:
    """A run for a publish a dead run left unfinished (its export or its swap: the marker beside the
    analysts' file), when no run holds the warehouse. The next run finishes it first thing, but under
    the sensor a next run came only when another file landed: until then the export could hold parts
    of a publish the analysts' file did not (a crash-consistency review). The run reads no file; its
    first step finishes the publish. Keyed by the marker's time: one run per dead publish."""
    if not paths.warehouse:
        return []
    marker = owed_path(paths.warehouse)
    try:
        stamp = marker.stat().st_mtime_ns
    except OSError:  # none (or none to see): a sensor never fails on it
        return []
    if RunLock.held(work_path(paths.warehouse)):  # a run is publishing: the marker is its own
        return []
    return [dg.RunRequest(run_key=f"finish-owed-publish:{stamp}", asset_selection=[RAW_CTGOV],
                          run_config=_ctgov_config([]), tags={"trialhouse/landing": "finish an owed publish"})]


@dg.sensor(
    name="landing_sensor",
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[RAW_CTGOV, RAW_SITES],
    description="Notices new or changed files under <landing>/ctgov/ (any depth) and <landing>/sites/<delivery>/ "
                "(a folder moved or linked in included) and requests ingestion runs of at most 500 files / 2 GB each; "
                "and a run to finish a publish a dead run left owed (its export or swap), when no run holds the warehouse. "
                "The cursor is one timestamp per landing folder and the folders under it, by path and identity.",
)
def landing_sensor(context: dg.SensorEvaluationContext, paths: PathsResource):
    if not paths.landing_path.is_dir():  # not an error to crash on: it may be mounted or created later
        return dg.SkipReason(f"landing folder {paths.landing_path} is not there (TRIALHOUSE_LANDING)")
    requests, cursor = landing_run_requests(paths, context.cursor)
    requests += finish_owed_publish(paths)
    if not requests:  # the folders seen may have changed all the same (one made, one removed)
        skip = "no new or changed landing files"
        return dg.SkipReason(skip) if cursor == context.cursor else dg.SensorResult(skip_reason=skip, cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
