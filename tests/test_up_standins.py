"""The local stand-ins `airflow-gitops up` runs for the non-Airflow images (airflow_gitops.up.standins),
run for real on our manifests' containers: Debian's PostgreSQL 15 for postgres:16.4, Debian's Redis
for redis:7.4, and the git-sync v4 emulation against local repositories. Outside bubblewrap: the
servers run as this machine's postgres user, on 127.0.0.1 and free ports."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
import yaml

from airflow_gitops.up.standins import (
    POSTGRES_BIN, REDIS_BIN, STANDIN_KINDS, StandinError, git_sync_command, image_defaults, image_kind,
    postgres_command, redis_command, standin_command,
)
from conftest import REPO, free_port, start_group, stop_groups

DEV = REPO / "compiled" / "dev" / "manifests"
AS_POSTGRES = ["setpriv", "--reuid", "postgres", "--regid", "postgres", "--clear-groups"] if os.geteuid() == 0 else []


def workload(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def containers_of(obj: dict) -> dict[str, dict]:
    spec = obj["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


def env_of(container: Mapping, replace: Mapping[str, str] = {}) -> dict[str, str]:
    """The container's env values with `replace` substituted (paths of the pod -> paths here)."""
    env = {}
    for var in container.get("env", []):
        value = var["value"]
        for old, new in replace.items():
            value = value.replace(old, new)
        env[var["name"]] = value
    return env


def wait_until(what: str, check, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None):
    """check()'s first truthy value, polled; fails if `process` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if process is not None and process.poll() is not None:
            pytest.fail(f"exited ({process.returncode}) while waiting for {what}:\n{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:] if log else ''}")


def test_image_kinds_of_our_images():
    assert image_kind("postgres:16.4") == "postgres"
    assert image_kind("docker.io/library/postgres:16.4@sha256:" + "0" * 64) == "postgres"
    assert image_kind("redis:7.4.2-bookworm") == "redis"
    assert image_kind("registry.k8s.io/git-sync/git-sync:v4.4.2") == "git-sync"
    assert image_kind("apache/airflow:3.3.2") == "airflow"
    assert image_kind("apache/airflow:airflow-pgbouncer-2025.03.05-1.23.1") == "pgbouncer"
    assert image_kind("quay.io/prometheus/statsd-exporter:v0.28.0") == "statsd-exporter"
    assert image_kind("registry.example.com/team/airflow:3.3.2") is None
    assert image_kind("localhost:5000/postgres:16") is None  # another registry's postgres is not Docker Hub's
    # Every image the compiled environments name has a kind.
    images = set()
    for path in (REPO / "compiled").glob("*/manifests/*/*.yaml"):
        for obj in yaml.safe_load_all(path.read_text()):
            spec = (obj or {}).get("spec") or {}
            spec = (spec.get("jobTemplate") or {}).get("spec", spec)
            pod = (spec.get("template") or {}).get("spec") or {}
            images |= {c["image"] for c in [*pod.get("initContainers", []), *pod.get("containers", [])]}
    assert {"postgres:16.4", "registry.k8s.io/git-sync/git-sync:v4.4.2"} <= images
    assert {image: image_kind(image) for image in images if image_kind(image) is None} == {}


def test_kinds_without_a_standin_are_refused_by_name():
    with pytest.raises(StandinError, match="no local stand-in for statsd-exporter images"):
        standin_command("statsd-exporter", {"name": "statsd-exporter"}, {})
    with pytest.raises(StandinError, match="virtualenv"):
        image_defaults("airflow")
    assert STANDIN_KINDS == {"postgres", "redis", "git-sync"}


# --- PostgreSQL ------------------------------------------------------------------------------------

POSTGRES = workload(DEV / "base" / "statefulset-airflow-postgres.yaml")
POSTGRES_CONTAINER = containers_of(POSTGRES)["postgres"]


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A directory the postgres user owns, holding the pod's volumes (data, run, the password
    secret): not under pytest's tmp dir, which is private to root."""
    if not (POSTGRES_BIN / "postgres").exists():
        pytest.fail(f"PostgreSQL 15 is expected at {POSTGRES_BIN} on this machine kind")
    base = Path(tempfile.mkdtemp(prefix="airflow-gitops-standin-pg-"))
    for volume in ("data", "run", "secrets"):
        (base / volume).mkdir()
    if os.geteuid() == 0:
        for path in [base, *base.iterdir()]:
            shutil.chown(path, "postgres", "postgres")
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def write_password(base: Path, password: str) -> None:
    """The `password` secret volume's file (mode 0440, as defaultMode 288)."""
    path = base / "secrets" / "password"
    path.write_text(password)
    path.chmod(0o440)
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def manifest_env(base: Path) -> dict[str, str]:
    """The image's env, then our container's, its volumes' paths replaced by base's."""
    replace = {"/var/lib/postgresql/data": str(base / "data"), "/run/secrets/postgres": str(base / "secrets")}
    return {**image_defaults("postgres").env, **env_of(POSTGRES_CONTAINER, replace)}


