"""Arm labels of real registry records, renamed the way real labels clash (symbols, script)."""
import json
from pathlib import Path

import duckdb

from transforms.ctgov.arm_labels import ambiguous_norms, arm_lookup, arm_norm, find_arm

CTGOV = Path(__file__).resolve().parents[2] / "data" / "ctgov"


def _labels(nct: str) -> list[str]:
    rec = json.loads((CTGOV / f"{nct}.json").read_text())
    return [a["label"] for a in rec["protocolSection"]["armsInterventionsModule"]["armGroups"]]


def test_distinct_labels_match_loosely():
    lookup = arm_lookup((x, x) for x in _labels("NCT06668571"))
    assert find_arm(lookup, "  normal saline / placebo GROUP ") == "Normal Saline/Placebo Group"
    assert find_arm(lookup, "Ketamine Group") == "Ketamine Group"
    assert find_arm(lookup, "Ketamine") is None and find_arm(lookup, None) is None and find_arm(lookup, "") is None


def test_labels_that_differ_only_in_symbols_or_script_match_only_exactly():
    """NCT04207047's "Group A".."Group D" renamed: "≥"/"<" and "+"/"-" vanish from the key, and
    labels in a non-Latin script have an empty key."""
    renamed = dict(zip(_labels("NCT04207047"), ["Age ≥ 65 years", "Age < 65 years", "HER2+", "HER2-"]))
    lookup = arm_lookup((x, x) for x in renamed.values())
    assert ambiguous_norms(renamed.values()) == {"age 65 years", "her2"}
    for label in renamed.values():
        assert find_arm(lookup, f" {label} ") == label
    assert find_arm(lookup, "age 65 years") is None and find_arm(lookup, "HER2") is None
    assert find_arm(lookup, "AGE ≥ 65 YEARS") is None  # case is no help once the key is shared
    script = arm_lookup((x, x) for x in ["第一组", "第二组"])
    assert find_arm(script, "第二组") == "第二组" and find_arm(script, "第三组") is None


def test_the_key_is_duckdbs_as_the_omop_sql_writes_it():
    labels = [*_labels("NCT06668571"), "Age ≥ 65 years", "Ärzte-Gruppe (n=12)", "第一组", "  HER2+  ",
              "Ketamine 0.5 mg/m²", "Cohort Ⅱ", "ﬁrst-line", "CO₂ group", "Arm\tB", "Ｗide Ａrm", "Ñandú"]
    con = duckdb.connect()
    sql = [r[0] for r in con.execute("SELECT trim(regexp_replace(lower(strip_accents(x)), '[^a-z0-9]+', ' ', 'g')) "
                                     "FROM unnest(?::VARCHAR[]) WITH ORDINALITY t(x, i) ORDER BY i", [labels]).fetchall()]
    assert sql == [arm_norm(x) for x in labels]
    trimmed = [r[0] for r in con.execute("SELECT trim(x) FROM unnest(?::VARCHAR[]) WITH ORDINALITY t(x, i) ORDER BY i",
                                         [[" a ", "\tb\t", "c\n"]]).fetchall()]
    lookup = arm_lookup((x, x) for x in ["Age ≥ 65 years\t", "Age < 65 years"])
    assert trimmed == [" a ".strip(" "), "\tb\t".strip(" "), "c\n".strip(" ")]
    assert find_arm(lookup, "Age ≥ 65 years") is None and find_arm(lookup, "Age ≥ 65 years\t ") == "Age ≥ 65 years\t"
