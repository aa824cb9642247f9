"""The patch benchmark must not rot: both ways end with the work file's bytes (it exits otherwise) and
it prints its figures. No timing is asserted."""
from benchmarks import snapshot_patch


def test_patch_benchmark_runs_at_a_small_size_and_prints_its_figures(capsys):
    assert snapshot_patch.main(["--mb", "8"]) == 0
    out = capsys.readouterr().out
    for line in ("work file", "baseline: both files compared whole", "block checksums (8 bytes a block)", "speed-up"):
        assert line in out, line


def test_both_ways_write_the_changed_blocks_only(tmp_path):
    figures = snapshot_patch.run(tmp_path, 8)
    for compare in ("whole", "checksums"):
        seconds, written = figures[compare]
        assert 0 < written < figures["size"] / 2, (compare, written)
