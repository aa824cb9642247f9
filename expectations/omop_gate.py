"""Stage the batch's OMOP rows and validate them with suite `omop_dqd` (generated from the DQD catalog).

OMOP rows are derived from records the registry suite already accepted, so a failure here is a
mapping or vocabulary fault rather than one bad record: every rule is batch-level and blocks the
publish, with the failing rows as examples.
"""
from __future__ import annotations

from dataclasses import dataclass

from expectations.quarantine import write_rule_results
from expectations.runtime import GxRunner, SuiteResult, chunked, key_range, merge_results
from expectations.suites.omop_dqd import SLICE_ROWS, SUITE, rules, staged_slices
from schemas.omop.ddl import create_omop_schema, omop_ddl
from schemas.omop.spec import cdm_tables, quote
from transforms.omop._db import keep_cuts, reset_cuts, summarise_cuts
from transforms.omop.publish import merge_stage, primary_keys, staged_tables
from transforms.omop.trials import map_trials
from trialhouse.settings import stage_chunk

STAGE = "stage_omop"
PART = "stage_omop_part"  # one chunk, mapped before it joins STAGE
PUBLISHED = "omop"


@dataclass
class OmopStageResult:
    counts: dict[str, int]
    suite: SuiteResult


def reset_stage(con, schema: str = STAGE) -> None:
    """An empty staging schema, its tables without primary keys (the suite checks them, see omop_ddl)."""
    con.execute(f"DROP SCHEMA IF EXISTS {quote(schema)} CASCADE")
    create_omop_schema(con, schema, primary_keys=False)


def validate_stage(con, runner: GxRunner, run_id: str, slice_rows: int | None = None) -> SuiteResult:
    """Run the suite on every staged table, a slice of rows at a time (see staged_slices): a rule
    passes when it passes on every slice, so a DQD threshold applies per slice of a big table."""
    tables = staged_tables(con, STAGE)
    spec = {t.name: [f.name for f in t.fields] for t in cdm_tables().values()}
    pks = primary_keys()
    keys = sorted(set(pks.values()))
    suite_rules = rules(con, STAGE, PUBLISHED, tables, spec)
    parts = []
    for table, frame in staged_slices(con, STAGE, tables, pks, slice_rows or SLICE_ROWS):
        parts.append(runner.validate(SUITE, [r for r in suite_rules if r.frame == table], {table: frame},
                                     key_columns=keys, docs=False))
        del frame  # before the next slice is read: a comprehension's variable held two slices at once
    result = merge_results(SUITE, parts, runner.build_docs())
    reasons = {}
    for rr in result.failures():
        reasons[rr.rule.id] = [f"{rr.rule.field}: {_row(row)} {rr.rule.message}" for row in rr.unexpected[:20]] or [
            f"{rr.rule.field}: {rr.rule.message}"]
    write_rule_results(con, run_id, result, reasons, extra=_cut_rules(con, run_id, reasons))
    return result


def _cut_rules(con, run_id: str, reasons: dict[str, list[str]]) -> list[tuple]:
    """Warnings `value_cut.<table>.<column>`, counted over the run's quarantine.value_cut: the cuts
    this connection's mapping noted (transforms.omop._db.note_cuts) whose value the stage holds are
    added to it first. Over the run, not this call: the site stage maps more rows into the same
    stage (participants, their sites) and validates it again, on a connection of its own."""
    kept = keep_cuts(con, STAGE)
    con.execute(f"INSERT INTO quarantine.value_cut SELECT ?, k.* FROM {kept} k WHERE NOT EXISTS ("
                "SELECT 1 FROM quarantine.value_cut q WHERE q.run_id = ? AND q.table_name = k.table_name "
                "AND q.column_name = k.column_name AND q.row_key = k.row_key)", [run_id, run_id])
    con.execute(f"DROP TABLE temp.main.{kept}")
    extra = []
    for cut in summarise_cuts(con, "quarantine.value_cut", "WHERE run_id = ?", [run_id]):
        rule = f"value_cut.{cut['table']}.{cut['column']}"
        staged = con.execute(f"SELECT count(*) FROM {quote(STAGE)}.{quote(cut['table'])}").fetchone()[0]
        extra.append((rule, "warning", cut["column"], staged, cut["rows"]))
        reasons[rule] = cut["examples"]
    return extra


def values_cut_rules(con, run_id: str) -> list[tuple[str, int, str]]:
    """(rule, values cut, first example) of the run's `value_cut.*` warnings."""
    rows = con.execute("SELECT rule, failed, examples->>0 FROM quarantine.rule_result WHERE run_id = ? AND suite = ? "
                       "AND level = 'warning' AND starts_with(rule, 'value_cut.') AND failed > 0 ORDER BY rule", [run_id, SUITE]).fetchall()
    return [(rule, failed, example or "") for rule, failed, example in rows]


