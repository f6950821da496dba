"""compiled/<env>/README.md: the same `kapitan compile` writes, for every Airflow environment, a
page for the Git host saying what runs (components, replicas, executor, version, DAG source,
database, secrets, GitOps engine, sign-in), a Mermaid diagram of this environment's components
only, and links to the target and class files it came from. No secret value, the same bytes on
every compile, and never applied by Argo CD or Flux."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest
import yaml

from airflow_gitops.validate.secrets_scan import _scan_tree, scan_text
from conftest import ENVIRONMENTS, REPO, compile_in, copy_repo, kapitan, load_manifests, read_tree

CELERY = "celery-keda"
WAREHOUSE_PASSWORD = "s3cret-warehouse-value"
FLUX = "staging"
LINK = re.compile(r"\]\(([^)]+)\)")
EDGE = re.compile(r"^\s+(\w+)(?:\(\[.*?\]\)|\[.*?\])? -\.?->\|([^|]*)\| (\w+)")
NODE = re.compile(r"^\s+(\w+)(?:\[\(|\(\[|\[)")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy compiled from scratch, with a Celery target (bundled Redis, KEDA, PgBouncer, Flower,
    StatsD) and staging on Flux."""
    root = copy_repo(tmp_path_factory.mktemp("overview"))
    shutil.rmtree(root / "compiled")
    (root / "inventory" / "targets" / f"{CELERY}.yml").write_text(yaml.safe_dump({
        "classes": ["common", "airflow.defaults", "airflow.executor.celery", "airflow.celery.keda", "airflow.celery.flower",
                    "airflow.dags.git-sync", "airflow.database.bundled", "airflow.database.pgbouncer", "airflow.metrics.statsd",
                    "airflow.logs.pvc", "airflow.objects.example", "dag-repository", "gitops-repository", "profiles.dev"],
        "parameters": {"airflow": {"logs": {"pvc": {"storage_class": "nfs-client"}}}},
    }))
    # The connection password airflow.objects.example reads, written once as a user does.
    secret = root / "warehouse-password.txt"
    secret.write_text(WAREHOUSE_PASSWORD)
    written = kapitan(root, "refs", "--write", f"base64:targets/{CELERY}/connections/warehouse-password", "-f", str(secret))
    assert written.returncode == 0, written.stderr
    staging = root / "inventory" / "targets" / f"{FLUX}.yml"
    staging.write_text(staging.read_text().replace("  - profiles.staging\n", "  - profiles.staging\n  - gitops.flux\n", 1))
    result = compile_in(root)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return root


def readme(root: Path, env: str) -> str:
    return (root / "compiled" / env / "README.md").read_text()


def mermaid(text: str) -> str:
    return text.split("```mermaid\n", 1)[1].split("```", 1)[0]


def nodes_and_edges(text: str) -> tuple[set[str], set[tuple[str, str, str]]]:
    nodes, edges = set(), set()
    for line in mermaid(text).splitlines():
        if line.strip().startswith("subgraph "):
            nodes.add(line.split()[1].split("[", 1)[0])
            continue
        edge = EDGE.match(line)
        if edge:
            edges.add((edge[1], edge[2], edge[3]))
        node = NODE.match(line)
        if node:
            nodes.add(node[1])
    return nodes, edges


def test_every_airflow_environment_gets_a_readme_and_the_bootstrap_none(repo):
    for env in (*ENVIRONMENTS, CELERY):
        assert readme(repo, env).startswith(f"# Airflow environment `{env}`\n")
    assert not list((repo / "compiled" / "bootstrap").rglob("README.md"))


def test_committed_readmes_are_what_the_compile_writes(repo):
    # The committed dev and prod are compiled as they are (staging is switched to Flux here).
    for env in ("dev", "prod"):
        assert (REPO / "compiled" / env / "README.md").read_bytes() == (repo / "compiled" / env / "README.md").read_bytes()


def test_two_compiles_give_the_same_bytes(repo, tmp_path):
    again = copy_repo(tmp_path / "again")
    for name in ("inventory", "kapitan"):
        shutil.rmtree(again / name)
        shutil.copytree(repo / name, again / name)
    shutil.rmtree(again / "compiled")
    assert compile_in(again).returncode == 0
    first, second = read_tree(repo / "compiled"), read_tree(again / "compiled")
    readmes = [path for path in first if path.endswith("README.md")]
    assert len(readmes) == len(ENVIRONMENTS) + 1
    assert {p: first[p] for p in readmes} == {p: second[p] for p in readmes}