def start_postgres(base: Path, port: int, log: Path, **options) -> subprocess.Popen:
    """Our postgres container (its args: loopback only and `port`) on its stand-in, as postgres."""
    container = {**POSTGRES_CONTAINER, "args": ["-c", "listen_addresses=127.0.0.1", "-p", str(port)]}
    argv = postgres_command(container, manifest_env(base), socket_dir=str(base / "run"), **options)
    with open(log, "a") as out:
        return start_group([*AS_POSTGRES, *argv], env=manifest_env(base), stdout=out, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)


def wait_ready(process: subprocess.Popen, port: int, log: Path) -> None:
    """Until our readiness probe (pg_isready -U airflow -d airflow -h 127.0.0.1) passes."""
    probe = POSTGRES_CONTAINER["readinessProbe"]["exec"]["command"]
    argv = [str(POSTGRES_BIN / probe[0]), *probe[1:], "-p", str(port)]
    wait_until("PostgreSQL to be ready", lambda: subprocess.run(argv, capture_output=True).returncode == 0,
               60, process, log)


@contextmanager
def from_another_pod(port: int) -> Iterator[int]:
    """A port on 127.0.0.1 relaying to `port` from the source address 127.0.0.2: the server sees a
    client that is not itself, as Airflow's pods are, where initdb's pg_hba.conf lines trust
    127.0.0.1 (in the image too) and only the entrypoint's `host all all all` line applies."""
    listener = socket.create_server(("127.0.0.1", 0))
    sockets = [listener]

    def pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            with suppress(OSError):
                target.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
            sockets.extend([client, upstream])
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def psql(port: int, password: str, sql: str) -> subprocess.CompletedProcess[str]:
    """SQL over TCP as airflow to the airflow database, with a password."""
    return subprocess.run([str(POSTGRES_BIN / "psql"), f"host=127.0.0.1 port={port} user=airflow dbname=airflow",
                           "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                          env={**os.environ, "PGPASSWORD": password, "PGSSLMODE": "disable"},
                          capture_output=True, text=True, timeout=30)


def test_postgres_initialises_an_empty_data_dir_once_with_our_manifests_settings(pg_dir, tmp_path):
    password = 'pa ss"word\'1'
    write_password(pg_dir, password)
    port, log = free_port(), tmp_path / "postgres.log"
    pgdata = pg_dir / "data" / "pgdata"

    server = start_postgres(pg_dir, port, log)
    try:
        wait_ready(server, port, log)
        # As in the image: initdb's own lines trust the loopback address (the probes use it).
        assert psql(port, "not the password", "SELECT 1").returncode == 0
        with from_another_pod(port) as relay:
            wrong = psql(relay, "not the password", "SELECT 1")
            assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr, wrong.stderr
            assert psql(relay, password, "SELECT inet_client_addr()").stdout.strip() == "127.0.0.2"
        who = psql(port, password, "SELECT current_user, current_database(), "
                   "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), current_setting('password_encryption')")
        assert who.stdout.strip() == "airflow|airflow|t|scram-sha-256", who.stdout + who.stderr
        verifier = psql(port, password, "SELECT rolpassword FROM pg_authid WHERE rolname = 'airflow'").stdout
        assert verifier.startswith("SCRAM-SHA-256$"), verifier
        assert psql(port, password, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)").returncode == 0
    finally:
        stop_groups([server])
    hba = (pgdata / "pg_hba.conf").read_text().strip().splitlines()
    assert hba[-1] == "host all all all scram-sha-256"
    assert "listen_addresses = '*'" in (pgdata / "postgresql.conf").read_text()  # the image's sample's
    first = log.read_text()
    assert "PostgreSQL init process complete; ready for start up." in first
    assert first.count("CREATE DATABASE") == 1

    # A second start on the same volume: no initdb, the data kept, and the password file read no
    # more (the image reads it only when it creates the data directory: our postStart hook sets it).
    write_password(pg_dir, "a rotated password")
    version = (pgdata / "PG_VERSION").stat()
    server = start_postgres(pg_dir, port, log)
    try:
        wait_ready(server, port, log)
        with from_another_pod(port) as relay:
            assert psql(relay, password, "SELECT n FROM kept").stdout.strip() == "42"
            assert psql(relay, "a rotated password", "SELECT 1").returncode != 0
    finally:
        stop_groups([server])
    second = log.read_text()[len(first):]
    assert "appears to contain a database; Skipping initialization" in second
    assert "initdb" not in second and "CREATE DATABASE" not in second
    assert (pgdata / "PG_VERSION").stat().st_mtime_ns == version.st_mtime_ns


def test_postgres_runs_the_init_scripts_into_postgres_db(pg_dir, tmp_path):
    """/docker-entrypoint-initdb.d (ours mounts none; `initdb_dir` here): *.sql run, *.sh sourced."""
    write_password(pg_dir, "secret")
    scripts = pg_dir / "initdb.d"
    scripts.mkdir()
    (scripts / "01-table.sql").write_text("CREATE TABLE from_sql (n int); INSERT INTO from_sql VALUES (1);\n")
    (scripts / "02-more.sh").write_text('"${psql[@]}" -c "INSERT INTO from_sql VALUES (2)"\n')
    (scripts / "03-notes.txt").write_text("ignored\n")
    if os.geteuid() == 0:
        for path in [scripts, *scripts.iterdir()]:
            shutil.chown(path, "postgres", "postgres")
    port, log = free_port(), tmp_path / "postgres.log"
    server = start_postgres(pg_dir, port, log, initdb_dir=str(scripts))
    try:
        wait_ready(server, port, log)
        assert psql(port, "secret", "SELECT string_agg(n::text, ',' ORDER BY n) FROM from_sql").stdout.strip() == "1,2"
    finally:
        stop_groups([server])
    text = log.read_text()
    assert "running " + str(scripts / "01-table.sql") in text and "sourcing " + str(scripts / "02-more.sh") in text
    assert "ignoring " + str(scripts / "03-notes.txt") in text


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run as root and as a uid without a passwd entry")
def test_postgres_refuses_root_and_a_uid_it_cannot_look_up(pg_dir, tmp_path):
    write_password(pg_dir, "secret")
    env = manifest_env(pg_dir)
    argv = postgres_command(POSTGRES_CONTAINER, env, socket_dir=str(pg_dir / "run"))
    as_root = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    assert as_root.returncode == 1 and "running as root" in as_root.stderr and "runAsUser 999" in as_root.stderr
    assert not (pg_dir / "data" / "pgdata").exists()

    # Our manifests' uid 999 (here one this machine lacks, as a sandbox lacks 999): initdb needs
    # the image's /etc/passwd entry.
    uid = 54321
    for path in [pg_dir, *pg_dir.rglob("*")]:
        os.chown(path, uid, uid)
    unknown = subprocess.run(["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups", *argv],
                             env=env, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 1, unknown.stdout + unknown.stderr
    assert f"uid {uid} has no /etc/passwd entry" in unknown.stderr and "image_defaults('postgres').passwd" in unknown.stderr


def test_postgres_command_follows_the_image_entrypoints_rules():
    env = {"POSTGRES_PASSWORD": "x", "POSTGRES_PASSWORD_FILE": "/run/secrets/postgres/password"}
    with pytest.raises(StandinError, match="both POSTGRES_PASSWORD and POSTGRES_PASSWORD_FILE"):
        postgres_command(POSTGRES_CONTAINER, env)
    # A `command` replaces the entrypoint; `args` alone go through it, `postgres` by default.
    assert postgres_command({"command": ["pg_isready"], "args": ["-q"]}, {}) == ["pg_isready", "-q"]
    argv = postgres_command({}, {})
    assert argv[:2] == ["/bin/bash", "-c"] and argv[3:] == ["docker-entrypoint.sh", "postgres"]
    assert image_defaults("postgres").stop_signal.name == "SIGINT"


# --- Redis -----------------------------------------------------------------------------------------

CELERY = (REPO / "components" / "celery" / "main.jsonnet").read_text()


def redis_conf(auth_dir: Path, data_dir: Path) -> str:
    """Our redis.conf, as components/celery/main.jsonnet writes it (no compiled environment has
    Redis), its paths replaced by the test's volumes."""
    text = re.search(r"local redisConf = text\.fill\(\|\|\|\n(.*?)\n\|\|\|, \{ authDir: authDir \}\);", CELERY, re.S).group(1)
    text = "\n".join(line.removeprefix("  ") for line in text.splitlines()) + "\n"
    return text.replace("%(authDir)s", str(auth_dir)).replace("dir /data", f"dir {data_dir}")


def test_redis_answers_ping_with_the_password_our_manifest_writes(tmp_path):
    # `make test` installs it (TEST_PACKAGES): a missing server fails, it does not skip.
    assert (REDIS_BIN / "redis-server").exists(), "redis-server is not installed (apt-get install redis-server)"
    secrets, auth, data = (tmp_path / "password", tmp_path / "auth", tmp_path / "data")
    for directory in (secrets, auth, data):
        directory.mkdir()
    (secrets / "redis-password").write_text("k3YQ0vDx7yN2bTzR5mWcA9sHfLpE4uJg")  # as random:str:32 makes them
    conf = tmp_path / "redis.conf"
    conf.write_text(redis_conf(auth, data))
    # The write-auth init container (the redis image, `sh -c`) as the manifest declares it.
    write_auth = {"name": "write-auth", "command": [
        "sh", "-c", f'umask 077 && printf "requirepass %s\\n" "$(cat {secrets}/redis-password)" > {auth}/auth.conf']}
    env = dict(image_defaults("redis").env)
    assert redis_command(write_auth, env) == write_auth["command"]
    subprocess.run(redis_command(write_auth, env), env=env, check=True, timeout=30)
    assert oct((auth / "auth.conf").stat().st_mode & 0o777) == "0o600"

    port = free_port()
    redis = {"name": "redis", "command": ["redis-server", str(conf)], "args": ["--port", str(port), "--bind", "127.0.0.1"]}
    argv = redis_command(redis, env)
    assert argv[0] == str(REDIS_BIN / "redis-server")
    log = tmp_path / "redis.log"
    with open(log, "w") as out:
        server = start_group(argv, env=env, cwd=data, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    cli = [str(REDIS_BIN / "redis-cli"), "-h", "127.0.0.1", "-p", str(port)]
    with_password = {**env, "REDISCLI_AUTH": (secrets / "redis-password").read_text()}
    try:
        wait_until("Redis to answer PING", lambda: subprocess.run([*cli, "ping"], env=with_password, capture_output=True,
                                                                   text=True).stdout.strip() == "PONG", 30, server, log)
        denied = subprocess.run([*cli, "ping"], env=env, capture_output=True, text=True)
        assert "NOAUTH" in denied.stdout + denied.stderr
        policy = subprocess.run([*cli, "config", "get", "maxmemory-policy"], env=with_password, capture_output=True, text=True)
        assert policy.stdout.split() == ["maxmemory-policy", "noeviction"]
        appendonly = subprocess.run([*cli, "config", "get", "appendonly"], env=with_password, capture_output=True, text=True)
        assert appendonly.stdout.split() == ["appendonly", "yes"]
    finally:
        stop_groups([server])


def test_redis_args_alone_go_through_the_image_entrypoint():
    if not (REDIS_BIN / "redis-server").exists():
        with pytest.raises(StandinError, match="apt-get install redis-server"):
            redis_command({"args": ["/etc/redis/redis.conf"]}, {})
        return
    argv = redis_command({"args": ["/etc/redis/redis.conf"]}, {})
    assert argv[:2] == ["/bin/sh", "-c"]
    assert argv[3:] == ["docker-entrypoint.sh", str(REDIS_BIN / "redis-server"), "/etc/redis/redis.conf"]
    assert redis_command({}, {})[4:] == [str(REDIS_BIN / "redis-server")]


# --- git-sync --------------------------------------------------------------------------------------

SCHEDULER = containers_of(workload(DEV / "workloads" / "deployment-airflow-scheduler.yaml"))
DAGS_URL = SCHEDULER["git-sync"]["env"][0]["value"]  # GITSYNC_REPO


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1"}).stdout.strip()


def commit(work: Path, text: str, branch: str = "main") -> str:
    """A commit of dags/dag.py holding `text` on `branch`, pushed to the bare origin: its sha."""
    (work / "dags").mkdir(exist_ok=True)
    (work / "dags" / "dag.py").write_text(text)
    git(work, "add", "-A")
    git(work, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", text)
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    return git(work, "rev-parse", "HEAD")


@pytest.fixture
def origin(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A bare repository standing in for our DAG repository, with two commits on main: (bare, a
    clone to commit from, [first sha, second sha])."""
    bare, work = tmp_path / "dags.git", tmp_path / "work"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(tmp_path, "init", "-q", "-b", "main", str(work))
    git(work, "remote", "add", "origin", str(bare))
    return bare, work, [commit(work, "v1"), commit(work, "v2")]


def git_sync_env(container: Mapping, root: Path, **overrides: str) -> dict[str, str]:
    """The image's env, then the container's (its /git volume -> root), then `overrides`."""
    env = {**image_defaults("git-sync").env, **env_of(container), "GITSYNC_ROOT": str(root),
           "HOME": str(root.parent / "home"), **overrides}
    return {k: v for k, v in env.items() if v is not None}


def http_status(port: int) -> tuple[int, str] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return None


def test_git_sync_one_time_checks_the_ref_out_behind_the_link(origin, tmp_path):
    bare, _, (first, second) = origin
    root = tmp_path / "git"
    container = SCHEDULER["git-sync-init"]  # GITSYNC_ONE_TIME, GITSYNC_LINK repo, depth 1, SSH settings
    env = git_sync_env(container, root, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    done = subprocess.run(git_sync_command(container, env, {DAGS_URL: str(bare)}), env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "tmp").iterdir())  # its private git config removed
    link = root / "repo"
    assert os.readlink(link) == f".worktrees/{second}"  # relative: the volume may be mounted anywhere
    assert (link / "dags" / "dag.py").read_text() == "v2"
    assert git(link, "rev-parse", "HEAD") == second
    assert git(root, "rev-parse", "--is-shallow-repository") == "true"  # GITSYNC_DEPTH 1
    assert git(root, "remote", "get-url", "origin") == DAGS_URL
    assert "exiting after one sync" in done.stderr
    assert "--ssh-key-file" in done.stderr  # accepted and said to be ignored

    # A commit as the ref, in a root that already has a worktree: the link moves, the old one goes.
    env = git_sync_env(container, root, GITSYNC_REF=first)
    done = subprocess.run(git_sync_command(container, env, {DAGS_URL: f"file://{bare}"}), env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert os.readlink(link) == f".worktrees/{first}" and (link / "dags" / "dag.py").read_text() == "v1"
    assert sorted(p.name for p in (root / ".worktrees").iterdir()) == [first]


def test_git_sync_picks_up_a_new_commit_and_flips_the_link_atomically(origin, tmp_path):
    bare, work, (_, second) = origin
    root, log, port = tmp_path / "git", tmp_path / "git-sync.log", free_port()
    container = SCHEDULER["git-sync"]
    env = git_sync_env(container, root, GITSYNC_PERIOD="200ms", GITSYNC_HTTP_BIND=f"127.0.0.1:{port}")
    link = root / "repo"
    with open(log, "w") as out:
        process = start_group(git_sync_command(container, env, {DAGS_URL: str(bare)}), env=env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_until("the first sync", lambda: os.path.lexists(link) and http_status(port) == (200, ""), 30, process, log)
        assert os.readlink(link) == f".worktrees/{second}"

        seen: set[str] = set()
        missing: list[str] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                try:
                    seen.add(os.readlink(link))
                except OSError as error:  # the link absent for a moment: not atomic
                    missing.append(str(error))

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            third = commit(work, "v3")
            wait_until("the new commit", lambda: os.readlink(link) == f".worktrees/{third}", 15, process, log)
        finally:
            stop.set()
            watcher.join()
        assert not missing, missing[:3]
        assert seen == {f".worktrees/{second}", f".worktrees/{third}"}
        assert (link / "dags" / "dag.py").read_text() == "v3"
        wait_until("the previous worktree to go", lambda: not (root / ".worktrees" / second).exists(), 10, process, log)
        assert process.poll() is None  # syncs on
    finally:
        stop_groups([process])


def test_git_sync_is_not_ready_until_a_sync_succeeds_and_retries(origin, tmp_path):
    bare, work, _ = origin
    root, log, port = tmp_path / "git", tmp_path / "git-sync.log", free_port()
    container = SCHEDULER["git-sync"]
    env = git_sync_env(container, root, GITSYNC_REF="release", GITSYNC_MAX_FAILURES="-1", GITSYNC_PERIOD="100ms",
                       GITSYNC_HTTP_BIND=f"127.0.0.1:{port}")
    with open(log, "w") as out:
        process = start_group(git_sync_command(container, env, {DAGS_URL: str(bare)}), env=env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert wait_until("the probe endpoint", lambda: http_status(port), 30, process, log) == (503, "repo is not ready\n")
        wait_until("a failed sync", lambda: "error syncing repo, will retry" in log.read_text(), 30, process, log)
        assert not os.path.lexists(root / "repo")
        release = commit(work, "released", branch="release")
        wait_until("readiness", lambda: http_status(port) == (200, ""), 30, process, log)
        assert os.readlink(root / "repo") == f".worktrees/{release}"
    finally:
        stop_groups([process])


def test_git_sync_gives_up_after_max_failures(origin, tmp_path):
    bare, _, _ = origin
    container = SCHEDULER["git-sync"]
    env = git_sync_env(container, tmp_path / "git", GITSYNC_REF="no-such-branch", GITSYNC_MAX_FAILURES="2",
                       GITSYNC_PERIOD="50ms", GITSYNC_HTTP_BIND=None)
    done = subprocess.run(git_sync_command(container, env, {DAGS_URL: str(bare)}), env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.count("error syncing repo, will retry") == 1 and "too many failures, aborting" in done.stderr
    assert "no-such-branch" in done.stderr


def test_git_sync_refuses_an_unknown_repo_url_by_name(origin, tmp_path):
    bare, _, _ = origin
    container = SCHEDULER["git-sync-init"]
    env = git_sync_env(container, tmp_path / "git")
    with pytest.raises(StandinError, match=re.escape(f"no local repository stands in for the repo '{DAGS_URL}'")):
        git_sync_command(container, env, {"https://example.com/other.git": str(bare)})
    with pytest.raises(StandinError, match="does not exist"):
        git_sync_command(container, env, {DAGS_URL: str(tmp_path / "missing.git")})
    # The script checks it too, against the environment it runs with.
    argv = git_sync_command(container, env, {DAGS_URL: str(bare)})
    done = subprocess.run(argv, env={**env, "GITSYNC_REPO": "https://example.com/elsewhere.git"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "no local repository stands in for the repo 'https://example.com/elsewhere.git'" in done.stderr
    assert not (tmp_path / "git").exists()


@pytest.mark.parametrize(("flags", "variables", "message"), [
    ([], {"GITSYNC_WEBHOOK_URL": "http://127.0.0.1:1/"}, "--webhook-url ($GITSYNC_WEBHOOK_URL) is not emulated"),
    (["--exechook-command=/bin/true"], {}, "--exechook-command ($GITSYNC_EXECHOOK_COMMAND) is not emulated"),
    (["--no-such-flag"], {}, "unknown flag: --no-such-flag"),
    (["--branch", "main"], {}, "flag --branch is git-sync v3's: use --ref"),
    ([], {"GITSYNC_PERIOD": "30"}, "invalid duration env GITSYNC_PERIOD='30'"),
    ([], {"GITSYNC_ROOT": None}, "required flag: --root must be specified"),
    (["--depth=-1"], {}, "--depth must be greater than or equal to 0"),
])
def test_git_sync_refuses_what_it_does_not_emulate_or_git_sync_rejects(origin, tmp_path, flags, variables, message):
    bare, _, _ = origin
    container = {**SCHEDULER["git-sync"], "args": flags}
    env = git_sync_env(container, tmp_path / "git", **variables)
    with pytest.raises(StandinError, match=re.escape(message)):
        git_sync_command(container, env, {DAGS_URL: str(bare)})


def test_git_sync_flags_override_the_environment(origin, tmp_path):
    bare, _, (first, _) = origin
    root = tmp_path / "elsewhere"
    container = {**SCHEDULER["git-sync"], "command": ["/git-sync"],
                 "args": ["--one-time", f"--ref={first}", "--root", str(root), "--link=current", "--http-bind="]}
    env = git_sync_env(container, tmp_path / "git")
    done = subprocess.run(git_sync_command(container, env, {DAGS_URL: str(bare)}), env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert os.readlink(root / "current") == f".worktrees/{first}" and not (tmp_path / "git").exists()
    with pytest.raises(StandinError, match="emulates only the git-sync binary"):
        git_sync_command({**container, "command": ["sh", "-c", "true"]}, env, {DAGS_URL: str(bare)})
