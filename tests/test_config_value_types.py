"""airflow.cfg values of the wrong type for an option Airflow knows are refused: by the compile,
from the option list recorded per Airflow version (how Airflow's own code reads each option), and
by `check-airflow`/`validate`, which read every option of the compiled file through Airflow's
own getters. What the compile accepts, Airflow accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, compile_in, load_manifests, read_tree

STAGING = "inventory/targets/staging.yml"
CLI = str(Path(sys.executable).with_name("airflow-gitops"))
OPTIONS = REPO / "kapitan" / "schemas" / "airflow-config-options" / "3.3.2.json"


def set_staging_config(root: Path, config: dict) -> None:
    """Give the staging target `parameters.airflow.config: config`, keeping its other parameters."""
    target = root / STAGING
    document = yaml.safe_load(target.read_text())
    document["parameters"]["airflow"]["config"] = config
    target.write_text(yaml.safe_dump(document, sort_keys=True))


# section, option, value as written in the inventory, the message after "<file>: <key>: "
REFUSED = {
    "integer set to a word": ("core", "parallelism", "lots",
                              "'lots' is not an integer (Airflow 3.3.2 reads [core] parallelism as an integer)"),
    "integer with a fraction": ("core", "parallelism", "8.5",
                                "'8.5' is not an integer (Airflow 3.3.2 reads [core] parallelism as an integer)"),
    "YAML boolean for an integer": ("core", "max_active_tasks_per_dag", True,
                                    "'True' is not an integer (Airflow 3.3.2 reads [core] max_active_tasks_per_dag as an integer)"),
    "boolean Airflow will not parse": ("core", "load_examples", "yes",
                                       "'yes' is not a boolean (Airflow 3.3.2 reads [core] load_examples as a boolean: "
                                       "true, false, t, f, 1 or 0, in any case)"),
    # Described as a string, read with getboolean by Airflow's code.
    "boolean described as a string": ("core", "dags_are_paused_at_creation", "on",
                                      "'on' is not a boolean (Airflow 3.3.2 reads [core] dags_are_paused_at_creation as a boolean: "
                                      "true, false, t, f, 1 or 0, in any case)"),
    "float set to a word": ("scheduler", "job_heartbeat_sec", "fast",
                            "'fast' is not a number (Airflow 3.3.2 reads [scheduler] job_heartbeat_sec as a float)"),
    # Described as a float, but the triggerer reads it with getint: 30.5 stops it.
    "float read as an integer too": ("triggerer", "triggerer_health_check_threshold", "30.5",
                                     "'30.5' is not an integer (Airflow 3.3.2 reads [triggerer] triggerer_health_check_threshold as an integer)"),
    "seconds with a fraction": ("core", "default_task_execution_timeout", "1.5",
                                "'1.5' is not a whole number of seconds (Airflow 3.3.2 reads [core] default_task_execution_timeout "
                                "as an integer number of seconds)"),
    "unknown enum member": ("logging", "logging_level", "info",
                            "'info' is not one of CRITICAL, FATAL, ERROR, WARN, WARNING, INFO, DEBUG "
                            "(Airflow 3.3.2 checks [logging] logging_level at start-up; the case matters)"),
    "unknown enum member of core": ("core", "dag_ignore_file_syntax", "regex",
                                    "'regex' is not one of regexp, glob (Airflow 3.3.2 checks [core] dag_ignore_file_syntax at start-up; "
                                    "the case matters)"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_value_of_the_wrong_type_fails_the_compile(case, scratch_repo):
    section, option, value, message = REFUSED[case]
    before = read_tree(scratch_repo / "compiled")
    set_staging_config(scratch_repo, {section: {option: value}})
    result = compile_in(scratch_repo, "-t", "staging")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"{STAGING}: parameters.airflow.config.{section}.{option}: {message}" in output, output[-1500:]
    assert read_tree(scratch_repo / "compiled") == before


# Each value Airflow's own getter reads (the line it becomes in airflow.cfg).
ACCEPTED = {
    "core": {
        "load_examples": True,                  # YAML boolean: True
        "dags_are_paused_at_creation": "TRUE",  # getboolean lowers the case
        "dagbag_import_error_tracebacks": 1,
        "parallelism": "64",                    # digit string
        "max_active_tasks_per_dag": 8,
        "max_active_runs_per_dag": "8.0",       # getint falls back to float() when it is whole
        "default_task_retries": "+2",           # int() takes a sign
        "default_task_execution_timeout": "",   # gettimedelta: empty means none
        "dag_ignore_file_syntax": "glob",
    },
    "kubernetes_executor": {"delete_worker_pods": "t", "delete_worker_pods_on_failure": "0"},
    "logging": {"logging_level": "INFO", "colored_console_log": "False # no colours in log stores"},
    "scheduler": {
        "job_heartbeat_sec": "2.5",
        "scheduler_idle_sleep_time": "1e-1",    # float() reads exponents
        "parsing_cleanup_interval": 1.5,        # described as an integer, read with getfloat
    },
    "triggerer": {"triggerer_health_check_threshold": "1_000"},
    # Airflow reads "non-sensitive-only" before its getboolean: not a boolean-only option.
    "api": {"expose_config": "non-sensitive-only"},
}


@pytest.fixture(scope="module")
def accepted_repo(tmp_path_factory) -> Path:
    from conftest import copy_repo
    root = copy_repo(tmp_path_factory.mktemp("accepted") / "repo")
    set_staging_config(root, ACCEPTED)
    result = compile_in(root, "-t", "staging")
    assert result.returncode == 0, (result.stdout + result.stderr)[-1500:]
    return root


def staging_cfg(root: Path) -> str:
    return load_manifests(root / "compiled", "staging")["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]


def test_values_airflow_reads_compile(accepted_repo):
    cfg = staging_cfg(accepted_repo)
    for line in ("load_examples = True", "dags_are_paused_at_creation = TRUE", "dagbag_import_error_tracebacks = 1",
                 "parallelism = 64", "max_active_runs_per_dag = 8.0", "delete_worker_pods = t",
                 "parsing_cleanup_interval = 1.5", "expose_config = non-sensitive-only"):
        assert f"\n{line}\n" in cfg


def test_option_list_records_how_airflow_reads_each_option():
    sections = json.loads(OPTIONS.read_text())["sections"]
    assert sections["core"]["parallelism"] == "integer"
    assert sections["core"]["load_examples"] == "boolean"
    assert sections["logging"]["remote_logging"] == "boolean"  # described as a string
    assert sections["triggerer"]["triggerer_health_check_threshold"] == "integer"  # described as a float
    assert sections["scheduler"]["parsing_cleanup_interval"] == "float"  # described as an integer
    assert sections["core"]["default_task_execution_timeout"] == "timedelta"
    assert sections["logging"]["logging_level"] == ["CRITICAL", "FATAL", "ERROR", "WARN", "WARNING", "INFO", "DEBUG"]
    assert sections["api"]["expose_config"] == "string"
    assert sections["core"]["executor"] == "string"
    # Parsed by go-jsonnet for every target on every compile.
    assert OPTIONS.stat().st_size < 24_000


SCANNED_SOURCE = """
from airflow.configuration import conf

