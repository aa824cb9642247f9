"""The analysts' file is always the work file's exact bytes, and a small change writes a small patch."""
import os
import subprocess
import sys

import duckdb
import pytest

from trialhouse import snapshot
from trialhouse.snapshot import publish_snapshot, standby_path


@pytest.fixture()
def work(tmp_path):
    con = duckdb.connect(str(tmp_path / "wh.work.duckdb"))
    _as_the_pipelines(con)
    # ~20 MB in five row groups: DuckDB rewrites a changed row group's segments, not the file.
    con.execute("CREATE TABLE t AS SELECT i AS id, md5(i::VARCHAR) || md5((i * 7)::VARCHAR) AS v "
                "FROM range(600000) r(i)")
    yield con
    con.close()


def _as_the_pipelines(con) -> None:
    """What makes a published file one a publish may replace (see snapshot.foreign_target)."""
    con.execute("CREATE SCHEMA IF NOT EXISTS meta")
    con.execute("CREATE TABLE IF NOT EXISTS meta.load_log (run_id VARCHAR)")


def _bytes(path):
    return path.read_bytes()


def _count(path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT count(*) FROM t").fetchone()[0]


def test_first_publish_copies_and_makes_the_standby_later_ones_patch_only_what_changed(tmp_path, work):
    published = tmp_path / "wh.duckdb"
    first = publish_snapshot(work, published)
    assert first.mode == "copied" and _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")
    # The first publish leaves a standby of its own, so the first update after a full load patches.
    assert _bytes(standby_path(published)) == _bytes(published)
    assert not os.path.samefile(standby_path(published), published)
    before = _bytes(published)

    work.execute("INSERT INTO t VALUES (-1, 'one new row')")
    second = publish_snapshot(work, published)
    assert (second.mode, second.compared) == ("patched", "checksums")
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")
    assert _bytes(standby_path(published)) == before  # the replaced file is kept as the next standby

    work.execute("UPDATE t SET v = 'changed' WHERE id = 5")
    third = publish_snapshot(work, published)
    assert (third.mode, third.compared) == ("patched", "checksums")
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")  # byte for byte, two states on
    assert 0 < third.bytes_written < third.size_bytes / 2
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute("SELECT v FROM t WHERE id = 5").fetchone() == ("changed",)
        assert con.execute("SELECT count(*) FROM t").fetchone() == (600001,)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".wh.duckdb.standby", "wh.duckdb", "wh.work.duckdb"]


