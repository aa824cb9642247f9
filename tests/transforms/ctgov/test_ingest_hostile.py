"""Raw ingestion of hostile but plausible files: each bad record is held with its file, record and field,
and the good records beside it still land. Every case here crashed a whole run, or dropped the rest of its
file, before (found by an adversarial review)."""
import json
import zipfile

import pytest

from tests.conftest import CTGOV
from transforms.ctgov import ingest, landing_scan, records
from transforms.ctgov.ingest import ingest_landing, scan_landing

SEED = (CTGOV / "NCT06668571.json").read_text()
P = "protocolSection"


def study(nct_id: str, title: str | None = None) -> dict:
    rec = json.loads(SEED)
    rec[P]["identificationModule"]["nctId"] = nct_id
    if title is not None:
        rec[P]["identificationModule"]["briefTitle"] = title
    return rec


def text(nct_id: str, title: str | None = None) -> str:
    return json.dumps(study(nct_id, title))


def versions(con) -> set[str]:
    return {r[0] for r in con.execute("SELECT nct_id FROM raw.ctgov_study_version").fetchall()}


def held(con) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in con.execute(
        "SELECT source_record, field, reason FROM quarantine.record ORDER BY source_record").fetchall()}


def test_bad_zip_members_are_held_one_by_one_and_the_rest_of_the_zip_lands(con, landing, monkeypatch):
    monkeypatch.setattr(records, "MAX_RECORD_BYTES", 64 * 1024)  # the cap, small: no 32 MB member here
    deep = '{"protocolSection": {"identificationModule": {"nctId": "NCT99000003"}}, "x": ' + "[" * 5000 + "]" * 5000 + "}"
    path = landing.root / "ctgov" / "bulk.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("NCT99000001.json", text("NCT99000001"))
        zf.writestr("NCT99000002.json", text("NCT99000002").encode("utf-16"))  # UTF-16: read as before
        zf.writestr("NCT99000003.json", deep)  # deeper than Python's parser goes
        zf.writestr("NCT99000004.json", text("NCT99000004", "\ud800 lone"))  # a lone surrogate, as JSON escapes it
        zf.writestr("NCT99000005.json", text("NCT99000005", "x" * 70_000))  # over the (patched) size of a record
        zf.writestr("NCT99000006.json", b"\xff\xfe\x00not json at all")
        zf.writestr("NCT99000007.json", text("NCT99000007"))

    summary = ingest_landing(con, landing.root, run_id="r1")

    assert summary.files_failed == 0 and summary.files_loaded == 1, summary.errors
    assert versions(con) == {"NCT99000001", "NCT99000002", "NCT99000007"}
    bad = held(con)
    assert set(bad) == {f"NCT9900000{i}.json" for i in (3, 4, 5, 6)}
    assert "nested too deeply" in bad["NCT99000003.json"][1]
    assert bad["NCT99000004.json"][0] == "protocolSection.identificationModule.briefTitle"
    assert "lone surrogate" in bad["NCT99000004.json"][1]
    assert "more than a study record can be" in bad["NCT99000005.json"][1] and "not inflated" in bad["NCT99000005.json"][1]
    assert all(reason.startswith("ctgov/bulk.zip record NCT9900000") for _, reason in bad.values())
    assert con.execute("SELECT status, records_seen FROM raw.landed_file").fetchone() == ("loaded", 7)


def test_a_page_study_keeps_what_the_json_module_read_and_a_lone_surrogate_holds_only_its_study(con, landing):
    """A page with NaN needs Python's parser; orjson wrote its NaN back as null, so the same study was
    published from a page and held from a file of its own. A study with a lone surrogate failed the
    whole page, and the studies after it with it."""
    nan = study("NCT99000011")
    nan[P]["designModule"]["enrollmentInfo"]["count"] = float("nan")
    page = {"studies": [study("NCT99000010"), nan, study("NCT99000012", "\ud800"), study("NCT99000013")]}
    landing.write("page.json", json.dumps(page))

    summary = ingest_landing(con, landing.root, run_id="r1")

    assert summary.files_failed == 0, summary.errors
    assert versions(con) == {"NCT99000010", "NCT99000011", "NCT99000013"}
    (payload,) = con.execute("SELECT payload FROM raw.ctgov_study_version WHERE nct_id = 'NCT99000011'").fetchone()
    assert '"count": NaN' in payload  # as received: the registry gate holds it, as it holds the single file
    assert held(con) == {"studies[2]": ("protocolSection.identificationModule.briefTitle",
                                        "ctgov/page.json record NCT99000012 (studies[2]): protocolSection.identificationModule."
                                        "briefTitle is not valid Unicode text (a lone surrogate, e.g. \\ud800)")}


