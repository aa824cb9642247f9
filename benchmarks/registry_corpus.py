"""A registry-scale corpus made from the real records in tests/data/ctgov, shaped like the bulk download.

The real registry (~600,000 studies) averages ~17 KB of JSON per study with a long tail up to
3.6 MB, and about one study in ten carries results. Copying one record 100,000 times would measure
a single shape; this draws each study's size from a log-normal with that mean, takes a real record
small enough to grow into it (a results record for ~11% of studies), resamples its arms and sites
to reach the size, and gives it a new NCT id. Its free texts (summaries, descriptions, criteria)
get their words shuffled: real studies share vocabulary, not whole paragraphs, and a corpus of 32
texts repeated would compress (in the zip and in DuckDB's zstd'd storage) far better than the
registry does. Same seed, same N: the same bytes.

    uv run python -m benchmarks.registry_corpus --studies 10000 --out /tmp/ctg-studies.json.zip
"""
from __future__ import annotations

import argparse
import copy
import math
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "tests" / "data" / "ctgov"

MEAN_BYTES = 17_000  # the registry's mean study size (shared/README.md)
TARGET_MEAN = 7000  # the drawn sizes' mean: templates cannot shrink below their text, so the output lands near MEAN_BYTES
MAX_BYTES = 3_600_000  # its largest study
SIGMA = 1.0  # spread of the log-normal: median ~10 KB, a few studies above 300 KB
RESULTS_SHARE = 0.11  # studies posted with results
FIRST_NCT = 90_000_000  # synthetic ids stay clear of the real ones in tests/data
# Real NCT ids are sparse: ~600,000 studies over ~7.3 million numbers, one in 12. Synthetic ids keep
# that spacing, so anything keyed on id ranges (the FHIR export's parts) sees the registry's density.
ID_STEP = 12
ZIP_TIME = (2026, 1, 1, 0, 0, 0)  # fixed member timestamps: the zip is byte-identical per seed
# Bumped whenever the same seed and N would give other bytes: the benchmark caches corpora by it.
CORPUS_VERSION = 2
DRIFT_MIN_WORDS = 12  # strings of this many words are free text; names, codes and dates are shorter


@dataclass
class _Template:
    record: dict
    base_bytes: int  # its size with no sites
    has_results: bool


def _dumps(obj: dict) -> bytes:
    # The bulk download's members are indented like the records in tests/data.
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2)


def load_templates(folder: Path = TEMPLATES) -> tuple[list[_Template], list[dict]]:
    templates, pool = [], []
    for p in sorted(folder.glob("NCT*.json")):
        rec = orjson.loads(p.read_bytes())
        locs = rec["protocolSection"].get("contactsLocationsModule", {}).get("locations", [])
        pool.extend(locs)
        bare = copy.deepcopy(rec)
        bare["protocolSection"].get("contactsLocationsModule", {}).pop("locations", None)
        templates.append(_Template(rec, len(_dumps(bare)), "resultsSection" in rec))
    return templates, pool


