"""Numeric settings: a mistyped value is named, with its variable, before anything runs."""
import os

import pytest

from orchestration.definitions import build_definitions
from trialhouse.cli import main
from trialhouse.settings import (ENV_DATA_DOCS_KEEP, ENV_MAX_QUARANTINE_SHARE, ENV_WORKERS, GateLimits, SettingError,
                                 data_docs_keep, setting_problems, stage_workers)


def test_unset_or_empty_gives_the_default_and_a_number_is_read(monkeypatch):
    monkeypatch.delenv(ENV_DATA_DOCS_KEEP, raising=False)
    assert data_docs_keep() == 30
    monkeypatch.setenv(ENV_DATA_DOCS_KEEP, "")
    assert data_docs_keep() == 30
    monkeypatch.setenv(ENV_DATA_DOCS_KEEP, "7")
    assert data_docs_keep() == 7
    monkeypatch.setenv(ENV_MAX_QUARANTINE_SHARE, "0.35")
    assert GateLimits.from_env().max_quarantine_share == 0.35
    assert setting_problems() == []


def test_a_value_that_is_not_a_number_names_its_variable(monkeypatch):
    monkeypatch.setenv(ENV_WORKERS, "two")
    with pytest.raises(SettingError, match=r"TRIALHOUSE_WORKERS='two' is not a whole number"):
        stage_workers()
    monkeypatch.setenv(ENV_MAX_QUARANTINE_SHARE, "20%")
    assert setting_problems() == [
        "TRIALHOUSE_MAX_QUARANTINE_SHARE='20%' is not a number (unset it for the default, 0.2)",
        f"TRIALHOUSE_WORKERS='two' is not a whole number (unset it for the default, {os.cpu_count() or 1})",
    ]


def test_the_commands_stop_before_doing_anything(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV_DATA_DOCS_KEEP, "thirty")
    (tmp_path / "landing").mkdir()
    code = main(["run", "--landing", str(tmp_path / "landing"), "--warehouse", str(tmp_path / "wh.duckdb"),
                 "--export", str(tmp_path / "exports")])
    assert code == 2
    assert "TRIALHOUSE_DATA_DOCS_KEEP='thirty' is not a whole number" in capsys.readouterr().err
    assert not (tmp_path / "wh.duckdb").exists() and not (tmp_path / "wh.work.duckdb").exists()


def test_the_dagster_definitions_do_not_load_with_one(monkeypatch):
    monkeypatch.setenv(ENV_WORKERS, "1.5")
    with pytest.raises(SettingError, match="TRIALHOUSE_WORKERS='1.5'"):
        build_definitions()


@pytest.mark.parametrize("name, raw, needle", [
    ("TRIALHOUSE_MAX_QUARANTINE_SHARE", "-1", "must be a number from 0.0 to 1.0"),  # blocked every batch
    ("TRIALHOUSE_MAX_QUARANTINE_SHARE", "nan", "must be a number from 0.0 to 1.0"),  # never blocked one
    ("TRIALHOUSE_MIN_ROW_RATIO", "5", "must be a number from 0.0 to 1.0"),  # blocked every changed study
    ("TRIALHOUSE_MIN_BATCH_FOR_SHARE", "0", "must be a whole number at least 1"),
    ("TRIALHOUSE_STAGE_CHUNK", "-5", "must be a whole number at least 1"),  # quietly 1
    ("TRIALHOUSE_WORKERS", "-3", "must be a whole number at least 1"),
    ("TRIALHOUSE_DATA_DOCS_KEEP", "-1", "must be a whole number at least 0"),  # quietly 0: kept every run's
    ("TRIALHOUSE_CTGOV_MIN_INTERVAL", "-5", "must be a number at least 0.0"),  # no pacing at all
    ("TRIALHOUSE_DUCKDB_MEMORY", "abc", "must be a size such as 512MB"),  # a parser error in three steps
    ("TRIALHOUSE_DUCKDB_MEMORY", "1KB", "at least 64MB"),  # out of memory in three steps
    ("TRIALHOUSE_PSEUDONYM_KEY", "short", "5 bytes long: a pseudonym key must be at least 16"),  # failed the publish
])
def test_a_value_out_of_its_range_is_named_before_anything_runs(monkeypatch, name, raw, needle):
    monkeypatch.setenv(name, raw)
    (problem,) = setting_problems()
    assert problem.startswith(name) and needle in problem
    if name != "TRIALHOUSE_PSEUDONYM_KEY":  # a key is never echoed
        assert repr(raw) in problem
    else:
        assert raw not in problem


@pytest.mark.parametrize("raw", ["384MB", "1GB", "2GiB", " 512 MB "])
def test_memory_sizes_duckdb_reads_are_taken(monkeypatch, raw):
    import duckdb

    from trialhouse.settings import duckdb_memory_limit

    monkeypatch.setenv("TRIALHOUSE_DUCKDB_MEMORY", raw)
    assert setting_problems() == []
    duckdb.connect(config={"memory_limit": duckdb_memory_limit()}).close()