def test_dev_overview_names_local_executor_and_bundled_database_without_celery(repo):
    text = readme(repo, "dev")
    assert "| Executor | LocalExecutor: tasks run in the scheduler's pod |" in text
    assert "| Database | bundled PostgreSQL: StatefulSet `airflow-postgres`, 8Gi volume" in text
    assert "image `apache/airflow:3.3.2`" in text
    assert "git-sync from `git@github.com:example/airflow-dags.git`, branch `main`, sub-path `dags`" in text
    assert "| Sign-in | SimpleAuthManager" in text
    assert "Argo CD: Application `airflow-dev`" in text
    # The dev profile's sizes, as the Deployments carry them.
    assert "| scheduler | Deployment airflow-scheduler | 1 | 100m, 256Mi | 1, 1536Mi |" in text
    nodes, edges = nodes_and_edges(text)
    assert nodes == {"people", "gitops", "repo", "dags", "ns", "api", "scheduler", "dagproc", "triggerer", "db"}
    assert ("scheduler", "metadata", "db") in edges and ("dags", "git-sync", "scheduler") in edges
    assert ("scheduler", "tasks: Execution API", "api") in edges
    assert not re.search(r"celery|redis|flower|kworkers", mermaid(text), re.IGNORECASE)


def test_celery_target_diagram_has_workers_redis_and_pgbouncer(repo):
    text = readme(repo, CELERY)
    nodes, edges = nodes_and_edges(text)
    assert {"cworkers", "redis", "flower", "pgbouncer", "statsd", "db"} <= nodes
    assert "kworkers" not in nodes
    assert {("scheduler", "queues tasks", "redis"), ("redis", "tasks", "cworkers"), ("cworkers", "Execution API", "api"),
            ("cworkers", "result backend", "pgbouncer"), ("scheduler", "metadata", "pgbouncer"), ("pgbouncer", "pools", "db"),
            ("dags", "git-sync", "cworkers")} <= edges
    assert "| Celery workers | StatefulSet airflow-celery-worker | 0-10 (KEDA ScaledObject airflow-celery-worker) |" in text
    assert "`airflow-redis`" in text and "`airflow-pgbouncer`" in text


def test_every_edge_joins_declared_nodes(repo):
    for env in (*ENVIRONMENTS, CELERY):
        nodes, edges = nodes_and_edges(readme(repo, env))
        assert edges, env
        for source, _, target in edges:
            assert source in nodes and target in nodes, (env, source, target)


def test_kubernetes_executor_overview_shows_worker_pods_and_the_external_database(repo):
    text = readme(repo, "prod")
    nodes, edges = nodes_and_edges(text)
    assert {("scheduler", "creates pods", "kworkers"), ("kworkers", "Execution API", "api"), ("dags", "git-sync", "kworkers")} <= edges
    assert "| Database | external: SQLAlchemy URL from Secret `airflow-metadata-db` (key `connection`) |" in text
    assert "| api-server | Deployment airflow-api-server | 2 |" in text
    assert "External Secrets: ClusterSecretStore `airflow`, store keys under `airflow/prod/`" in text
    assert "`airflow/prod/auth/sso-client-secret`" in text
    assert "OAuth/OpenID Connect: sso (keycloak)" in text


def test_flux_overview_names_the_kustomizations_flux_gets(repo):
    text = readme(repo, FLUX)
    flux = {o["metadata"]["name"]: o for p in (repo / "compiled" / FLUX / "flux").glob("*.yaml")
            for o in [yaml.safe_load(p.read_text())] if o["kind"] == "Kustomization" and o["apiVersion"].startswith("kustomize.toolkit")}
    assert len(flux) == 3
    for name, obj in flux.items():
        depends = [d["name"] for d in obj["spec"].get("dependsOn", [])]
        assert f"| `{name}` | `{obj['spec']['path']}` | {'`' + depends[0] + '`' if depends else '-'} |" in text
    assert "Argo CD" not in text


def test_links_resolve_to_the_target_and_every_class(repo):
    inventory = yaml.safe_load(kapitan(repo, "inventory").stdout)
    for env in (*ENVIRONMENTS, CELERY):
        page = repo / "compiled" / env / "README.md"
        links = LINK.findall(page.read_text())
        for link in links:
            assert (page.parent / link).resolve().is_file(), (env, link)
        classes = inventory[env]["classes"]
        linked = {str((page.parent / link).resolve().relative_to(repo.resolve())) for link in links}
        assert f"inventory/targets/{env}.yml" in linked
        assert {f"inventory/classes/{c.replace('.', '/')}.yml" for c in classes} <= linked


def test_a_class_change_shows_in_the_readme(tmp_path):
    root = copy_repo(tmp_path / "changed")
    profile = root / "inventory" / "classes" / "profiles" / "dev.yml"
    text = profile.read_text().replace("    api_server:\n      workers: 1\n", "    api_server:\n      replicas: 3\n      workers: 1\n", 1)
    text = text.replace("limits: {cpu: \"1\", memory: 1536Mi}", "limits: {cpu: \"1\", memory: 3Gi}", 1)
    profile.write_text(text)
    # And a class added to the target.
    target = root / "inventory" / "targets" / "dev.yml"
    target.write_text(target.read_text().replace("  - profiles.dev\n", "  - profiles.dev\n  - airflow.metrics.statsd\n", 1))
    assert compile_in(root, "-t", "dev").returncode == 0
    page = readme(root, "dev")
    assert "| api-server | Deployment airflow-api-server | 3 |" in page
    assert "| scheduler | Deployment airflow-scheduler | 1 | 100m, 256Mi | 1, 3Gi |" in page
    assert "10. `airflow.metrics.statsd` [inventory/classes/airflow/metrics/statsd.yml](../../inventory/classes/airflow/metrics/statsd.yml)\n" in page
    assert "statsd" in nodes_and_edges(page)[0]
    assert page != (REPO / "compiled" / "dev" / "README.md").read_text()