class CorpusGenerator:
    def __init__(self, seed: int = 42, folder: Path = TEMPLATES):
        self.rng = random.Random(seed)
        self.templates, self.pool = load_templates(folder)
        self.loc_bytes = max(1, sum(len(_dumps(loc)) for loc in self.pool) // len(self.pool))
        # log-normal with the registry's mean: mean = exp(mu + sigma^2 / 2)
        self.mu = math.log(TARGET_MEAN) - SIGMA ** 2 / 2

    def study(self, i: int) -> dict:
        rng = self.rng
        target = min(rng.lognormvariate(self.mu, SIGMA), MAX_BYTES)
        with_results = rng.random() < RESULTS_SHARE
        group = [t for t in self.templates if t.has_results == with_results]
        fits = [t for t in group if t.base_bytes <= target] or [min(group, key=lambda t: t.base_bytes)]
        tpl = rng.choice(fits)
        rec = copy.deepcopy(tpl.record)
        ps = rec["protocolSection"]
        nct = f"NCT{FIRST_NCT + i * ID_STEP:08d}"
        ps["identificationModule"]["nctId"] = nct
        ps["identificationModule"].setdefault("orgStudyIdInfo", {})["id"] = f"SYN-{i}"
        self._resample_arms(ps)
        self._resample_sites(ps, tpl, target)
        for module, value in ps.items():
            if module != "contactsLocationsModule":  # sites share nested objects with the pool; no free text
                self._drift_texts(value)
        if "resultsSection" in rec:
            self._drift_texts(rec["resultsSection"])
        return rec

    def _drift_texts(self, node) -> None:
        """Shuffle the words of every free text in place (same words and length, a new order)."""
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if isinstance(value, str):
                words = value.split(" ")
                if len(words) >= DRIFT_MIN_WORDS:
                    self.rng.shuffle(words)
                    node[key] = " ".join(words)
            elif isinstance(value, (dict, list)):
                self._drift_texts(value)

    def _resample_arms(self, ps: dict) -> None:
        """Keep a non-empty subset of the arms, and the interventions' arm labels consistent with it."""
        aim = ps.get("armsInterventionsModule")
        arms = (aim or {}).get("armGroups") or []
        if len(arms) < 2 or self.rng.random() < 0.5:
            return
        kept = sorted(self.rng.sample(range(len(arms)), self.rng.randint(1, len(arms))))
        aim["armGroups"] = [arms[k] for k in kept]
        labels = {a.get("label") for a in aim["armGroups"]}
        for iv in aim.get("interventions") or []:
            if "armGroupLabels" in iv:
                iv["armGroupLabels"] = [lab for lab in iv["armGroupLabels"] if lab in labels]
                if not iv["armGroupLabels"]:
                    del iv["armGroupLabels"]

    def _resample_sites(self, ps: dict, tpl: _Template, target: float) -> None:
        """Grow (or shrink) the site list toward the target size, from this study's sites and the pool."""
        clm = ps.get("contactsLocationsModule")
        own = (clm or {}).get("locations") or []
        if not own:
            return
        k = max(1, round((target - tpl.base_bytes) / self.loc_bytes))
        if k <= len(own):
            chosen = [own[j] for j in sorted(self.rng.sample(range(len(own)), k))]
        else:
            chosen = list(own) + [self.rng.choice(self.pool) for _ in range(k - len(own))]
        seen: dict[str, int] = {}
        out = []
        for loc in chosen:
            loc = dict(loc)
            name = loc.get("facility") or "Site"
            n = seen[name] = seen.get(name, 0) + 1
            if n > 1:  # a resampled site is a different site of the same network, not a duplicate
                loc["facility"] = f"{name} (site {n})"
            out.append(loc)
        clm["locations"] = out


def write_bulk_zip(path: Path, n: int, seed: int = 42) -> dict:
    """Write N studies as `ctg-studies.json.zip` members `NCT…json`; returns size figures."""
    gen = CorpusGenerator(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")  # the landing scan ignores in-flight files
    total = largest = with_results = 0
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for i in range(n):
            rec = gen.study(i)
            data = _dumps(rec)
            total += len(data)
            largest = max(largest, len(data))
            with_results += "resultsSection" in rec
            info = zipfile.ZipInfo(f"{rec['protocolSection']['identificationModule']['nctId']}.json", ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data, compresslevel=1)
    tmp.replace(path)
    return {"studies": n, "json_bytes": total, "mean_bytes": total // max(n, 1), "largest_bytes": largest,
            "with_results": with_results, "zip_bytes": path.stat().st_size}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=Path("ctg-studies.json.zip"))
    args = ap.parse_args(argv)
    print(write_bulk_zip(args.out, args.studies, args.seed))


if __name__ == "__main__":
    main()
