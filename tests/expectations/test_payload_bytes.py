"""The registry and FHIR stages read payloads as UTF-8 bytes (`encode`), which DuckDB makes, pickle sends
to a worker and orjson parses with less work than text (~25 us a study of CPU less in all). The bytes
must be the stored text exactly: a cast to BLOB would read `\\x41` in the text as an escape."""
import json

from expectations import fhir_gate, registry_gate
from expectations.runtime import GxRunner
from tests.raw_fixtures import CTGOV, SEED, insert_raw, raw_connection
from transforms.ctgov.records import parse_payload


def test_stages_hand_workers_the_stored_text_as_utf8_bytes(monkeypatch):
    con = raw_connection()
    rec = json.loads((CTGOV / f"{SEED}.json").read_text())
    rec["protocolSection"]["identificationModule"]["nctId"] = "NCT04000001"
    title = "Étude \\x41 \\\\ “quoted” 中文 🧪"
    rec["protocolSection"]["identificationModule"]["briefTitle"] = title
    insert_raw(con, rec, "odd.json")
    seen: dict[str, list] = {"registry": [], "fhir": []}
    flatten, map_chunk = registry_gate.flatten_slice, fhir_gate.map_chunk

    def flattening(rows):
        seen["registry"] += [r[5] for r in rows]
        return flatten(rows)

    def mapping(rows):
        seen["fhir"] += [r[4] for r in rows]
        return map_chunk(rows)

    monkeypatch.setattr(registry_gate, "flatten_slice", flattening)
    monkeypatch.setattr(fhir_gate, "map_chunk", mapping)
    staged = registry_gate.stage_registry(con, GxRunner(None), "run-1", workers=1)
    fhir = fhir_gate.stage_fhir(con, GxRunner(None), "run-1", workers=1)
    assert staged.staged == fhir.studies + fhir.quarantined > 1
    stored = dict(con.execute("SELECT nct_id, payload FROM raw.ctgov_study_version").fetchall())
    for stage, payloads in seen.items():
        assert payloads and all(isinstance(p, bytes) for p in payloads), stage
        odd = [p for p in payloads if b"NCT04000001" in p]
        assert len(odd) == 1 and odd[0] == stored["NCT04000001"].encode("utf-8"), stage
        assert parse_payload(odd[0])["protocolSection"]["identificationModule"]["briefTitle"] == title
    assert con.execute("SELECT resource ->> '$.title' FROM stage_fhir.resource WHERE resource_type = 'ResearchStudy' "
                       "AND id = 'nct04000001'").fetchone()[0] == title
