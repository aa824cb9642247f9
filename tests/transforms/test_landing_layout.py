"""Files dropped where no scan looks are named (real records, copied into a temporary landing folder)."""
import shutil

from tests.conftest import CTGOV
from transforms.landing_layout import nested_deliveries, unread_paths
from trialhouse.synth_site import generate_delivery


def test_files_beside_ctgov_and_sites_are_named_and_what_is_read_is_not(tmp_path):
    landing = tmp_path / "landing"
    (landing / "ctgov" / "deep").mkdir(parents=True)
    shutil.copy(CTGOV / "NCT00184067.json", landing / "ctgov" / "deep" / "NCT00184067.json")
    shutil.copy(CTGOV / "NCT03418623.json", landing / "NCT03418623.json")
    (landing / "CTGOV").mkdir()
    shutil.copy(CTGOV / "NCT00876135.json", landing / "CTGOV" / "NCT00876135.json")
    (landing / ".DS_Store").write_bytes(b"")
    (landing / "NCT0000.json.partial").write_bytes(b"")
    (folder,) = generate_delivery(landing / "sites", participants=2, sites=1, seed=1)
    shutil.make_archive(str(landing / "sites" / folder.name), "zip", folder)
    assert unread_paths(landing) == ["CTGOV/", "NCT03418623.json", f"sites/{folder.name}.zip"]
    assert unread_paths(tmp_path / "absent") == []


def test_a_delivery_one_level_too_deep_is_found_in_its_parent(tmp_path):
    (folder,) = generate_delivery(tmp_path / "sites" / "batch7", participants=2, sites=1, seed=1)
    assert nested_deliveries(tmp_path / "sites" / "batch7") == [folder.name]
    assert nested_deliveries(folder) == []
