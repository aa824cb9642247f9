"""Fixtures: a generated (synthetic) site delivery ingested into raw, the real registry record of
NCT06668571 mapped with map_trials, the bundled demo vocabulary. No real participant data."""
from __future__ import annotations

import json
import types
from pathlib import Path

import duckdb
import pytest

from transforms.omop.trials import map_trials
from transforms.omop.vocabulary import load_vocabulary
from transforms.sites.ingest import ingest_site_deliveries
from trialhouse.synth_site import generate_delivery

REPO = Path(__file__).resolve().parents[4]
SEED = "NCT06668571"
RECORD = json.loads((REPO / "tests" / "data" / "ctgov" / f"{SEED}.json").read_text())
KEY = b"synthetic-test-pseudonym-key-000"


def prepare(con, landing_root: Path, *, participants: int = 40, sites: int = 2, seed: int = 1, **kw) -> list[Path]:
    """Generate, ingest, load the demo vocabulary and map the registry record into stage_omop."""
    (landing_root / "sites").mkdir(parents=True, exist_ok=True)
    folders = generate_delivery(landing_root / "sites", participants=participants, sites=sites, seed=seed, **kw)
    ingest_site_deliveries(con, landing_root, run_id="t")
    load_vocabulary(con, "omop")
    con.execute("CREATE OR REPLACE TABLE registry_src AS SELECT ? AS nct_id, ? AS payload", [SEED, json.dumps(RECORD)])
    map_trials(con, source="registry_src", schema="stage_omop", vocab_schema="omop")
    return folders


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """40 participants at 2 sites, mapped once for the read-only tests of a module."""
    from transforms.omop.participants import map_participants

    root = tmp_path_factory.mktemp("participants")
    con = duckdb.connect(str(root / "wh.duckdb"))
    folders = prepare(con, root / "landing")
    counts = map_participants(con, pseudonym_key=KEY)
    yield types.SimpleNamespace(con=con, counts=counts, folders=folders, root=root)
    con.close()


@pytest.fixture(scope="session")
def pt():
    return types.SimpleNamespace(prepare=prepare, key=KEY, seed=SEED, record=RECORD)