def test_a_json_file_too_big_to_be_a_study_or_page_fails_alone(con, landing, monkeypatch):
    monkeypatch.setattr(records, "MAX_JSON_FILE_BYTES", 100_000)
    landing.write("huge.json", text("NCT99000021", "x" * 200_000))
    landing.write("fine.json", text("NCT99000022"))
    summary = ingest_landing(con, landing.root, run_id="r1")
    assert summary.files_failed == 1 and summary.files_loaded == 1
    assert "ctgov/huge.json" in summary.errors[0] and "more than a ClinicalTrials.gov study or API page" in summary.errors[0]
    assert versions(con) == {"NCT99000022"}


def test_a_link_to_nothing_and_a_file_removed_before_its_read_do_not_stop_the_run(con, landing):
    landing.write("a.json", text("NCT99000031"))
    (landing.root / "ctgov" / "dangling.json").symlink_to(landing.root / "nowhere.json")
    gone = landing.write("b.json", text("NCT99000032"))
    landing.write("c.json", text("NCT99000033"))
    files = scan_landing(landing.root)
    assert [f.rel for f in files] == ["ctgov/a.json", "ctgov/b.json", "ctgov/c.json"]
    gone.unlink()  # between the scan and its read

    summary = ingest_landing(con, landing.root, run_id="r1", files=files)

    assert summary.files_vanished == ["ctgov/b.json"] and summary.files_failed == 0
    assert summary.as_dict()["files_vanished"] == 1
    assert versions(con) == {"NCT99000031", "NCT99000033"}
    landing.write("b.json", text("NCT99000032"))  # landed again: read then
    ingest_landing(con, landing.root, run_id="r2")
    assert versions(con) == {"NCT99000031", "NCT99000032", "NCT99000033"}


@pytest.mark.parametrize("depth", [300, 1100])
def test_a_deeply_nested_single_file_fails_alone(con, landing, depth):
    """orjson writes at most 255 levels and reads 1,024; Python's json module reads up to its recursion
    limit. Within that the study lands; beyond it the file fails with its reason, never the run."""
    rec = study("NCT99000041")
    rec["x"] = json.loads("[" * depth + "]" * depth) if depth < 900 else None
    body = json.dumps(rec) if depth < 900 else text("NCT99000041")[:-1] + ', "x": ' + "[" * depth + "]" * depth + "}"
    landing.write("deep.json", body)
    landing.write("fine.json", text("NCT99000042"))
    summary = ingest_landing(con, landing.root, run_id="r1")
    assert "NCT99000042" in versions(con)
    if depth < 900:
        assert "NCT99000041" in versions(con) and summary.files_failed == 0
    else:
        assert summary.files_failed == 1 and "nested too deeply" in summary.errors[0], summary.errors


def test_zip_members_that_are_not_json_files_are_held_with_their_reason(con, landing):
    """They were skipped with nothing said: the zip was `loaded` with 0 records."""
    path = landing.root / "ctgov" / "mixed.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("README.txt", "not a study")
        zf.writestr("more/", "")  # a folder: nothing to hold
        zf.writestr("studies.ndjson", text("NCT99000051") + "\n")
        zf.writestr("NCT99000052.json", text("NCT99000052"))
    summary = ingest_landing(con, landing.root, run_id="r1")
    assert summary.files_loaded == 1 and summary.records_quarantined == 2
    assert versions(con) == {"NCT99000052"}
    assert held(con) == {name: ("$", f"ctgov/mixed.zip record {name}: not a .json member: not read as a study record")
                         for name in ("README.txt", "studies.ndjson")}


