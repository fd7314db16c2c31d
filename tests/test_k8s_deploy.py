"""deploy/k8s: what can be checked without a cluster (this machine cannot run one).

The instance YAML loads as a Dagster instance config and its run launcher config is valid for the
installed dagster-k8s K8sRunLauncher (in lockstep with dagster core); a misspelt key is caught by the same
check. The Helm values parse, name the code location's image and module, and agree with the instance YAML
(secrets, run queue, pools). The module the code server serves builds its definitions. Loading the
launcher itself needs in-cluster credentials (``load_incluster_config``), so it is not instantiated here.
"""

import re
from pathlib import Path

import dagster as dg
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher

from cost_assets.definitions import build_defs

K8S = Path(__file__).resolve().parents[1] / "deploy" / "k8s"
MODULE = "cost_assets.definitions"


def instance() -> dict:
    return yaml.safe_load((K8S / "dagster.yaml").read_text())


def values() -> dict:
    return yaml.safe_load((K8S / "values.yaml").read_text())


def test_instance_yaml_is_a_valid_instance_with_a_valid_k8s_run_launcher():
    config, _ = dagster_instance_config(str(K8S), "dagster.yaml")  # the instance schema, as dagster loads it
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = process_config(K8sRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors
    assert result.value["env_secrets"] == ["cost-assets-databricks", "cost-assets-alerts", "cost-assets-storage"]
    # the check catches a misspelt key (the Helm spelling is not the instance spelling)
    misspelt = {**launcher["config"], "envSecrets": ["cost-assets-databricks"]}
    assert not process_config(K8sRunLauncher.config_type(), misspelt).success


def test_no_secret_value_in_the_deploy_files():
    for path in K8S.iterdir():
        text = path.read_text()
        assert not re.search(r"dapi[0-9a-f]{8,}|password:\s*[^{\s]", text, re.IGNORECASE), path.name


def test_helm_values_name_the_image_and_module_and_agree_with_the_instance():
    v, inst = values(), instance()
    (deployment,) = v["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["repository"].endswith("/cost-assets")
    assert deployment["codeServerArgs"] == ["--module-name", MODULE]
    dockerfile = (K8S / "Dockerfile").read_text()
    assert f'"--module-name", "{MODULE}"' in dockerfile and "--constraint constraints.txt" in dockerfile
    assert v["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = v["runLauncher"]["config"]["k8sRunLauncher"]
    assert [s["name"] for s in launcher["envSecrets"]] == inst["run_launcher"]["config"]["env_secrets"]
    assert [s["name"] for s in deployment["envSecrets"]] == inst["run_launcher"]["config"]["env_secrets"]
    queue = v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["maxConcurrentRuns"] == inst["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert queue["tagConcurrencyLimits"] == inst["concurrency"]["runs"]["tag_concurrency_limits"]
    assert v["concurrency"]["pools"] == {"defaultLimit": 1, "granularity": "op"}
    assert inst["concurrency"]["pools"] == {"default_limit": 1, "granularity": "op"}
    assert v["postgresql"]["enabled"] is False and "postgresqlPassword" not in v["postgresql"]


def test_the_served_module_builds_its_definitions(tmp_path):
    defs = build_defs({"COST_ASSETS_DUCKDB": str(tmp_path / "cost.duckdb")})
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("daily_pipeline") is not None
