"""A bad inventory fails `kapitan compile` itself, naming the file, the key and what is allowed,
and leaves compiled/ exactly as it was."""

from __future__ import annotations

import json

import jsonschema
import pytest

from conftest import REPO, assert_compile_refuses, compile_in

# (what is appended under `parameters:` of inventory/targets/staging.yml, key path, words the message must hold)
CASES = {
    "wrong type": ("  airflow:\n    scheduler:\n      replicas: three\n",
                   "parameters.airflow.scheduler.replicas", "'three' is not an integer"),
    "misspelt component": ("  airflow:\n    schedulr:\n      replicas: 2\n",
                           "parameters.airflow", "'schedulr' was unexpected"),
    "misspelt nested key": ("  airflow:\n    scheduler:\n      replica: 2\n",
                            "parameters.airflow.scheduler", "allowed keys: affinity, extra_containers, extra_env"),
    "unknown executor": ("  airflow:\n    executor: CeleryExecutr\n",
                         "parameters.airflow.executor", "is not one of ['KubernetesExecutor', 'LocalExecutor', 'CeleryExecutor', 'CeleryExecutor,KubernetesExecutor'"),
    "bad cpu quantity": ("  airflow:\n    triggerer:\n      resources:\n        requests:\n          cpu: lots\n",
                         "parameters.airflow.triggerer.resources.requests.cpu", "is not a Kubernetes quantity"),
    "replicas below minimum": ("  airflow:\n    api_server:\n      replicas: 0\n",
                               "parameters.airflow.api_server.replicas", "less than the minimum of 1"),
    "bad database mode": ("  airflow:\n    database:\n      mode: sqlite\n",
                          "parameters.airflow.database.mode", "is not one of ['bundled', 'external']"),
    "unquoted kubernetes version": ("  airflow:\n    kubernetes_version: 1.33\n",
                                    "parameters.airflow.kubernetes_version", "is not a string"),
    "ssh without known hosts": ("  airflow:\n    dags:\n      git_sync:\n        auth: ssh\n        credentials_secret: key\n        known_hosts: ''\n",
                                "parameters.airflow.dags.git_sync.known_hosts", "host-key checking is never off"),
    "secret in config": ("  airflow:\n    config:\n      core:\n        fernet_key: abc\n",
                         "parameters.airflow.config.core.fernet_key", "never written in the inventory"),
    "derived config key": ("  airflow:\n    config:\n      core:\n        executor: LocalExecutor\n",
                           "parameters.airflow.config.core.executor", "set parameters.airflow.executor instead"),
    "misspelt top-level key": ("  airflw:\n    executor: LocalExecutor\n",
                               "parameters.airflw", "allowed keys: airflow"),
    "bad service type": ("  airflow:\n    api_server:\n      service:\n        type: Ingress\n",
                         "parameters.airflow.api_server.service.type", "is not one of"),
    "bad git sync period": ("  airflow:\n    dags:\n      git_sync:\n        period: 30 seconds\n",
                            "parameters.airflow.dags.git_sync.period", "is not a duration such as 30s"),
    "misspelt airflow.cfg option": ("  airflow:\n    config:\n      core:\n        paralelism: 8\n",
                                    "parameters.airflow.config.core.paralelism",
                                    "Airflow 3.3.2 has no option [core] paralelism (did you mean parallelism?)"),
    "unknown airflow.cfg section": ("  airflow:\n    config:\n      schedular:\n        parsing_processes: 2\n",
                                    "parameters.airflow.config.schedular", "has no section [schedular]"),
    "option removed from airflow 3": ("  airflow:\n    config:\n      scheduler:\n        standalone_dag_processor: true\n",
                                      "parameters.airflow.config.scheduler.standalone_dag_processor",
                                      "Airflow 3.3.2 has no option [scheduler] standalone_dag_processor"),
    "option airflow renamed": ("  airflow:\n    config:\n      scheduler:\n        running_metrics_interval: 30\n",
                               "parameters.airflow.config.scheduler.running_metrics_interval",
                               "Airflow 3.3.2 has no option [scheduler] running_metrics_interval (renamed to [scheduler] "
                               "ti_metrics_interval in Airflow 3.2.0: set parameters.airflow.config.scheduler.ti_metrics_interval instead)"),
    "unknown dags mode": ("  airflow:\n    dags:\n      mode: git\n",
                          "parameters.airflow.dags.mode", "is not one of ['git-sync', 'pvc', 'bundle']"),
    "bundle list set by hand": ("  airflow:\n    config:\n      dag_processor:\n        dag_bundle_config_list: '[]'\n",
                                "parameters.airflow.config.dag_processor.dag_bundle_config_list",
                                "cannot be set here: it follows parameters.airflow.dags.mode"),
    "bundle storage set by hand": ("  airflow:\n    config:\n      dag_processor:\n        dag_bundle_storage_path: /data\n",
                                   "parameters.airflow.config.dag_processor.dag_bundle_storage_path",
                                   "cannot be set here: DAG bundles are cloned into each pod's /tmp emptyDir"),
    "logs lost with worker pods": ("  airflow:\n    logs:\n      persistence: emptyDir\n",
                                    "parameters.airflow.logs.persistence",
                                    "emptyDir loses task logs when KubernetesExecutor worker pods are deleted"),
    "flux with kapitan refs": ("  airflow:\n    gitops:\n      engine: flux\n    secrets:\n      mode: kapitan-refs\n",
                               "parameters.airflow.gitops.engine", "flux cannot reveal Kapitan refs"),
    "unknown secrets mode": ("  airflow:\n    secrets:\n      mode: vault\n",
                             "parameters.airflow.secrets.mode", "is not one of ['kapitan-refs', 'external-secrets']"),
}