def test_a_linked_folder_is_walked_once_and_a_link_back_up_does_not_loop(con, landing, tmp_path):
    """os.walk passed over a linked folder without a word: a download linked into the landing folder
    never landed, though a linked file did."""
    downloads = tmp_path / "downloads"
    (downloads / "2026-11").mkdir(parents=True)
    (downloads / "2026-11" / "a.json").write_text(text("NCT99000051"))
    (downloads / "up").symlink_to(landing.root / "ctgov", target_is_directory=True)  # a loop through the landing
    landing.write("b.json", text("NCT99000052"))
    (landing.root / "ctgov" / "downloads").symlink_to(downloads, target_is_directory=True)
    (landing.root / "ctgov" / "again").symlink_to(downloads, target_is_directory=True)  # the same folder twice

    files = scan_landing(landing.root)
    assert [f.rel for f in files] == ["ctgov/b.json", "ctgov/again/2026-11/a.json"]
    since, _, _ = landing_scan.scan_since(landing.root, "ctgov", 0, settle_ns=0)
    assert sorted(s.rel for s in since) == ["ctgov/again/2026-11/a.json", "ctgov/b.json"]
    ingest_landing(con, landing.root, run_id="r1")
    assert versions(con) == {"NCT99000051", "NCT99000052"}


def _failed(summary) -> dict[str, str]:
    return {e.split(": ", 1)[0]: e.split(": ", 1)[1] for e in summary.errors}


