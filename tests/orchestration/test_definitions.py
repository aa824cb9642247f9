"""Snapshot of the asset graph: what the UI shows, and the house rules every asset follows."""
import dagster as dg

from orchestration.definitions import defs
from orchestration.resources import WAREHOUSE_POOL

GROUPS = {"ctgov", "fhir", "omop", "sites", "quality"}


def asset_specs():
    return list(defs.resolve_all_asset_specs())


SNAPSHOT = {  # asset -> (group, upstream assets): the graph the UI shows and the load order
    "ctgov/api_pages": ("ctgov", []),
    "raw/ctgov_study_version": ("ctgov", []),
    "stage/ctgov_study": ("quality", ["raw/ctgov_study_version"]),
    "stage/fhir_resource": ("fhir", ["stage/ctgov_study"]),
    "omop/vocabulary": ("omop", []),
    "raw/site_delivery": ("sites", []),
    "stage/omop": ("omop", ["omop/vocabulary", "stage/fhir_resource"]),
    "stage/site_data": ("sites", ["raw/site_delivery", "stage/fhir_resource", "stage/omop"]),
    "publish/warehouse": ("quality", ["stage/ctgov_study", "stage/fhir_resource", "stage/omop", "stage/site_data"]),
}


def test_asset_graph_snapshot():
    graph = defs.resolve_asset_graph()
    got = {
        spec.key.to_user_string(): (spec.group_name,
                                    sorted(k.to_user_string() for k in graph.get(spec.key).parent_keys))
        for spec in asset_specs()
    }
    assert got == SNAPSHOT


def test_gate_checks_are_blocking():
    graph = defs.resolve_asset_graph()
    checks = {k.name: graph.get_check_spec(k) for k in graph.asset_check_keys}
    assert set(checks) == {"ctgov_registry_gate", "fhir_staging_gate", "omop_dqd_gate", "site_protocol_gate"}
    assert all(spec.blocking for spec in checks.values())
    # `dg list defs` prints descriptions, not the flag: they say it
    assert all(spec.description.startswith("Blocking check") for spec in checks.values())


def test_every_asset_has_description_group_and_writer_pool():
    for spec in asset_specs():
        assert spec.description and len(spec.description) > 40, spec.key
        assert spec.group_name in GROUPS, spec.key
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        if key == dg.AssetKey(["ctgov", "api_pages"]):
            continue  # writes landing files, not the warehouse
        node = graph.get(key)
        assert node.pools == {WAREHOUSE_POOL} or node.pools == [WAREHOUSE_POOL] or WAREHOUSE_POOL in node.pools, key


def test_definitions_load_with_resources():
    assert {"warehouse", "paths"} <= set(defs.resources)
    assert isinstance(defs, dg.Definitions)


def test_downstream_follows_raw_by_automation_and_publish_waits_for_checks():
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        if key.path[0] in ("raw", "ctgov"):
            continue
        cond = graph.get(key).automation_condition
        assert cond is not None, key
    publish = graph.get(dg.AssetKey(["publish", "warehouse"])).automation_condition
    assert [c.get_label() for c in publish.children] == ["eager", "all_deps_blocking_checks_passed"]


def test_pipeline_job_leaves_out_the_network_sync():
    job = defs.resolve_job_def("pipeline")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert "ctgov/api_pages" not in keys and "publish/warehouse" in keys
