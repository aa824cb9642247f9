"""Dagster resources: where the warehouse, landing, export and vocabulary folders are.

Values default to `trialhouse.settings` (environment variables), so `dg dev` and the
`trialhouse` command act on the same files.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr

from trialhouse.settings import Settings, duckdb_memory_limit, duckdb_storage_config
from trialhouse.snapshot import ForeignTarget, foreign_target, work_path
from trialhouse.workfile import RunLock, connect_work

# Every asset and check that writes the warehouse runs in this pool (limit 1): DuckDB allows one
# writing process per file.
WAREHOUSE_POOL = "warehouse"


class WarehouseResource(DuckDBResource):
    """The pipeline's DuckDB work file (via dagster-duckdb) and the published file analysts read.

    `database` is the work file only the pipeline opens; `published` is replaced atomically by a
    checkpointed copy after each publish (see trialhouse.snapshot).
    """

    published: str
    _run_lock: Optional[RunLock] = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A run holds the work file from its first warehouse step to its end (trialhouse.workfile.RunLock):
        the in-process executor sets resources up once a run, so this is the run's whole span."""
        problem = foreign_target(self.published)
        if problem:  # checked before any step, not at the publish after all of them
            raise ForeignTarget(f"the warehouse {problem}: nothing was done; point TRIALHOUSE_WAREHOUSE "
                                "(--warehouse) at a new path or at a warehouse this pipeline published")
        lock = RunLock(self.database)
        log = getattr(context, "log", None)
        lock.acquire(waiting=log.warning if log else None)
        self._run_lock = lock

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._run_lock is not None:
            self._run_lock.release()
            self._run_lock = None

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with self.get_connection() as con:
            con.execute("SET enable_progress_bar = false")  # long statements would draw bars into the run's log
            yield con

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """dagster-duckdb's connection, but with the work file attached at the warehouse's row group
        size (see trialhouse.workfile)."""
        con = connect_work(self.database, {"custom_user_agent": "dagster", **self.connection_config})
        try:
            yield con
        finally:
            con.close()


class PathsResource(dg.ConfigurableResource):
    """Folders the pipeline reads and writes besides the warehouse."""

    landing: str
    export: str
    vocab: Optional[str] = None
    # The analysts' file: the landing sensor looks beside it for a publish a run that died owes (the
    # WarehouseResource itself is not for a sensor: setting it up takes the run lock).
    warehouse: Optional[str] = None

    @property
    def landing_path(self) -> Path:
        return Path(self.landing)

    def existing_landing(self) -> Path:
        """The landing folder, or a failure naming it: a mistyped TRIALHOUSE_LANDING ran an empty pass and
        succeeded with an empty warehouse (the command line and the sensor already refuse one)."""
        if not self.landing_path.is_dir():
            raise dg.Failure(description=f"landing folder {self.landing} is not a folder (TRIALHOUSE_LANDING); "
                                         "nothing was read")
        return self.landing_path

    @property
    def export_path(self) -> Path:
        return Path(self.export)


def build_resources(settings: Settings | None = None) -> dict:
    s = settings or Settings.from_env()
    return {
        "warehouse": WarehouseResource(database=str(work_path(s.warehouse)), published=s.warehouse,
                                       connection_config={"memory_limit": duckdb_memory_limit(),
                                                          # checkpoint per 1 GB of WAL, not 16 MB: each checkpoint
                                                          # rewrites the raw table's key indexes, so loading 100,000
                                                          # studies took 73.7 s instead of 38.7 s
                                                          "checkpoint_threshold": "1GB",
                                                          **duckdb_storage_config()}),
        "paths": PathsResource(landing=s.landing, export=s.export, vocab=s.vocab, warehouse=s.warehouse),
    }