class Config:
    def __init__(self):
        self.section = "my_section"
        self.flag = conf.getboolean(self.section, "flag")
        self.count = conf.getint("my_section", "COUNT") + conf.getfloat(section="my_section", key="count")
        if conf.get("my_section", "mode").lower() not in ("legacy", "auto"):
            self.mode = conf.getboolean("my_section", "mode")
        conf.getint("my_section", "not_described")
"""


def test_option_kinds_come_from_how_airflow_code_reads_them(tmp_path):
    from airflow_gitops import config_options

    (tmp_path / "module.py").write_text(SCANNED_SOURCE)
    reads = config_options.read_by_code([tmp_path], {"my_section": {"flag": "string", "count": "integer", "mode": "string"}})
    assert dict(reads.kinds) == {("my_section", "flag"): {"boolean"}, ("my_section", "count"): {"integer", "float"},
                                 ("my_section", "mode"): {"boolean"}}
    assert dict(reads.compared) == {("my_section", "mode"): {"legacy", "auto"}}


def set_cfg_option(cfg: str, section: str, option: str, value: str) -> str:
    """airflow.cfg text with `[section] option = value`, replacing the line if there is one."""
    lines = cfg.splitlines()
    start = lines.index(f"[{section}]") if f"[{section}]" in lines else None
    if start is None:
        return cfg + f"[{section}]\n{option} = {value}\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    for i in range(start + 1, end):
        if lines[i].split(" = ")[0] == option:
            lines[i] = f"{option} = {value}"
            break
    else:
        lines.insert(start + 1, f"{option} = {value}")
    return "\n".join(lines) + "\n"


def break_compiled_cfg(root: Path, changes: list[tuple[str, str, str]]) -> None:
    """Write values into compiled/staging's airflow.cfg, as if the compile-time check were bypassed."""
    path = next((root / "compiled" / "staging" / "manifests").rglob("configmap-airflow-config.yaml"))
    obj = yaml.safe_load(path.read_text())
    cfg = obj["data"]["airflow.cfg"]
    for section, option, value in changes:
        cfg = set_cfg_option(cfg, section, option, value)
    obj["data"]["airflow.cfg"] = cfg
    path.write_text(yaml.safe_dump(obj, sort_keys=True))