def _row(row: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())


def stage_trials(con, runner: GxRunner, run_id: str, chunk: int | None = None) -> OmopStageResult:
    """Map the batch `chunk` studies at a time, then validate it whole.

    The SQL mapping's memory grows with what it maps (the 100,000-study extract ran out of memory
    under a 2 GB cap), so each chunk is mapped into an empty part schema and folded into
    `stage_omop`: study-owned rows by study, and a shared row (site, investigator, source term)
    only if no earlier chunk staged it. A batch describes a shared site or investigator by the first
    study by NCT id that lists it, empty fields included, and numbers new ids by that study
    (id_map.assign_ids), so chunks of any size stage the same rows with the same ids. The suite then runs
    table by table on the whole batch, not per chunk: great-expectations costs ~4 s per run of its
    ~100 rules whatever the rows (measured), so once per chunk would dominate.
    """
    create_omop_schema(con, PUBLISHED)
    reset_stage(con)
    reset_stage(con, PART)
    reset_cuts(con)
    con.execute("DELETE FROM quarantine.value_cut WHERE run_id = ?", [run_id])  # a step run again
    ncts = [r[0] for r in con.execute("SELECT nct_id FROM stage.ctgov_study ORDER BY nct_id").fetchall()]
    tables: list[str] = []
    for i, part in enumerate(chunked(ncts, chunk or stage_chunk())):
        con.execute("CREATE OR REPLACE TEMP TABLE _omop_chunk AS SELECT nct_id, version_key FROM stage.ctgov_study "
                    "WHERE nct_id BETWEEN ? AND ?", key_range(part))
        # The chunk's payloads are read where they lie, by the extract's one pass: copied into a temp
        # table first, they were decompressed, written and read again (0.45 of the 20,000-study stage's 4.4 s).
        con.execute("CREATE OR REPLACE TEMP VIEW _omop_chunk_payload AS SELECT c.nct_id, v.payload FROM _omop_chunk c "
                    "JOIN raw.ctgov_study_version v USING (version_key)")
        _empty_part(con)
        tables = list(map_trials(con, source="_omop_chunk_payload", schema=PART, vocab_schema=PUBLISHED))
        _keep_latest_cdm_source(con)
        merge_stage(con, PART, STAGE, "_omop_chunk", keep_shared=True)
        if i % CHECKPOINT_CHUNKS == CHECKPOINT_CHUNKS - 1:
            con.execute("CHECKPOINT")
    con.execute("DROP SCHEMA stage_omop_part CASCADE")
    con.execute("DROP VIEW IF EXISTS temp.main._omop_chunk_payload")
    con.execute("DROP TABLE IF EXISTS temp.main._omop_chunk")
    counts = {t: con.execute(f"SELECT count(*) FROM {quote(STAGE)}.{quote(t)}").fetchone()[0] for t in tables}
    return OmopStageResult(counts, validate_stage(con, runner, run_id))


# Bulk writes go straight into the file (trialhouse.workfile), so the WAL may never grow enough to
# trigger a checkpoint within the stage, and what DuckDB holds until one (the dropped part tables'
# blocks, committed rows' in-memory state) would grow with the batch. The staged tables' primary-key
# indexes were most of it (92 MB by the end of 600,000 studies, 16-26 MB with these checkpoints, ~0.4 s
# each there) until the staging schemas lost their keys (see reset_stage).
CHECKPOINT_CHUNKS = 20


def _empty_part(con) -> None:
    """Drop and re-create the part tables the last chunk filled (a handful; the DDL of all ~40 costs 0.3 s).

    Not DELETE: DuckDB kept every chunk's deleted rows in memory it cannot evict until a checkpoint
    (1.5-3.5 MB a chunk, with a checkpoint every 10 chunks or without), and at 600,000 studies it ran out of
    its 512 MB cap at chunk 74 (95 with the checkpoints). With the tables dropped, that memory stays flat
    (measured on the 600,000-study warehouse: DuckDB's table memory 140-180 MB throughout, the stage
    124 s; with DELETE on a plain connection, 205 s)."""
    filled = staged_tables(con, PART)
    ddl = {name: statement for name, statement in zip(cdm_tables(), omop_ddl(PART, primary_keys=False)[1:])}
    for t in filled:
        con.execute(f"DROP TABLE {quote(PART)}.{quote(t)}")
        con.execute(ddl[t])


def _keep_latest_cdm_source(con) -> None:
    """`cdm_source` describes the whole batch: a chunk's row replaces the staged one only if newer."""
    con.execute("DELETE FROM stage_omop_part.cdm_source WHERE source_release_date <= "
                "(SELECT max(source_release_date) FROM stage_omop.cdm_source)")