def test_a_patch_reads_a_checksum_a_block_not_both_files(tmp_path, work, monkeypatch):
    """What made a one-study update grow with the warehouse was reading both files whole."""
    published = tmp_path / "wh.duckdb"
    publish_snapshot(work, published)
    work.execute("UPDATE t SET v = 'changed' WHERE id = 5")
    read = []
    pread, preadv = os.pread, os.preadv
    monkeypatch.setattr(os, "pread", lambda fd, n, at: read.append(n) or pread(fd, n, at))
    monkeypatch.setattr(os, "preadv", lambda fd, bufs, at: read.append(sum(map(len, bufs))) or preadv(fd, bufs, at))
    stats = publish_snapshot(work, published)
    monkeypatch.undo()
    assert stats.compared == "checksums" and _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")
    # The changed blocks are read whole, every other block 8 bytes from each file.
    assert sum(read) <= stats.bytes_written + 2 * 8 * (stats.size_bytes // (256 << 10) + 1) + 4096
    # Comparing the files read both whole (2x the size). What DuckDB rewrites for one changed row varies
    # with the machine's load (a row group's segments, 4-9 MB of this 28 MB file, in CI 8.7 MB once).
    assert sum(read) < stats.size_bytes / 2


def test_many_changes_in_a_row_keep_the_published_file_the_work_files_bytes(tmp_path):
    """Inserts, updates, deletes and dropped tables free and reuse blocks; the checksums find them all."""
    import random

    from trialhouse.workfile import connect_work

    published = tmp_path / "wh.duckdb"
    con = connect_work(tmp_path / "wh.work.duckdb")
    _as_the_pipelines(con)
    con.execute("CREATE TABLE t AS SELECT i AS id, md5(i::VARCHAR) AS v FROM range(300000) r(i)")
    rnd = random.Random(7)
    try:
        for day in range(24):
            k = rnd.randrange(300000)
            op = day % 4
            if op == 0:
                con.execute("UPDATE t SET v = ? WHERE id = ?", [f"day {day}", k])
            elif op == 1:
                con.execute("INSERT INTO t SELECT 1000000 * ? + i, 'new' FROM range(20000) r(i)", [day])
            elif op == 2:
                con.execute("DELETE FROM t WHERE id BETWEEN ? AND ?", [k, k + 5000])
            else:
                con.execute("CREATE OR REPLACE TABLE side AS SELECT i, repeat('x', ?) AS s FROM range(5000) r(i)",
                            [rnd.randrange(10, 200)])
            stats = publish_snapshot(con, published)
            assert stats.mode == ("copied" if day == 0 else "patched")
            assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb"), day
            assert stats.compared in ("", "checksums")
    finally:
        con.close()


def test_a_patch_that_died_midway_is_finished_by_comparing_whole(tmp_path, work, monkeypatch):
    """A block torn by a crash can carry the right checksum over the wrong bytes: the standby's
    blanked header says the checksums cannot be trusted."""
    published = tmp_path / "wh.duckdb"
    publish_snapshot(work, published)
    work.execute("UPDATE t SET v = 'changed' WHERE id < 1000")

    def crash(*args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(snapshot, "_sync_blocks", crash)
    with pytest.raises(OSError):
        publish_snapshot(work, published)
    monkeypatch.undo()
    standby = standby_path(published)
    assert standby.read_bytes()[8:12] != b"DUCK"
    # Tear a block: its checksum from the work file, the rest of it garbage.
    data = bytearray(standby.read_bytes())
    block = snapshot.HEADERS + 5 * (256 << 10)
    with open(tmp_path / "wh.work.duckdb", "rb") as fh:
        fh.seek(block)
        data[block:block + 8] = fh.read(8)
    data[block + 8:block + 4096] = os.urandom(4088)
    standby.write_bytes(bytes(data))
    stats = publish_snapshot(work, published)
    assert (stats.mode, stats.compared) == ("patched", "whole")
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")
    work.execute("UPDATE t SET v = 'again' WHERE id = 1")
    assert publish_snapshot(work, published).compared == "checksums"  # whole again
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")


def test_a_whole_compare_that_died_midway_is_compared_whole_again(tmp_path, work, monkeypatch):
    """Two publishes killed in a row: the first mid-patch (the header blanked), the second midway
    through its whole compare. The header must stay blank until every block is written: restored
    early, the next publish trusted the checksums over a block whose checksum was new and its tail
    stale, and the analysts' file came out corrupt (found by killing runs)."""
    published = tmp_path / "wh.duckdb"
    publish_snapshot(work, published)
    work.execute("UPDATE t SET v = 'changed' WHERE id < 300000")
    monkeypatch.setattr(snapshot, "_sync_blocks", lambda *a: (_ for _ in ()).throw(OSError(5, "killed")))
    with pytest.raises(OSError):
        publish_snapshot(work, published)
    monkeypatch.undo()
    writes, pwrite = [], os.pwrite

    def dies_after_some(fd, data, offset):
        writes.append(offset)
        if len(writes) > 3:
            raise OSError(5, "killed")
        return pwrite(fd, data, offset)

    monkeypatch.setattr(snapshot.os, "pwrite", dies_after_some)
    with pytest.raises(OSError):
        publish_snapshot(work, published)
    monkeypatch.undo()
    assert standby_path(published).read_bytes()[8:12] != b"DUCK"  # still says: compare whole
    stats = publish_snapshot(work, published)
    assert stats.compared == "whole"
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")
    assert _count(published) == 600000


def test_a_standby_smaller_or_larger_than_the_work_file_ends_equal(tmp_path, work):
    published = tmp_path / "wh.duckdb"
    publish_snapshot(work, published)
    publish_snapshot(work, published)
    standby = standby_path(published)
    standby.write_bytes(standby.read_bytes()[: 3 * snapshot.BLOCK + 17])  # truncated mid-block
    work.execute("INSERT INTO t SELECT -i, 'more' FROM range(1, 1000) r(i)")
    assert publish_snapshot(work, published).compared == "whole"  # not whole blocks
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")

    publish_snapshot(work, published)
    standby.write_bytes(standby.read_bytes() + b"\0" * (snapshot.CHUNK + 5))  # longer than the work file
    assert publish_snapshot(work, published).mode == "patched"
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")

    publish_snapshot(work, published)
    standby.write_bytes(standby.read_bytes()[: snapshot.HEADERS + 7 * (256 << 10)])  # whole blocks, fewer
    work.execute("UPDATE t SET v = 'x' WHERE id = 3")
    assert publish_snapshot(work, published).compared == "checksums"
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")


READER = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)
print(con.execute("SELECT count(*) FROM t").fetchone()[0], flush=True)
sys.stdin.readline()  # hold the file open until told
print(con.execute("SELECT count(*), max(v) FROM t").fetchone()[0], flush=True)
"""


def test_a_reader_still_on_the_standby_keeps_its_view(tmp_path, work):
    published = tmp_path / "wh.duckdb"
    publish_snapshot(work, published)
    reader = subprocess.Popen([sys.executable, "-c", READER, str(published)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "600000"  # it opened the published file
        work.execute("INSERT INTO t VALUES (-1, 'a')")
        publish_snapshot(work, published)  # the reader's file is now the standby
        work.execute("DELETE FROM t WHERE id < 300000")
        third = publish_snapshot(work, published)
        assert third.mode == "copied"  # it would have patched the reader's file: copied instead
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "600000"  # still the load it opened, intact
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    assert reader.returncode == 0
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb") and _count(published) == 300000


def test_a_reader_in_this_process_is_seen_too(tmp_path, work):
    """POSIX locks never conflict within one process, so the lock alone would let us patch its file."""
    published = tmp_path / "wh.duckdb"
    publish_snapshot(work, published)
    with duckdb.connect(str(published), read_only=True) as reader:
        work.execute("INSERT INTO t VALUES (-1, 'a')")
        publish_snapshot(work, published)
        work.execute("DELETE FROM t WHERE id < 300000")
        assert publish_snapshot(work, published).mode == "copied"
        assert reader.execute("SELECT count(*) FROM t").fetchone() == (600000,)
    assert _count(published) == 300000


def test_leftovers_of_a_publish_that_died_midway_are_swept(tmp_path, work):
    published = tmp_path / "wh.duckdb"
    publish_snapshot(work, published)
    publish_snapshot(work, published)
    # Died between its two renames: the old file under its second name, no standby.
    standby_path(published).rename(tmp_path / ".wh.duckdb.4242.old")
    (tmp_path / ".wh.duckdb.standby.4242.tmp").write_bytes(b"half a copy")
    work.execute("INSERT INTO t VALUES (-1, 'a')")
    assert publish_snapshot(work, published).mode == "copied"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".wh.duckdb.standby", "wh.duckdb", "wh.work.duckdb"]
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")


def test_a_standby_that_is_the_published_file_is_never_patched(tmp_path, work):
    published = tmp_path / "wh.duckdb"
    publish_snapshot(work, published)
    standby_path(published).unlink(missing_ok=True)
    os.link(published, standby_path(published))  # e.g. restored from a backup as hard links
    with duckdb.connect(str(published), read_only=True) as con:
        before = con.execute("SELECT count(*) FROM t").fetchone()
    inode = published.stat().st_ino
    work.execute("DELETE FROM t WHERE id < 300000")
    assert publish_snapshot(work, published).mode == "copied"
    assert published.stat().st_ino != inode and _count(published) == 300000 and before == (600000,)


def test_too_little_free_disk_refuses_before_writing_and_leaves_the_published_file(tmp_path, work, monkeypatch):
    """Three warehouse-sized files live side by side (work, published, standby). A full disk mid-copy
    also stopped DuckDB's own checkpoint; the publish now refuses first, with the figures, and touches nothing."""
    import collections

    published = tmp_path / "wh.duckdb"
    publish_snapshot(work, published)
    before = _bytes(published)
    size = (tmp_path / "wh.work.duckdb").stat().st_size
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(snapshot.shutil, "disk_usage", lambda p: usage(10 * size, 9 * size, size // 2))
    standby_path(published).unlink()  # lost, or the first publish had no room to make it
    work.execute("INSERT INTO t VALUES (-1, 'a')")
    with pytest.raises(snapshot.SnapshotSpaceError, match=r"whole copy of the warehouse needs .* MiB is free"):
        publish_snapshot(work, published)  # no standby yet: a whole copy would not fit
    assert _bytes(published) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wh.duckdb", "wh.work.duckdb"]  # no half copy
    monkeypatch.undo()
    publish_snapshot(work, published)
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")
    # A patch needs only the work file's growth: a nearly full disk still takes a same-size update.
    def just_enough(folder):  # at the moment of the check, after the publish's checkpoint
        growth = (tmp_path / "wh.work.duckdb").stat().st_size - standby_path(published).stat().st_size
        return usage(10 * size, 9 * size, max(growth, 0) + snapshot.SPACE_MARGIN + 1)

    monkeypatch.setattr(snapshot.shutil, "disk_usage", just_enough)
    work.execute("UPDATE t SET v = 'b' WHERE id = -1")
    assert publish_snapshot(work, published).mode == "patched"
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")


def test_a_copy_that_fails_midway_leaves_no_half_file(tmp_path, work, monkeypatch):
    published = tmp_path / "wh.duckdb"

    def full_disk(src, dst):
        open(dst, "wb").write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(snapshot.shutil, "copyfile", full_disk)
    with pytest.raises(OSError, match="No space left"):
        publish_snapshot(work, published)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wh.work.duckdb"]


def test_a_first_publish_without_room_for_a_standby_still_publishes(tmp_path, work, monkeypatch):
    import collections

    published = tmp_path / "wh.duckdb"
    work.execute("CHECKPOINT")  # the size the publish copies
    size = (tmp_path / "wh.work.duckdb").stat().st_size
    usage = collections.namedtuple("usage", "total used free")
    free = iter([size + snapshot.SPACE_MARGIN + 1, size // 2])  # room for the published copy, not a standby
    monkeypatch.setattr(snapshot.shutil, "disk_usage", lambda p: usage(10 * size, 9 * size, next(free)))
    assert publish_snapshot(work, published).mode == "copied"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wh.duckdb", "wh.work.duckdb"]
    assert _bytes(published) == _bytes(tmp_path / "wh.work.duckdb")


@pytest.mark.parametrize("found", ["another database", "a text file"])
def test_a_file_the_pipeline_did_not_publish_is_never_replaced(tmp_path, work, found):
    published = tmp_path / "wh.duckdb"
    if found == "another database":
        with duckdb.connect(str(published)) as con:
            con.execute("CREATE TABLE precious AS SELECT 42 AS answer")
    else:
        published.write_text("notes\n")
    before = published.read_bytes()
    with pytest.raises(snapshot.ForeignTarget, match="not replaced"):
        publish_snapshot(work, published)
    assert published.read_bytes() == before and not standby_path(published).exists()
