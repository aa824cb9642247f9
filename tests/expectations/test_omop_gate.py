"""The DQD suite validates big staged tables in slices of primary-key ranges; it must reach the same
verdicts as on whole tables and evaluate every row once."""
import pytest

from expectations.omop_gate import validate_stage
from expectations.registry_gate import stage_registry
from expectations.runtime import GxRunner
from schemas import ensure_base_schemas
from tests.raw_fixtures import raw_connection
from transforms.omop.trials import map_trials
from transforms.omop.vocabulary import load_vocabulary


@pytest.fixture(scope="module")
def planted():
    con = raw_connection()
    ensure_base_schemas(con)
    load_vocabulary(con, "omop")
    map_trials(con, schema="stage_omop", vocab_schema="omop")
    # a fact in the last slice naming a concept that does not exist, an investigator at a care site that does not
    con.execute("UPDATE stage_omop.metadata SET metadata_concept_id = 2147000000 "
                "WHERE metadata_id = (SELECT max(metadata_id) FROM stage_omop.metadata)")
    con.execute("UPDATE stage_omop.provider SET care_site_id = 987654321 "
                "WHERE provider_id = (SELECT min(provider_id) FROM stage_omop.provider)")
    yield con
    con.close()


def test_sliced_validation_reaches_the_whole_table_verdicts(planted):
    rows = planted.execute("SELECT count(*) FROM stage_omop.metadata").fetchone()[0]
    whole = validate_stage(planted, GxRunner(), "whole")
    sliced = validate_stage(planted, GxRunner(), "sliced", slice_rows=max(2, rows // 7))
    verdicts = {r.rule.id: r.success for r in whole.results}
    assert verdicts == {r.rule.id: r.success for r in sliced.results}
    failed = {rule for rule, ok in verdicts.items() if not ok}
    assert {"isForeignKey.metadata.metadata_concept_id", "isForeignKey.provider.care_site_id"} <= failed
    by_rule = {r.rule.id: r for r in sliced.results}
    assert by_rule["isPrimaryKey.metadata.metadata_id"].evaluated == rows  # every row, once
    assert planted.execute("SELECT count(DISTINCT run_id) FROM quarantine.rule_result").fetchone()[0] == 2


def _part_schema(con):
    return (con.execute("SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
                        "WHERE schema_name = 'stage_omop_part' ORDER BY ALL").fetchall(),
            con.execute("SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
                        "WHERE schema_name = 'stage_omop_part' ORDER BY ALL").fetchall())


def test_the_stage_drops_the_part_tables_between_chunks_and_checkpoints_as_it_goes(monkeypatch):
    """A chunk's part tables are dropped and re-created, not emptied by DELETE: DuckDB kept every chunk's
    deleted rows in memory it cannot evict until a checkpoint, and the 600,000-study stage ran out of its
    512 MB cap. A checkpoint every CHECKPOINT_CHUNKS chunks bounds what DuckDB keeps until one."""
    from expectations import omop_gate

    con = raw_connection()
    ensure_base_schemas(con)
    load_vocabulary(con, "omop")
    stage_registry(con, GxRunner(None), "run-1", workers=1)
    seen: list[str] = []
    parts: list[tuple] = []

    class Spy:
        def __init__(self, c):
            self._c = c

        def execute(self, sql, *args):
            seen.append(" ".join(sql.split()))
            if sql.startswith("CREATE OR REPLACE TEMP TABLE _omop_chunk"):
                parts.append(_part_schema(self._c))
            self._c.execute(sql, *args)
            return self

        def __getattr__(self, name):
            return getattr(self._c, name)

    monkeypatch.setattr(omop_gate, "CHECKPOINT_CHUNKS", 2)
    omop_gate.stage_trials(Spy(con), GxRunner(), "run-1", chunk=3)
    chunks = sum(s.startswith("CREATE OR REPLACE TEMP TABLE _omop_chunk") for s in seen)
    assert chunks >= 5
    emptied = [s for s in seen if s.startswith('DELETE FROM "stage_omop_part"') and " WHERE " not in s]
    assert set(emptied) <= {'DELETE FROM "stage_omop_part".cdm_source'}  # its one row, replaced by map_cdm_source
    assert sum(s.startswith('DROP TABLE "stage_omop_part"') for s in seen) >= chunks - 1
    assert seen.count("CHECKPOINT") == chunks // 2
    assert all(p == parts[1] for p in parts[1:])  # re-created as the DDL makes them: columns, types, NOT NULL
    assert parts[1][1] and not any(c[1] == "PRIMARY KEY" for c in parts[1][1])  # keys: the suite checks them


def test_a_table_without_a_primary_key_is_sliced_too(planted):
    """cohort_definition has no primary key in CDM v5.4; read whole, its 990,910 rows at 600,000 studies
    took the run process from 0.7 to 1.6 GB. It is cut by rowid, every row in exactly one slice."""
    from expectations.suites.omop_dqd import staged_slices
    from transforms.omop.publish import primary_keys

    assert "cohort_definition" not in primary_keys()
    rows = planted.execute("SELECT count(*) FROM stage_omop.cohort_definition").fetchone()[0]
    assert rows >= 20
    size = rows // 6
    frames = [f for t, f in staged_slices(planted, "stage_omop", ["cohort_definition"], primary_keys(), size)]
    assert len(frames) >= 6 and all(len(f) <= size + 1 for f in frames)
    got = sorted(tuple(r) for f in frames for r in f.astype(str).itertuples(index=False))
    whole = planted.execute("SELECT * FROM stage_omop.cohort_definition").df()
    assert got == sorted(tuple(r) for r in whole.astype(str).itertuples(index=False))


def test_every_table_with_a_uniqueness_rule_is_sliced_by_its_key():
    """Slicing by rowid is exact only where no isPrimaryKey rule checks uniqueness across slices."""
    from expectations.dqd.checks import _catalog
    from transforms.omop.publish import primary_keys

    pks = primary_keys()
    for row in _catalog("OMOP_CDMv5.4_Field_Level.csv"):
        if row["isPrimaryKey"] == "Yes":
            assert pks.get(row["cdmTableName"].lower()) == row["cdmFieldName"].strip('"').lower()


class _WatchingReads:
    """A connection whose `.df()` reads note how many frames read before are still alive."""

    def __init__(self, con):
        self._con, self.frames, self.alive_at_read = con, [], []

    def execute(self, sql, *args):
        return _WatchedCursor(self, self._con.execute(sql, *args))

    def __getattr__(self, name):
        return getattr(self._con, name)


class _WatchedCursor:
    def __init__(self, watch, cur):
        self._watch, self._cur = watch, cur

    def df(self):
        import gc
        import weakref

        gc.collect()
        self._watch.alive_at_read.append(sum(r() is not None for r in self._watch.frames))
        frame = self._cur.df()
        self._watch.frames.append(weakref.ref(frame))
        return frame

    def __getattr__(self, name):
        return getattr(self._cur, name)


def test_a_slice_is_freed_before_the_next_is_read(planted):
    """At 600,000 studies a slice of cohort_definition is ~0.45 GB in pandas; holding the last slice while
    reading the next (a list comprehension's variable did) doubled that."""
    rows = planted.execute("SELECT count(*) FROM stage_omop.metadata").fetchone()[0]
    watch = _WatchingReads(planted)
    validate_stage(watch, GxRunner(), "watched", slice_rows=max(2, rows // 7))
    assert len(watch.alive_at_read) >= 7 and max(watch.alive_at_read) == 0


def test_a_duplicate_key_in_the_staged_rows_fails_the_gate_with_its_rows():
    """The staging schemas have no primary keys (DuckDB maintained an index per staged table for
    nothing): uniqueness is the suite's isPrimaryKey rule, which names the rows, where a declared key
    made the insert itself throw."""
    from expectations import omop_gate
    from transforms.omop.publish import primary_keys

    con = raw_connection()
    ensure_base_schemas(con)
    load_vocabulary(con, "omop")
    stage_registry(con, GxRunner(None), "run-1", workers=1)
    result = omop_gate.stage_trials(con, GxRunner(), "run-1", chunk=4)
    assert not result.suite.failures()
    keyed = con.execute("SELECT count(*) FROM duckdb_constraints() WHERE schema_name = 'stage_omop' "
                        "AND constraint_type = 'PRIMARY KEY'").fetchone()[0]
    assert keyed == 0 and primary_keys()["metadata"] == "metadata_id"
    dup = con.execute("SELECT min(metadata_id) FROM stage_omop.metadata").fetchone()[0]
    con.execute("INSERT INTO stage_omop.metadata SELECT * FROM stage_omop.metadata WHERE metadata_id = ?", [dup])
    failed = {r.rule.id: r for r in omop_gate.validate_stage(con, GxRunner(), "run-2").failures()}
    assert set(failed) == {"isPrimaryKey.metadata.metadata_id"}
    assert str(dup) in " ".join(str(row) for row in failed["isPrimaryKey.metadata.metadata_id"].unexpected)


def test_an_implausible_release_date_in_cdm_source_fails_the_gate_naming_the_value():
    """cdm_source has no key column, so GX named its failing row by position only: writing the
    reason crashed the OMOP stage (AttributeError) where the gate should block with a reason."""
    from expectations import omop_gate

    con = raw_connection()
    ensure_base_schemas(con)
    load_vocabulary(con, "omop")
    stage_registry(con, GxRunner(None), "run-1", workers=1)
    omop_gate.stage_trials(con, GxRunner(), "run-1")
    con.execute("UPDATE stage_omop.cdm_source SET source_release_date = DATE '2099-01-01'")
    failed = [r.rule.id for r in omop_gate.validate_stage(con, GxRunner(), "run-2").failures()]
    assert failed == ["plausibleValue.cdm_source.source_release_date"]
    examples = con.execute("SELECT examples FROM quarantine.rule_result WHERE run_id = 'run-2' AND failed > 0").fetchone()[0]
    assert "row=0" in examples and "2099-01-01" in examples


def test_values_cut_to_fit_are_warnings_of_the_run_that_neither_block_nor_count_as_record_failures():
    """The trial stage's cuts are rule_result rows of level warning (`value_cut.<table>.<column>`),
    and they survive the site stage validating the same stage again in the same run."""
    from expectations import omop_gate
    from expectations.batch_rules import decide
    from trialhouse.settings import GateLimits

    con = raw_connection()
    ensure_base_schemas(con)
    load_vocabulary(con, "omop")
    stage_registry(con, GxRunner(None), "run-1", workers=1)
    omop_gate.stage_trials(con, GxRunner(), "run-1", chunk=4)
    rows = dict(con.execute("SELECT rule, failed FROM quarantine.rule_result WHERE run_id = 'run-1' "
                            "AND level = 'warning'").fetchall())
    longer = con.execute("SELECT count(*) FROM stage_omop.location WHERE length(location_source_value) = 50").fetchone()[0]
    assert 0 < rows["value_cut.location.location_source_value"] <= longer
    assert rows["value_cut.care_site.care_site_source_value"] > 0
    d = decide(con, "run-1", omop_gate.SUITE, GateLimits.from_env(), 0, 0)
    assert d.passed and d.record_failures == 0 and not d.failures
    assert any(w.startswith("value_cut.location.location_source_value: ") and "cut to 50" in w for w in d.warnings)
    assert omop_gate.values_cut_rules(con, "run-1")[0][0] == "value_cut.care_site.care_site_source_value"

    omop_gate.validate_stage(con, GxRunner(), "run-1")  # the site stage's second validation, nothing new cut
    again = dict(con.execute("SELECT rule, failed FROM quarantine.rule_result WHERE run_id = 'run-1' "
                             "AND level = 'warning'").fetchall())
    assert again == rows


def _two_studies_sharing_a_site(zips: tuple[str, str]):
    """Two copies of the seed record (new NCT ids) listing one Sioux Falls site, each with its zip:
    one site key, so the first study by NCT id describes the shared location."""
    import copy
    import json

    from tests.raw_fixtures import CTGOV, insert_raw

    seed = json.loads((CTGOV / "NCT06668571.json").read_text())
    con = raw_connection([])
    for nct, zip_code in zip(("NCT90000001", "NCT90000002"), zips):
        rec = copy.deepcopy(seed)
        rec["protocolSection"]["identificationModule"]["nctId"] = nct
        rec["protocolSection"]["contactsLocationsModule"]["locations"] = [
            {"facility": "Sanford USD Medical Center", "city": "Sioux Falls", "state": "South Dakota", "zip": zip_code,
             "country": "United States"}]
        insert_raw(con, rec, f"tests/data/ctgov/{nct}.json")
    ensure_base_schemas(con)
    load_vocabulary(con, "omop")
    stage_registry(con, GxRunner(None), "run-1", workers=1)
    return con


@pytest.mark.parametrize("chunk", [1, 1000])
def test_a_cut_is_reported_only_for_the_value_staged_whatever_the_chunk_size(chunk):
    """Chunk by chunk, the second study's longer description of the shared site (52 characters) was
    noted as cut, though the row staged is the first study's (47): the warning depended on the chunk size."""
    from expectations import omop_gate

    def cuts(con):
        return con.execute("SELECT rule, failed FROM quarantine.rule_result WHERE run_id = 'run-1' "
                           "AND starts_with(rule, 'value_cut.location')").fetchall()

    short_first = _two_studies_sharing_a_site(("57117", "57117-5134"))
    omop_gate.stage_trials(short_first, GxRunner(), "run-1", chunk=chunk)
    assert short_first.execute("SELECT location_source_value FROM stage_omop.location").fetchall() == [
        ("Sioux Falls, South Dakota, 57117, United States",)]
    assert cuts(short_first) == []
    long_first = _two_studies_sharing_a_site(("57117-5134", "57117"))
    omop_gate.stage_trials(long_first, GxRunner(), "run-1", chunk=chunk)
    assert cuts(long_first) == [("value_cut.location.location_source_value", 1)]
    assert long_first.execute("SELECT table_name, column_name, length, head FROM quarantine.value_cut").fetchall() == [
        ("location", "location_source_value", 52, "Sioux Falls, South Dakota, 57117-5134, United States")]


def test_the_site_stage_adds_its_cuts_to_the_trial_stages_of_the_run(tmp_path):
    """The site stage maps its sites into the same stage and validates it again: its care_site cut
    is added to the trial stage's, where it replaced their count and examples."""
    from expectations import omop_gate
    from tests.raw_fixtures import CTGOV
    from transforms.omop.participants import map_participants
    from transforms.sites.ingest import ingest_site_deliveries
    from trialhouse.synth_site import generate_delivery

    con = raw_connection([CTGOV / "NCT06668571.json", CTGOV / "NCT04267848.json"])
    ensure_base_schemas(con)
    load_vocabulary(con, "omop")
    stage_registry(con, GxRunner(None), "run-1", workers=1)
    omop_gate.stage_trials(con, GxRunner(), "run-1")
    rule = "value_cut.care_site.care_site_source_value"

    def failed():
        return dict(con.execute("SELECT rule, failed FROM quarantine.rule_result WHERE run_id = 'run-1' "
                                "AND level = 'warning'").fetchall())

    before = failed()
    assert before[rule] > 0
    (tmp_path / "landing" / "sites").mkdir(parents=True)
    generate_delivery(tmp_path / "landing" / "sites", participants=4, sites=1, seed=3)
    ingest_site_deliveries(con, tmp_path / "landing", run_id="t")
    long_name = "Mayo Clinic in Rochester, Saint Marys Campus and Methodist Hospital"
    con.execute("UPDATE raw.site_roster_row SET facility = ?", [long_name])
    map_participants(con, pseudonym_key=b"synthetic-test-pseudonym-key-000")
    omop_gate.validate_stage(con, GxRunner(), "run-1")
    after = failed()
    assert after[rule] == before[rule] + 1
    assert {r: n for r, n in after.items() if r != rule} == {r: n for r, n in before.items() if r != rule}
    assert con.execute("SELECT count(*) FROM quarantine.value_cut WHERE run_id = 'run-1' AND head = ?",
                       [long_name[:60]]).fetchone()[0] == 1