STAGING = "inventory/targets/staging.yml"


def break_staging(root, fragment: str) -> None:
    target = root / STAGING
    text = target.read_text()
    # Replace the target's own parameters with the fragment so keys never repeat in one file.
    head = text.split("parameters:")[0]
    target.write_text(head + "parameters:\n" + fragment)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_inventory_fails_with_file_key_and_allowed_values(case, scratch_repo):
    fragment, key, words = CASES[case]
    assert_compile_refuses(scratch_repo, lambda: break_staging(scratch_repo, fragment), STAGING, key, words)


def test_cli_prints_just_the_message(scratch_repo, tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    subprocess.run(["git", "init", "-q"], cwd=scratch_repo, check=True)
    break_staging(scratch_repo, CASES["wrong type"][0])
    cli = str(Path(sys.executable).with_name("airflow-gitops"))
    result = subprocess.run([cli, "compile"], cwd=scratch_repo, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: inventory/targets/staging.yml: parameters.airflow.scheduler.replicas: 'three' is not an integer"
    )


def test_sections_of_installed_providers_can_be_opted_out_of_the_option_check(scratch_repo):
    from conftest import load_manifests
    break_staging(scratch_repo, "  airflow:\n    api_server:\n      base_url: https://airflow-staging.acme.internal\n"
                                "    logs:\n      pvc:\n        storage_class: standard-rwx\n"
                                "    provider_config_sections: [my_provider]\n"
                                "    config:\n      my_provider:\n        endpoint: https://example.com\n")
    result = compile_in(scratch_repo, "-t", "staging")
    assert result.returncode == 0, result.stdout[-1500:]
    cfg = load_manifests(scratch_repo / "compiled", "staging")["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
    assert "[my_provider]\nendpoint = https://example.com\n" in cfg


def test_cli_names_the_target_file_of_a_missing_class(scratch_repo):
    import subprocess
    import sys
    from pathlib import Path
    subprocess.run(["git", "init", "-q"], cwd=scratch_repo, check=True)
    target = scratch_repo / STAGING
    target.write_text(target.read_text().replace("  - profiles.staging\n", "  - profiles.stagin\n"))
    cli = str(Path(sys.executable).with_name("airflow-gitops"))
    result = subprocess.run([cli, "compile"], cwd=scratch_repo, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: inventory/targets/staging.yml: Class profiles.stagin not found (did you mean profiles.staging?)"


def test_the_inventory_schema_is_a_valid_draft_07_schema_all_the_way_down():
    """Kapitan's per-target meta-schema check stops at the top level (the subschemas sit under
    $defs, for speed): check every subschema here, once."""
    schema = json.loads((REPO / "kapitan" / "schemas" / "airflow.schema.json").read_text())
    as_definitions = json.loads(json.dumps(schema).replace('"#/$defs/', '"#/definitions/'))
    as_definitions["definitions"] = as_definitions.pop("$defs")
    jsonschema.Draft7Validator.check_schema(as_definitions)
    assert all(set(sub) == {"$ref"} for sub in schema["properties"].values())