def test_what_cannot_be_read_is_reported_by_name_and_the_studies_beside_it_land(con, landing, monkeypatch):
    """A link loop, a pipe, a file without read permission, a name that is not UTF-8 and a folder that
    cannot be listed each crashed the step (or hung it, or passed without a word), and the good study
    beside them was not published. Each is now a failed file naming why, every run until fixed."""
    import os

    ctgov = landing.root / "ctgov"
    landing.write("good.json", text("NCT99000061"))
    (ctgov / "loop.json").symlink_to(ctgov / "loop.json")
    os.mkfifo(ctgov / "pipe.json")
    landing.write("locked.json", text("NCT99000062"))
    (ctgov / os.fsdecode(b"bad\xff.json")).write_text(text("NCT99000063"))
    (ctgov / "shut").mkdir()
    (ctgov / "shut" / "inside.json").write_text(text("NCT99000064"))
    real_sha, real_scandir = ingest.sha256_file, os.scandir

    def no_permission(path):  # as `chmod 000` does to anyone but root, which the tests may run as
        if path.name == "locked.json":
            raise PermissionError(13, "Permission denied", str(path))
        return real_sha(path)

    def unlistable(path="."):
        if os.fspath(path).endswith("/shut"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(ingest, "sha256_file", no_permission)
    monkeypatch.setattr(os, "scandir", unlistable)

    summary = ingest_landing(con, landing.root, run_id="r1")

    assert versions(con) == {"NCT99000061"}
    assert _failed(summary) == {
        "ctgov/bad\\xff.json": "file name is not UTF-8 text: rename it",
        "ctgov/locked.json": "cannot be read: Permission denied",
        "ctgov/loop.json": "cannot be read: Too many levels of symbolic links",
        "ctgov/pipe.json": "is not a regular file (a pipe, socket or device): nothing to read",
        "ctgov/shut": "folder cannot be read: Permission denied",
    }
    assert summary.files_failed == 5 and summary.files_loaded == 1
    # the sensor's scan passes over them too (a name that is not UTF-8 crashed every tick: its run key)
    since, _, _ = landing_scan.scan_since(landing.root, "ctgov", 0, settle_ns=0)
    assert landing_scan.run_key("ctgov", since) and "ctgov/good.json" in {s.rel for s in since}
    # held as files, each once, however many runs find them so; a sensor's batch decides only its own
    unreadable = "SELECT source_file, reason, run_id FROM quarantine.record WHERE rule = 'file_readable' " \
                 "AND released_at IS NULL ORDER BY 1"
    first = con.execute(unreadable).fetchall()
    assert [(f, r.split(": ", 1)[0], run) for f, r, run in first] == [(f, f, "r1") for f in sorted(_failed(summary))]
    assert len(ingest_landing(con, landing.root, run_id="r2").errors) == 5
    assert con.execute(unreadable).fetchall() == first
    ingest_landing(con, landing.root, run_id="r2b", files=[ingest.landing_file(ctgov / "good.json", "ctgov/good.json")])
    assert con.execute(unreadable).fetchall() == first
    monkeypatch.setattr(ingest, "sha256_file", real_sha)
    monkeypatch.setattr(os, "scandir", real_scandir)
    (ctgov / os.fsdecode(b"bad\xff.json")).rename(ctgov / "renamed.json")
    # a sensor's batch names neither a name put right nor a removed file: it releases held paths no longer there
    ingest_landing(con, landing.root, run_id="r2c", files=[ingest.landing_file(ctgov / "good.json", "ctgov/good.json")])
    assert [f for f, _, _ in con.execute(unreadable).fetchall()] == sorted(set(_failed(summary)) - {"ctgov/bad\\xff.json"})
    summary = ingest_landing(con, landing.root, run_id="r3")
    assert versions(con) == {"NCT99000061", "NCT99000062", "NCT99000063", "NCT99000064"}
    assert sorted(_failed(summary)) == ["ctgov/loop.json", "ctgov/pipe.json"]
    assert [f for f, _, _ in con.execute(unreadable).fetchall()] == ["ctgov/loop.json", "ctgov/pipe.json"]


def test_a_file_rewritten_with_its_size_and_mtime_kept_is_read_again(con, landing):
    """`cp -p`, `rsync -t` or a coarse-mtime mount keep (size, mtime) across a rewrite: the new content
    was never read. Its ctime moves, and nothing sets it back."""
    import os

    path = landing.write("s.json", text("NCT99000071", "Title A"))
    ingest_landing(con, landing.root, run_id="r1")
    st = path.stat()
    path.write_text(text("NCT99000072", "Title B"))  # as long, another study
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    ingest_landing(con, landing.root, run_id="r2")
    assert versions(con) == {"NCT99000071", "NCT99000072"}
    # unchanged since: not hashed again
    assert ingest_landing(con, landing.root, run_id="r3").files_new == 0


def test_a_zip_member_whose_name_is_not_the_utf8_its_flag_says_is_held_and_the_rest_loads(con, landing):
    """Its name failed to decode and the whole archive failed, its good members unread and the bad
    one not named."""
    path = landing.root / "ctgov" / "names.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("NCT99000081.json", text("NCT99000081"))
        zf.writestr("NCT9900008\u00e9.json", text("NCT99000082"))  # not ASCII: flagged "the name is UTF-8"
        zf.writestr("NCT99000083.json", text("NCT99000083"))
    # the flag stays, the name is not UTF-8 any more (0xff never is)
    path.write_bytes(path.read_bytes().replace("NCT9900008\u00e9.json".encode(), b"NCT9900008\xff\xa9.json"))
    summary = ingest_landing(con, landing.root, run_id="r1")
    assert summary.files_failed == 0 and summary.records_quarantined == 1
    assert versions(con) == {"NCT99000081", "NCT99000083"}
    assert held(con) == {"NCT9900008\\xff\\xa9.json": (
        "$", "ctgov/names.zip record NCT9900008\\xff\\xa9.json: member name is not UTF-8 text though its flag says so: "
        "not read")}


def twice(nct_id: str, key: str, first: str) -> str:
    """A study whose identificationModule names `key` twice: `first`, then the study's own value."""
    return text(nct_id).replace(f'"{key}": ', f'"{key}": {json.dumps(first)}, "{key}": ', 1)


TWICE = ("protocolSection.identificationModule.briefTitle is named 2 times in one object (\"First title\", "
         "\"Intravenous Ketamine for Treatment-Resistant Depression\"): JSON parsers keep different ones (DuckDB the "
         "first, Python the last), so which one the record means cannot be told")


def test_a_study_naming_a_key_twice_is_held_naming_it_and_its_values_wherever_it_comes(con, landing):
    """DuckDB's JSON functions keep a key's first value and orjson the last: such a study was published
    with one title in FHIR (Python's read) and the other in OMOP and the registry views (DuckDB's), the
    first value lost without a word. Now held, in a file of its own, a zip (UTF-8 and UTF-16, which only
    the json module reads) and a page, whose other studies land."""
    landing.write("single.json", twice("NCT99000091", "briefTitle", "First title"))
    path = landing.root / "ctgov" / "bulk.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("NCT99000092.json", twice("NCT99000092", "briefTitle", "First title"))
        zf.writestr("NCT99000093.json", twice("NCT99000093", "briefTitle", "First title").encode("utf-16"))
        zf.writestr("NCT99000094.json", text("NCT99000094"))
    page = json.dumps({"studies": [study("NCT99000095"), "@", study("NCT99000097")]})
    landing.write("page.json", page.replace('"@"', twice("NCT99000096", "briefTitle", "First title")))

    summary = ingest_landing(con, landing.root, run_id="r1")

    assert summary.files_failed == 0, summary.errors
    assert versions(con) == {"NCT99000094", "NCT99000095", "NCT99000097"}
    bad = {(f, r): (key, field, reason) for f, r, key, field, reason in con.execute(
        "SELECT source_file, source_record, record_key, field, reason FROM quarantine.record "
        "WHERE rule = 'record_keyable'").fetchall()}
    field = "protocolSection.identificationModule.briefTitle"
    # keyed and named by the study each names (`quarantine list --nct` finds them), with their place
    assert bad == {
        ("ctgov/single.json", ""): ("NCT99000091", field, f"ctgov/single.json record NCT99000091: {TWICE}"),
        ("ctgov/bulk.zip", "NCT99000092.json"): (
            "NCT99000092", field, f"ctgov/bulk.zip record NCT99000092 (NCT99000092.json): {TWICE}"),
        ("ctgov/bulk.zip", "NCT99000093.json"): (
            "NCT99000093", field, f"ctgov/bulk.zip record NCT99000093 (NCT99000093.json): {TWICE}"),
        ("ctgov/page.json", "studies[1]"): ("NCT99000096", field, f"ctgov/page.json record NCT99000096 (studies[1]): {TWICE}")}


def test_a_page_naming_its_studies_twice_fails_whole_and_names_it(con, landing):
    """One of the two lists would go unread without a word."""
    landing.write("page.json", '{"studies": [' + text("NCT99000101") + '], "studies": [' + text("NCT99000102") + "]}")
    summary = ingest_landing(con, landing.root, run_id="r1")
    assert summary.files_failed == 1 and versions(con) == set()
    assert summary.errors == ["ctgov/page.json: studies is named 2 times in one object (a list of 1, a list of 1): JSON "
                              "parsers keep different ones (DuckDB the first, Python the last), so which one the "
                              "record means cannot be told"]


def test_no_real_record_is_taken_for_one_naming_a_key_twice():
    """The check counts ':' against a re-serialisation; the records' texts are full of them (URLs, times)."""
    files = sorted(CTGOV.rglob("*.json"))
    assert len(files) > 20
    for path in files:
        data = path.read_bytes()
        assert records.named_twice(data, json.loads(data), fast=False) == {}, path
        assert records.named_twice(data, records.orjson.loads(data), fast=True) == {}, path
    same = b'{"a": {"t": "x", "t": "x"}, "b": [1, {"c": [2], "c": [2]}]}'  # one value twice: every parser reads it
    assert records.named_twice(same, json.loads(same), fast=True) == {}
    escaped = b'{"a": "x\\u003ay", "b": "p:q"}'  # a ':' written escaped is one more in the re-serialisation
    assert records.named_twice(escaped, json.loads(escaped), fast=True) == {}


def test_a_page_study_naming_a_key_twice_with_a_lone_surrogate_is_held_and_the_page_lands(con, landing):
    """Its hold's reason and payload held the surrogate, which no UTF-8 column takes: the whole file failed
    to read (a review of the change that holds keys named twice)."""
    page = json.dumps({"studies": [study("NCT99000111"), "@"]})
    landing.write("page.json", page.replace('"@"', twice("NCT99000112", "briefTitle", "x\ud800")))
    summary = ingest_landing(con, landing.root, run_id="r1")
    assert summary.files_failed == 0, summary.errors
    assert versions(con) == {"NCT99000111"}
    ((field, reason),) = held(con).values()
    assert field == "protocolSection.identificationModule.briefTitle" and '("x\\ud800", ' in reason


def test_a_json_array_of_studies_lands_each_study_and_holds_each_bad_element_by_its_place(con, landing):
    """A top-level array of study records (an extract a script or a download wrote) failed whole, so
    none of its studies was published or named in quarantine. Now each element is a record, `[i]`, in a
    file of its own and in a zip member, and what is not a study is held alone."""
    items = json.dumps([study("NCT99000121"), "@", 7, study("NCT99000124")])
    landing.write("download.json", items.replace('"@"', twice("NCT99000122", "briefTitle", "First title")))
    path = landing.root / "ctgov" / "bulk.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("extract.json", json.dumps([study("NCT99000125"), {"hello": "world"}]))
        zf.writestr("NCT99000127.json", text("NCT99000127"))

    summary = ingest_landing(con, landing.root, run_id="r1")

    assert summary.files_failed == 0 and summary.files_loaded == 2, summary.errors
    assert versions(con) == {"NCT99000121", "NCT99000124", "NCT99000125", "NCT99000127"}
    kinds = dict(con.execute("SELECT path, kind FROM raw.landed_file").fetchall())
    assert kinds == {"ctgov/download.json": records.KIND_LIST, "ctgov/bulk.zip": records.KIND_ZIP}
    assert dict(con.execute("SELECT source_record, source_file FROM raw.ctgov_study_version").fetchall()) == {
        "[0]": "ctgov/download.json", "[3]": "ctgov/download.json", "extract.json![0]": "ctgov/bulk.zip",
        "NCT99000127.json": "ctgov/bulk.zip"}
    bad = {(f, r): (field, reason) for f, r, field, reason in con.execute(
        "SELECT source_file, source_record, field, reason FROM quarantine.record").fetchall()}
    assert set(bad) == {("ctgov/download.json", "[1]"), ("ctgov/download.json", "[2]"), ("ctgov/bulk.zip", "extract.json![1]")}
    assert bad[("ctgov/download.json", "[1]")] == (
        "protocolSection.identificationModule.briefTitle", f"ctgov/download.json record NCT99000122 ([1]): {TWICE}")
    assert bad[("ctgov/download.json", "[2]")][1].startswith("ctgov/download.json record [2]: ")
    assert "record is a JSON int, not an object" in bad[("ctgov/download.json", "[2]")][1]
    assert bad[("ctgov/bulk.zip", "extract.json![1]")][1].startswith("ctgov/bulk.zip record extract.json![1]: ")


def test_a_json_array_without_a_study_fails_whole_and_says_so(con, landing):
    """Another tool's JSON list is not a registry file: refused whole, not held element by element."""
    landing.write("other.json", json.dumps([{"hello": "world"}, 1, "x"]))
    landing.write("empty.json", "[]")
    summary = ingest_landing(con, landing.root, run_id="r1")
    assert summary.files_failed == 2 and versions(con) == set()
    assert sorted(summary.errors) == [
        "ctgov/empty.json: not a ClinicalTrials.gov API v2 study or page (top level is a JSON list of 0 with no "
        "study record in it)",
        "ctgov/other.json: not a ClinicalTrials.gov API v2 study or page (top level is a JSON list of 3 with no "
        "study record in it)"]
    assert con.execute("SELECT count(*) FROM quarantine.record").fetchone()[0] == 0
