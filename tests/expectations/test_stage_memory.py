"""A stage keeps one running result, not every chunk's: a chunk's rules hold what they were built from
(every resource id of the chunk, the registry's intervention names), and keeping all 120 chunks' at
600,000 studies grew the run process by ~0.7 GB (measured: ~63,000 Python objects a chunk)."""
import gc
import weakref

from expectations import fhir_gate
from expectations.registry_gate import stage_registry
from expectations.runtime import GxRunner
from tests.raw_fixtures import raw_connection


class _Watching(GxRunner):
    """Checks, as each chunk is validated, that the results of the chunks before the last are gone."""

    def __init__(self):
        super().__init__(None)
        self.results: list[weakref.ref] = []
        self.most_alive = 0

    def validate(self, *args, **kwargs):
        gc.collect()
        # the stage's loop variable may still hold the previous chunk's result; no older one may live
        self.most_alive = max(self.most_alive, sum(r() is not None for r in self.results[:-1]))
        result = super().validate(*args, **kwargs)
        self.results.append(weakref.ref(result))
        return result


def test_registry_and_fhir_stages_do_not_keep_every_chunks_result():
    con = raw_connection()
    registry = _Watching()
    staged = stage_registry(con, registry, "run-1", chunk=4)
    assert len(registry.results) >= 8 and registry.most_alive == 0
    fhir = _Watching()
    result = fhir_gate.stage_fhir(con, fhir, "run-1", chunk=4, workers=1)
    assert len(fhir.results) >= 8 and fhir.most_alive == 0
    assert result.studies + result.quarantined == staged.staged  # every chunk still counted



def test_records_quarantined_inside_the_fhir_stages_transaction_are_freed_before_its_commit(monkeypatch):
    """The FHIR stage is one transaction, and a DataFrame DuckDB reads through a registered view is kept
    by the view's catalog entry until the commit, even once dropped (the 100,000-study stage's slices of
    resources peaked at 2.6 GB so: see test_store_export). Quarantined records, payloads and all, go in
    through a relation too."""
    import types

    import pandas as pd

    from expectations import quarantine
    from expectations.runtime import now_utc
    from transforms.omop._db import in_transaction

    con = raw_connection()
    stage_registry(con, GxRunner(), "run-1", chunk=4)
    held = {"run_id": "run-1", "quarantined_at": now_utc(), "source_file": "f.json", "record_key": "NCT0",
            "source_record": "", "suite": "fhir_staging", "rule": "valid_resource", "field": "x", "reason": "test",
            "payload": "{}" * 10_000}
    frames: list[weakref.ref] = []
    checks: list[tuple[bool, int]] = []
    make, mark = pd.DataFrame, fhir_gate.mark_state

    def data_frame(*args, **kwargs):
        frame = make(*args, **kwargs)
        frames.append(weakref.ref(frame))
        return frame

    def marking(con, rows, *args):  # after each chunk's verdict: a record held, as the stage writes one
        quarantine.write_quarantine(con, [held])
        gc.collect()
        checks.append((in_transaction(con), sum(f() is not None for f in frames)))
        return mark(con, rows, *args)

    monkeypatch.setattr(fhir_gate, "mark_state", marking)
    monkeypatch.setattr(quarantine, "pd", types.SimpleNamespace(DataFrame=data_frame))
    fhir_gate.stage_fhir(con, GxRunner(), "run-1", chunk=4, workers=1)
    assert len(checks) >= 3 and len(frames) == len(checks) and checks == [(True, 0)] * len(checks)
    assert con.execute("SELECT count(*) FROM quarantine.record WHERE reason = 'test'").fetchone()[0] == len(checks)
