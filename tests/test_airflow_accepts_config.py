"""Apache Airflow itself (the version each environment deploys) accepts what we generate."""

from __future__ import annotations

import pytest
import yaml

from airflow_gitops import airflow_checks
from airflow_gitops.airflow_env import ensure_airflow
from airflow_gitops.errors import AirflowCheckError
from conftest import ENVIRONMENTS, REPO, inventory_of

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow_env(fresh_repo):
    versions = {inventory_of(fresh_repo, env)["airflow"]["version"] for env in ENVIRONMENTS}
    assert versions == {"3.3.2"}
    return ensure_airflow(REPO, "3.3.2")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_generated_airflow_cfg_passes_airflow_config_lint(env, manifests, airflow_env):
    cfg = manifests(env)["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    report = airflow_checks.check_airflow_cfg(airflow_env, cfg, f"{env}: airflow.cfg")
    assert report.lint_issues == [] and report.unknown_keys == []


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_pod_template_loads_with_the_cncf_kubernetes_provider(env, manifests, airflow_env):
    text = manifests(env)["configmap-airflow-pod-template.yaml"]["data"]["pod_template.yaml"]
    loaded = airflow_checks.check_pod_template(airflow_env, text, f"{env}: pod_template.yaml")
    assert loaded["containers"][0] == "base"
    assert loaded["image"] == "apache/airflow:3.3.2"


def test_misspelt_or_removed_config_option_is_rejected(manifests, airflow_env):
    cfg = manifests("dev")["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    broken = cfg.replace("[core]\n", "[core]\nparalelism = 8\n").replace("[scheduler]\n", "[scheduler]\nstandalone_dag_processor = True\n")
    with pytest.raises(AirflowCheckError) as error:
        airflow_checks.check_airflow_cfg(airflow_env, broken, "dev: airflow.cfg")
    assert "unknown option [core] paralelism" in str(error.value)
    assert "unknown option [scheduler] standalone_dag_processor" in str(error.value)


def test_pod_template_without_base_container_is_rejected(manifests, airflow_env):
    text = manifests("prod")["configmap-airflow-pod-template.yaml"]["data"]["pod_template.yaml"]
    pod = yaml.safe_load(text)
    pod["spec"]["containers"][0]["name"] = "worker"
    with pytest.raises(AirflowCheckError, match="named 'base'"):
        airflow_checks.check_pod_template(airflow_env, yaml.safe_dump(pod), "prod: pod_template.yaml")


def test_committed_option_list_is_what_airflow_describes(airflow_env, tmp_path):
    from airflow_gitops import config_options
    options = config_options.describe(airflow_env, tmp_path)
    fix = "run `airflow-gitops config-options --version 3.3.2`"
    assert config_options.options_file(REPO, "3.3.2").read_text() == config_options.render("3.3.2", options), fix
    assert config_options.retired_file(REPO, "3.3.2").read_text() == config_options.render_retired("3.3.2", options), fix
    # What upgrades are told about: a rename with its replacement, and a removal (from `airflow config lint`).
    assert options.renamed[("scheduler", "running_metrics_interval")] == ("scheduler", "ti_metrics_interval", "3.2.0")
    assert options.removed[("core", "check_slas")].startswith("The SLA feature is removed in Airflow 3.0")


def test_check_airflow_command_accepts_every_committed_environment(airflow_env):
    import subprocess
    import sys
    from pathlib import Path

    cli = str(Path(sys.executable).with_name("airflow-gitops"))
    result = subprocess.run([cli, "check-airflow"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    for env in ENVIRONMENTS:
        assert f"{env}: airflow.cfg and pod template accepted by Apache Airflow 3.3.2" in result.stdout
