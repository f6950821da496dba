"""dags.mode bundle: Airflow 3's own Git DAG bundle instead of git-sync, reading the same
dags.git_sync repo/ref/sub_path, with its connection built from non-secret parts and the
credentials taken from the existing Secret."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import compile_in, copy_repo, inventory_of, load_manifests, validate_object

CONN_VAR = "AIRFLOW_CONN_DAGS_GIT"
GIT_BUNDLE = "airflow.providers.git.bundles.git.GitDagBundle"
# What each environment becomes in the bundle copy: its executor stays, auth varies.
AUTH = {"dev": "none", "staging": "https", "prod": "ssh"}


@pytest.fixture(scope="module")
def bundle_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository whose three environments take their DAGs from the Git bundle."""
    root = copy_repo(tmp_path_factory.mktemp("bundle"))
    for env in AUTH:
        target = root / "inventory" / "targets" / f"{env}.yml"
        text = target.read_text().replace("  - airflow.dags.git-sync\n", "  - airflow.dags.bundle\n")
        https = "        repo: https://github.com/example/airflow-dags.git\n"
        if env == "dev":
            text = text.replace("        ref: main\n", "        ref: main\n" + https + "        auth: none\n")
        if env == "staging":
            text = text.replace("        ref: staging\n",
                                "        ref: staging\n" + https + "        auth: https\n        credentials_secret: airflow-git-https\n"
                                "        period: 2m\n")
        target.write_text(text)
    result = compile_in(root)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return root


def objects_of(root: Path, env: str) -> dict[str, dict]:
    return load_manifests(root / "compiled", env)


def airflow_cfg(objects: dict[str, dict]) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(objects["configmap-airflow-config.yaml"]["data"]["airflow.cfg"])
    return parser


def pods(objects: dict[str, dict]) -> dict[str, dict]:
    """file name (or 'worker' for the pod template) -> pod spec."""
    specs = {name: obj["spec"]["template"]["spec"] for name, obj in objects.items()
             if obj["kind"] in ("Deployment", "StatefulSet", "Job")}
    if "configmap-airflow-pod-template.yaml" in objects:
        specs["worker"] = yaml.safe_load(objects["configmap-airflow-pod-template.yaml"]["data"]["pod_template.yaml"])["spec"]
    return specs


def env_list(container: dict) -> list[dict]:
    return container.get("env", [])


def connection_env(container: dict) -> dict | None:
    found = [e for e in env_list(container) if e["name"] == CONN_VAR]
    return found[0] if found else None


def main_container(spec: dict) -> dict:
    return spec["containers"][0]


def test_the_committed_environments_keep_their_modes():
    from conftest import REPO, ENVIRONMENTS
    for env in ENVIRONMENTS:
        assert "  - airflow.dags.git-sync\n" in (REPO / "inventory" / "targets" / f"{env}.yml").read_text()