def test_declared_connection_secrets_are_named_never_shown(repo):
    text = readme(repo, CELERY)
    assert "| `airflow-objects` | connections and variables | `kapitan/refs/targets/celery-keda/connections/warehouse-password` |" in text
    assert "| `airflow-slack` | a connection password or variable (key `webhook`) |" in text
    assert WAREHOUSE_PASSWORD not in text and "?{" not in text
    assert "`airflow-objects-<hash>` (connections, variables, pools)" in text  # Argo CD's wave 1
    assert scan_text(text, CELERY) == []


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_secret_value_appears(env, repo):
    text = readme(repo, env)
    assert "?{" not in text  # not even a ref tag
    assert scan_text(text, f"compiled/{env}/README.md") == []
    refs = REPO / "kapitan" / "refs" / "targets" / env
    for ref in sorted(refs.glob("*")) if refs.is_dir() else []:
        data = yaml.safe_load(ref.read_text())["data"]
        value = base64.b64decode(data).decode()
        assert value not in text and data not in text, ref.name
        assert f"kapitan/refs/targets/{env}/{ref.name}" in text  # its path, instead


def test_the_gitops_engines_never_apply_the_readme(repo):
    for env in ENVIRONMENTS:
        compiled = repo / "compiled" / env
        # Argo CD and Flux read compiled/<env>/manifests (and its directories) only.
        for path in [*(compiled / "argocd").glob("*.yaml"), *(compiled / "flux").glob("*.yaml")]:
            obj = yaml.safe_load(path.read_text())
            source = (obj.get("spec") or {}).get("source") or {}
            read = source.get("path") or (obj.get("spec") or {}).get("path")
            if read:
                assert read.lstrip("./").startswith(f"compiled/{env}/manifests"), (path, read)
        for kustomization in compiled.rglob("kustomization.yaml"):
            assert "README.md" not in kustomization.read_text()


def test_the_secrets_check_reads_the_readme(tmp_path):
    page = tmp_path / "compiled" / "dev" / "README.md"
    page.parent.mkdir(parents=True)
    page.write_text("# Airflow environment `dev`\n\n-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert _scan_tree(tmp_path / "compiled", tmp_path) == ["compiled/dev/README.md:3: looks like a private key"]


def test_components_table_matches_the_compiled_workloads(repo):
    row = re.compile(r"^\| [^|]+ \| (Deployment|StatefulSet) ([\w-]+) \| (\S+)[^|]* \| ([^|]+) \| ([^|]+) \|", re.MULTILINE)
    for env in (*ENVIRONMENTS, CELERY):
        objects = load_manifests(repo / "compiled", env)
        rows = row.findall(readme(repo, env))
        assert len(rows) >= 4, env
        for kind, name, replicas, requests, limits in rows:
            obj = objects[f"{kind.lower()}-{name}.yaml"]
            if replicas.isdigit():
                assert obj["spec"]["replicas"] == int(replicas), (env, name)
            else:  # autoscaled: the engine leaves replicas to the autoscaler
                assert "replicas" not in obj["spec"], (env, name)
            sizes = [(", ".join(str(v) for v in c["resources"]["requests"].values()), ", ".join(str(v) for v in c["resources"]["limits"].values()))
                     for c in obj["spec"]["template"]["spec"]["containers"]]
            assert (requests.strip(), limits.strip()) in sizes, (env, name, sizes)


def test_the_readme_is_compiled_after_the_input_that_checks_the_inventory():
    # components/overview reads the parameters without checking them again: only Kapitan stopping a
    # target at its first failing input, components/environment.jsonnet, keeps a bad inventory out.
    common = yaml.safe_load((REPO / "inventory" / "classes" / "common.yml").read_text())
    inputs = [path for entry in common["parameters"]["kapitan"]["compile"] for path in entry["input_paths"]]
    assert inputs[0] == "components/environment.jsonnet" and "components/overview/main.jsonnet" in inputs[1:]
    assert "inv.whenValid(" in (REPO / "components" / "environment.jsonnet").read_text()


def test_a_bad_inventory_stops_the_compile_before_the_readme(tmp_path):
    root = copy_repo(tmp_path / "repo")
    before = read_tree(root / "compiled")
    dev = root / "inventory" / "targets" / "dev.yml"
    assert dev.read_text().endswith("        ref: main\n")  # parameters.airflow's block is last
    dev.write_text(dev.read_text() + "    scheduler:\n      replicas: three\n")
    result = compile_in(root, "-t", "dev")
    assert result.returncode != 0
    assert "inventory/targets/dev.yml: parameters.airflow.scheduler.replicas" in result.stdout + result.stderr
    assert read_tree(root / "compiled") == before