@pytest.fixture
def airflow_cache(monkeypatch):
    monkeypatch.setenv("AIRFLOW_GITOPS_CACHE", str(REPO / ".cache"))


# What Airflow refuses when a component reads it: typed getters, JSON, imports, interpolation.
BYPASSED = [
    ("core", "parallelism", "lots"),
    ("core", "load_examples", "yes"),
    ("scheduler", "job_heartbeat_sec", "fast"),
    ("triggerer", "triggerer_health_check_threshold", "30.5"),
    ("kubernetes_executor", "delete_option_kwargs", "{grace_period_seconds: 5}"),
    ("core", "hostname_callable", "airflow.utils.net.get_host_ip_adress"),
    ("core", "simple_auth_manager_users", "admin:admin 100%"),
]


@pytest.mark.slow
def test_check_airflow_refuses_what_airflow_refuses_even_past_the_compile(scratch_repo, airflow_cache):
    break_compiled_cfg(scratch_repo, BYPASSED)
    result = subprocess.run([CLI, "check-airflow", "--target", "staging"], cwd=scratch_repo, capture_output=True, text=True)
    assert result.returncode == 1, result.stdout + result.stderr
    for section, option, value in BYPASSED:
        assert f"[{section}] {option} = {value!r}" in result.stderr, result.stderr


# What stops every Airflow command at start: conf.validate()'s enums, the engine arguments.
AT_START = {
    "enum": (("logging", "logging_level", "info"), "`[logging] logging_level` should not be 'info'"),
    "json": (("database", "sql_alchemy_engine_args", "{pool_size: 5}"), "[database] 'sql_alchemy_engine_args'"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(AT_START))
def test_validate_refuses_what_stops_airflow_at_start(case, scratch_repo, airflow_cache):
    change, words = AT_START[case]
    break_compiled_cfg(scratch_repo, [change])
    result = subprocess.run([CLI, "validate", "--json", "--quiet", "--check", "airflow", "--target", "staging"],
                            cwd=scratch_repo, capture_output=True, text=True)
    assert result.returncode == 1, result.stdout + result.stderr
    reasons = "\n".join(json.loads(result.stdout)["checks"]["airflow"]["staging"]["reasons"])
    assert "Airflow refuses to start with the generated airflow.cfg" in reasons and words in reasons, reasons


@pytest.mark.slow
def test_airflow_accepts_every_value_the_compile_accepts(accepted_repo):
    from airflow_gitops import airflow_checks
    from airflow_gitops.airflow_env import ensure_airflow

    report = airflow_checks.check_airflow_cfg(ensure_airflow(REPO, "3.3.2"), staging_cfg(accepted_repo),
                                              "staging: airflow.cfg", options_file=OPTIONS)
    assert report.refused == [] and report.unknown_keys == []


@pytest.mark.slow
def test_airflow_refuses_every_value_the_compile_refuses(scratch_repo):
    """The compile-time refusals through Airflow's own getters, in as few airflow.cfg files as can
    hold them (an option once per file; an enum alone: Airflow stops at the first)."""
    from airflow_gitops import airflow_checks
    from airflow_gitops.airflow_env import ensure_airflow
    from airflow_gitops.errors import AirflowCheckError

    sections = json.loads(OPTIONS.read_text())["sections"]
    alone: list[dict[tuple[str, str], str]] = []  # an enum stops Airflow before it reads anything else
    shared: list[dict[tuple[str, str], str]] = []
    for section, option, value, _ in REFUSED.values():
        change = {(section, option): "True" if value is True else str(value)}
        if isinstance(sections[section][option], list):
            alone.append(change)
            continue
        batch = next((b for b in shared if (section, option) not in b), None)
        if batch is None:
            shared.append(batch := {})
        batch.update(change)
    env = ensure_airflow(REPO, "3.3.2")
    for changes in alone + shared:
        cfg = staging_cfg(scratch_repo)
        for (section, option), text in changes.items():
            cfg = set_cfg_option(cfg, section, option, text)
        with pytest.raises(AirflowCheckError) as error:
            airflow_checks.check_airflow_cfg(env, cfg, "staging: airflow.cfg", options_file=OPTIONS)
        for section, option in changes:
            assert f"[{section}] {option}" in str(error.value), str(error.value)