@pytest.mark.parametrize("env", sorted(AUTH))
def test_airflow_cfg_lists_one_git_bundle_of_the_git_sync_values(env, bundle_repo):
    git = inventory_of(bundle_repo, env)["airflow"]["dags"]["git_sync"]
    assert git["auth"] == AUTH[env]
    cfg = airflow_cfg(objects_of(bundle_repo, env))
    bundles = json.loads(cfg["dag_processor"]["dag_bundle_config_list"])
    assert bundles == [{
        "name": "dags",
        "classpath": GIT_BUNDLE,
        "kwargs": {
            "git_conn_id": "dags_git",
            "tracking_ref": git["ref"],
            "subdir": git["sub_path"],
            # git-sync's period, in seconds
            "refresh_interval": {"30s": 30, "2m": 120}[git["period"]],
        },
    }]
    # Cloned into the /tmp emptyDir; the DAG folder is the image's own (not parsed).
    assert cfg["dag_processor"]["dag_bundle_storage_path"] == "/tmp/airflow/dag_bundles"
    assert cfg["core"]["dags_folder"] == "/opt/airflow/dags"
    # The repository URL is not in airflow.cfg, only in the connection.
    assert git["repo"] not in objects_of(bundle_repo, env)["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]


def test_empty_sub_path_means_no_subdir(tmp_path):
    root = copy_repo(tmp_path / "repo")
    target = root / "inventory" / "targets" / "dev.yml"
    target.write_text(target.read_text().replace("  - airflow.dags.git-sync\n", "  - airflow.dags.bundle\n")
                      .replace("        ref: main\n", "        ref: main\n        sub_path: ''\n"))
    result = compile_in(root, "-t", "dev")
    assert result.returncode == 0, result.stderr[-2000:]
    bundles = json.loads(airflow_cfg(objects_of(root, "dev"))["dag_processor"]["dag_bundle_config_list"])
    assert "subdir" not in bundles[0]["kwargs"]


@pytest.mark.parametrize("env", sorted(AUTH))
def test_no_git_sync_container_and_no_dags_volume(env, bundle_repo):
    for name, spec in pods(objects_of(bundle_repo, env)).items():
        containers = spec["containers"] + spec.get("initContainers", [])
        assert not [c for c in containers if "git-sync" in c["image"] or c["name"].startswith("git-sync")], name
        assert "dags" not in {v["name"] for v in spec.get("volumes", [])}, name
        for c in containers:
            assert "/opt/airflow/dags" not in {m["mountPath"] for m in c.get("volumeMounts", [])}, name


@pytest.mark.parametrize("env", sorted(AUTH))
def test_the_connection_goes_where_dags_are_parsed_or_run_and_nowhere_else(env, bundle_repo):
    objects = objects_of(bundle_repo, env)
    local = inventory_of(bundle_repo, env)["airflow"]["executor"] == "LocalExecutor"
    expected = {"deployment-airflow-dag-processor.yaml"}
    expected |= {"deployment-airflow-scheduler.yaml"} if local else {"worker"}
    holders = set()
    for name, spec in pods(objects).items():
        for c in spec["containers"] + spec.get("initContainers", []):
            if connection_env(c) is not None:
                assert c is main_container(spec), f"{name}: {c['name']}"
                holders.add(name)
    assert holders == expected
    # Each holder clones into its /tmp emptyDir (the root filesystem is read-only).
    for name in holders:
        spec = pods(objects)[name]
        tmp = next(m for m in main_container(spec)["volumeMounts"] if m["mountPath"] == "/tmp")
        assert "emptyDir" in next(v for v in spec["volumes"] if v["name"] == tmp["name"]), name
        assert main_container(spec)["securityContext"]["readOnlyRootFilesystem"] is True


@pytest.mark.parametrize("env", sorted(AUTH))
def test_connection_is_built_from_non_secret_parts_and_the_existing_secret(env, bundle_repo):
    git = inventory_of(bundle_repo, env)["airflow"]["dags"]["git_sync"]
    objects = objects_of(bundle_repo, env)
    spec = pods(objects)["deployment-airflow-dag-processor.yaml"]
    container = main_container(spec)
    variable = connection_env(container)
    assert "valueFrom" not in variable
    conn = json.loads(variable["value"])
    assert conn["conn_type"] == "git" and conn["host"] == git["repo"]
    # Host keys are always checked.
    assert conn["extra"]["strict_host_key_checking"] == "yes"
    names = [e["name"] for e in env_list(container)]
    if git["auth"] == "https":
        assert conn["login"] == "$(DAGS_GIT_USERNAME)" and conn["password"] == "$(DAGS_GIT_PASSWORD)"
        for var, key in (("DAGS_GIT_USERNAME", "GITSYNC_USERNAME"), ("DAGS_GIT_PASSWORD", "GITSYNC_PASSWORD")):
            ref = next(e for e in env_list(container) if e["name"] == var)["valueFrom"]["secretKeyRef"]
            assert ref == {"name": git["credentials_secret"], "key": key}
            # Kubernetes expands $(VAR) only from variables defined before.
            assert names.index(var) < names.index(CONN_VAR)
    else:
        assert "login" not in conn and "password" not in conn
        assert not re.search(r"\$\(", variable["value"])
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    if git["auth"] == "ssh":
        key_dir, key = os.path.split(conn["extra"]["key_file"])
        hosts_dir, hosts = os.path.split(conn["extra"]["known_hosts_file"])
        assert key == "ssh" and hosts == "known_hosts"
        assert mounts[key_dir]["readOnly"] is True and mounts[hosts_dir]["readOnly"] is True
        assert volumes[mounts[key_dir]["name"]]["secret"]["secretName"] == git["credentials_secret"]
        configmap = volumes[mounts[hosts_dir]["name"]]["configMap"]["name"]
        # The known_hosts ConfigMap git-sync uses, with the inventory's host keys.
        known = objects[f"configmap-{configmap}.yaml"]["data"]["known_hosts"]
        assert known.strip() == git["known_hosts"].strip()
    else:
        assert "key_file" not in conn["extra"] and "known_hosts_file" not in conn["extra"]
        assert not [v for v in spec["volumes"] if "secret" in v and v["secret"]["secretName"] == git["credentials_secret"]]
        assert not [n for n in objects if "known-hosts" in n]


def test_worker_pods_get_the_same_connection_and_credentials(bundle_repo):
    objects = objects_of(bundle_repo, "prod")
    worker, processor = pods(objects)["worker"], pods(objects)["deployment-airflow-dag-processor.yaml"]
    assert connection_env(main_container(worker)) == connection_env(main_container(processor))
    assert "initContainers" not in worker
    secret_volumes = [v for v in worker["volumes"] if "secret" in v]
    assert [v["secret"]["secretName"] for v in secret_volumes] == ["airflow-git-sync-ssh"]
    # Still no database access for workers.
    assert not [e for e in env_list(main_container(worker)) if "SQL_ALCHEMY" in e["name"]]


@pytest.mark.parametrize("env", sorted(AUTH))
def test_every_object_validates_strictly(env, bundle_repo):
    version = inventory_of(bundle_repo, env)["airflow"]["kubernetes_version"]
    for name, obj in objects_of(bundle_repo, env).items():
        validate_object(obj, version)
        if name == "configmap-airflow-pod-template.yaml":
            kubernetes_validate.validate(yaml.safe_load(obj["data"]["pod_template.yaml"]), version, strict=True)


@pytest.mark.slow
def test_airflow_accepts_the_bundle_config_and_reads_the_connection(bundle_repo):
    """Airflow 3.3.2 lints the generated airflow.cfg and reads the connection from the variable
    exactly as the pod would hold it (with $(VAR) expanded, as the kubelet does)."""
    from airflow_gitops import airflow_checks
    from airflow_gitops.airflow_env import ensure_airflow
    from conftest import REPO
    airflow_env = ensure_airflow(REPO, "3.3.2")
    script = (
        "import json, warnings; warnings.simplefilter('ignore')\n"
        "from airflow.configuration import conf\n"
        "from airflow.models.connection import Connection\n"
        "c = Connection.get_connection_from_secrets('dags_git')\n"
        "print(json.dumps({'bundles': json.loads(conf.get('dag_processor', 'dag_bundle_config_list')),"
        " 'host': c.host, 'login': c.login, 'password': c.password, 'extra': c.extra_dejson}))\n"
    )
    fake = {"DAGS_GIT_USERNAME": "ci-bot", "DAGS_GIT_PASSWORD": "not-a-real-token"}
    for env in sorted(AUTH):
        objects = objects_of(bundle_repo, env)
        text = objects["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
        report = airflow_checks.check_airflow_cfg(airflow_env, text, f"{env}: airflow.cfg")
        assert report.lint_issues == [] and report.unknown_keys == [], env
        value = connection_env(main_container(pods(objects)["deployment-airflow-dag-processor.yaml"]))["value"]
        expanded = re.sub(r"\$\((\w+)\)", lambda m: fake[m.group(1)], value)
        home = bundle_repo / f"airflow-home-{env}"
        home.mkdir(exist_ok=True)
        (home / "airflow.cfg").write_text(text)
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        run_env.update({"AIRFLOW_HOME": str(home), CONN_VAR: expanded,
                        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/unused.db"})
        result = subprocess.run([str(airflow_env.python), "-c", script], env=run_env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        seen = json.loads(result.stdout.strip().splitlines()[-1])
        git = inventory_of(bundle_repo, env)["airflow"]["dags"]["git_sync"]
        assert seen["bundles"][0]["classpath"] == GIT_BUNDLE
        assert seen["host"] == git["repo"]
        if git["auth"] == "https":
            assert (seen["login"], seen["password"]) == (fake["DAGS_GIT_USERNAME"], fake["DAGS_GIT_PASSWORD"])
        if git["auth"] == "ssh":
            assert seen["extra"]["key_file"] == "/opt/airflow/git-credentials/ssh"
            assert seen["extra"]["known_hosts_file"] == "/opt/airflow/git-known-hosts/known_hosts"
        assert seen["extra"]["strict_host_key_checking"] == "yes"
