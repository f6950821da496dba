"""The test infrastructure of the sign-in end-to-end tests, tested for real: a compiled pod's
containers run under bubblewrap with the constraints their pod imposes (airflow_gitops.up.sandbox), and
the identity providers they sign in against (tests/identity_providers.py): slapd and an OpenID
Connect provider."""

from __future__ import annotations

import base64
import os
import json
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from airflow_gitops.airflow_env import AirflowEnvironment
from airflow_gitops.up.sandbox import CompiledPod, PodSpecError
from conftest import REPO, command_line, descendants, manifest_files, stop_groups
from identity_providers import LdapUser, oidc_provider, openldap

# The tests' own virtualenv stands in for the image where Airflow itself is not run: its python
# is all these containers need.
STAND_IN = AirflowEnvironment(Path(sys.prefix))
SERVICE = "airflow-postgres.airflow-dev.svc.cluster.local:5432"
LOCAL = "127.0.0.1:5433"

# A probe run in a container: tries to create each path given, prints {path: "ok" | errno name}.
TRY_WRITES = """
import errno, json, sys
result = {}
for path in sys.argv[1:]:
    try:
        open(path, "w").close()
        result[path] = "ok"
    except OSError as error:
        result[path] = errno.errorcode[error.errno]
print(json.dumps(result))
"""


def python(script: str, *args: str) -> list[str]:
    return ["python", "-c", script, *args]


def deployment(containers: list[dict], init: list[dict] | None = None, volumes: list[dict] | None = None) -> dict:
    """A Deployment as the compile writes them: the pod runs as the image's user, non-root."""
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo"}, "spec": {"template": {"spec": {
        "securityContext": {"runAsUser": 50000, "runAsGroup": 0, "runAsNonRoot": True, "fsGroup": 0},
        "initContainers": init or [], "containers": containers, "volumes": volumes or []}}}}


VOLUMES = [
    {"name": "tmp", "emptyDir": {}},
    {"name": "work", "emptyDir": {"medium": "Memory"}},
    {"name": "config", "configMap": {"name": "airflow-config", "items": [{"key": "airflow.cfg", "path": "airflow.cfg"}]}},
    {"name": "secrets", "projected": {"defaultMode": 0o440, "sources": [
        {"secret": {"name": "airflow-metadata-db", "items": [{"key": "password", "path": "database-password"}]}},
        {"secret": {"name": "airflow-secrets", "items": [{"key": "jwt-secret", "path": "jwt-secret", "mode": 0o400}]}},
    ]}},
    {"name": "everything", "secret": {"secretName": "airflow-secrets"}},
]
SECRETS = {"airflow-metadata-db": {"password": "s3cret/with:chars"},
           "airflow-secrets": {"jwt-secret": "jwt-value", "fernet-key": "fernet-value"}}
CONFIG_MAPS = {"airflow-config": {"airflow.cfg": f"[database]\nhost = {SERVICE}\n", "other.cfg": "not mounted\n"}}
MOUNTS = [
    {"name": "tmp", "mountPath": "/tmp"},
    {"name": "work", "mountPath": "/opt/airflow/work"},
    {"name": "config", "mountPath": "/opt/airflow/airflow.cfg", "subPath": "airflow.cfg", "readOnly": True},
    {"name": "secrets", "mountPath": "/opt/airflow/secrets", "readOnly": True},
    {"name": "everything", "mountPath": "/etc/airflow-secrets"},
]


@pytest.fixture
def pod(tmp_path: Path) -> CompiledPod:
    writer = {"name": "writer", "command": python("open('/opt/airflow/work/handover', 'w').write('from the init container')"),
              "volumeMounts": MOUNTS}
    main = {"name": "main", "args": ["bash", "-c", "cat /opt/airflow/work/handover"], "volumeMounts": MOUNTS}
    read_only = {"name": "read-only", "command": python(TRY_WRITES, "/opt/airflow/work/x", "/opt/airflow/secrets/x", "/etc/airflow-secrets/x"),
                 "volumeMounts": [{**MOUNTS[1], "readOnly": True}, MOUNTS[3], MOUNTS[4]]}
    other_user = {"name": "other-user", "command": ["id"], "securityContext": {"runAsUser": 1234, "runAsGroup": 2345}}
    root = {"name": "root", "command": ["id"], "securityContext": {"runAsUser": 0}}
    return CompiledPod(deployment([main, read_only, other_user, root], [writer], VOLUMES), airflow=STAND_IN,
                       workdir=tmp_path / "pod", secrets=SECRETS, config_maps=CONFIG_MAPS, replace={SERVICE: LOCAL})


def run_ok(pod: CompiledPod, container: str, command: list[str] | None = None) -> str:
    result = pod.run(container, timeout=60, command=command)
    assert result.returncode == 0, f"{container} exited {result.returncode}:\n{result.stdout}{result.stderr}\n{pod.argv(container, command)}"
    return result.stdout


def test_the_root_filesystem_is_read_only_but_for_writable_volumes(pod):
    paths = ["/written", "/etc/written", "/usr/written", "/opt/airflow/written", "/opt/airflow/dags/written",
             "/home/airflow/written", "/tmp/written", "/opt/airflow/work/written"]
    result = json.loads(run_ok(pod, "main", python(TRY_WRITES, *paths)))
    assert result == {**{p: "EROFS" for p in paths[:-2]}, "/tmp/written": "ok", "/opt/airflow/work/written": "ok"}
    assert (pod.volume_dir("tmp") / "written").exists()


def test_an_empty_dir_is_shared_by_the_containers_of_the_pod(pod):
    run_ok(pod, "writer")
    assert (pod.volume_dir("work") / "handover").read_text() == "from the init container"
    assert run_ok(pod, "main") == "from the init container"


def test_a_config_map_item_with_sub_path_is_the_only_file_at_its_path(pod):
    listing = run_ok(pod, "main", ["bash", "-c", "cd /opt/airflow && ls -A && test -f airflow.cfg && cat airflow.cfg"])
    entries, config = listing.split("[database]", 1)
    assert entries.split() == ["airflow.cfg", "dags", "logs", "secrets", "work"]
    assert config == f"\nhost = {LOCAL}\n", "replace applies to configMap files"
    assert "other.cfg" not in run_ok(pod, "main", ["find", "/opt", "/etc/airflow-secrets", "-name", "other.cfg"])


def test_secret_items_have_their_mode_and_content(pod):
    script = """
import json, os, stat, sys
print(json.dumps({p: [oct(stat.S_IMODE(os.stat(p).st_mode)), open(p).read()] for p in sys.argv[1:]}))
"""
    files = ["/opt/airflow/secrets/database-password", "/opt/airflow/secrets/jwt-secret",
             "/etc/airflow-secrets/jwt-secret", "/etc/airflow-secrets/fernet-key"]
    seen = json.loads(run_ok(pod, "main", python(script, *files)))
    assert seen == {files[0]: ["0o440", "s3cret/with:chars"], files[1]: ["0o400", "jwt-value"],
                    files[2]: ["0o644", "jwt-value"], files[3]: ["0o644", "fernet-value"]}
    assert sorted(run_ok(pod, "main", ["ls", "/opt/airflow/secrets"]).split()) == ["database-password", "jwt-secret"]


def test_read_only_mounts_and_secret_volumes_refuse_writes(pod):
    result = json.loads(run_ok(pod, "read-only"))
    assert result == {"/opt/airflow/work/x": "EROFS", "/opt/airflow/secrets/x": "EROFS", "/etc/airflow-secrets/x": "EROFS"}


def test_the_container_runs_as_its_security_context_user(pod):
    assert run_ok(pod, "main", ["id"]).split()[:2] == ["uid=50000(airflow)", "gid=0(root)"]
    assert run_ok(pod, "main", python("import getpass, os; print(getpass.getuser(), os.environ['HOME'], os.getcwd())")).split() == \
        ["airflow", "/home/airflow", "/opt/airflow"]
    assert run_ok(pod, "other-user").split()[:2] == ["uid=1234", "gid=2345"]
    with pytest.raises(PodSpecError, match="runAsNonRoot"):
        pod.argv("root")


def test_args_go_through_the_image_entrypoint_and_command_does_not(pod, tmp_path):
    def command_of(**container) -> tuple[list[str], bool]:
        probe = CompiledPod(deployment([{"name": "c", **container}]), airflow=STAND_IN, workdir=tmp_path / "probe")
        return probe.command("c")

    assert command_of(args=["api-server"]) == (["airflow", "api-server"], True)
    assert command_of(args=["airflow", "db", "migrate"]) == (["airflow", "db", "migrate"], True)
    assert command_of(args=["bash", "-c", "true"]) == (["/bin/bash", "-c", "true"], True)
    assert command_of(args=["python", "-V"]) == (["python", "-V"], True)
    assert command_of(args=["/bin/sh", "-c", "true"]) == (["airflow", "/bin/sh", "-c", "true"], True), \
        "the image's entrypoint hands anything but bash and python to airflow"
    assert command_of(command=["python"], args=["-V"]) == (["python", "-V"], False)

    # python is the image's (here the stand-in virtualenv's), and the entrypoint's umask 0002 applies.
    entry = CompiledPod(deployment([{"name": "c", "args": ["python", "-c", "import os, sys; print(sys.executable, oct(os.umask(0)))"]}]),
                        airflow=STAND_IN, workdir=tmp_path / "entry")
    assert run_ok(entry, "c").split() == [str(STAND_IN.python), "0o2"]
    assert run_ok(entry, "c", ["sh", "-c", "umask"]).strip() == "0022", "a command bypasses the entrypoint"


def test_env_is_the_containers_with_references_resolved(tmp_path):
    container = {"name": "c", "command": python("import json, os, sys; print(json.dumps([sys.argv[1:], dict(os.environ)]))",
                                                "$(GREETING)", "$$(DB)"), "env": [
        {"name": "DB", "value": f"postgresql://{SERVICE}/airflow"},
        {"name": "GREETING", "value": "hello $(DB) $$(DB) $(UNDEFINED)"},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "airflow-metadata-db", "key": "password"}}},
        {"name": "CFG", "valueFrom": {"configMapKeyRef": {"name": "airflow-config", "key": "airflow.cfg"}}},
        {"name": "MISSING", "valueFrom": {"secretKeyRef": {"name": "nothing", "key": "x", "optional": True}}},
    ]}
    pod = CompiledPod(deployment([container]), airflow=STAND_IN, workdir=tmp_path, secrets=SECRETS,
                      config_maps=CONFIG_MAPS, replace={SERVICE: LOCAL})
    args, env = json.loads(run_ok(pod, "c"))
    assert args == [f"hello postgresql://{LOCAL}/airflow $(DB) $(UNDEFINED)", "$(DB)"], "Kubernetes expands $(VAR) in args too"
    assert env["GREETING"] == args[0]
    assert env["DB"] == f"postgresql://{LOCAL}/airflow" and env["PASSWORD"] == "s3cret/with:chars"
    assert "MISSING" not in env and env["PATH"] == f"{STAND_IN.path}/bin:/usr/bin:/bin" and env["HOME"] == "/home/airflow"
    assert not {"PYTEST_CURRENT_TEST", "VIRTUAL_ENV"} & set(env), "nothing of the test process leaks in"

    # fieldRef and resourceFieldRef are provided (see the test of field refs); a source Kubernetes
    # does not know either is refused by name.
    pod_ref = CompiledPod(deployment([{"name": "c", "command": ["true"], "env": [{"name": "POD", "valueFrom": {"fileKeyRef": {"path": "x"}}}]}]),
                          airflow=STAND_IN, workdir=tmp_path / "field")
    with pytest.raises(PodSpecError, match="fileKeyRef, which CompiledPod does not provide"):
        pod_ref.argv("c")
    missing = CompiledPod(deployment([{"name": "c", "command": ["true"], "env": [
        {"name": "X", "valueFrom": {"secretKeyRef": {"name": "airflow-secrets", "key": "nope"}}}]}]),
        airflow=STAND_IN, workdir=tmp_path / "missing", secrets=SECRETS)
    with pytest.raises(PodSpecError, match="has no key 'nope'"):
        missing.argv("c")


def test_a_started_container_stops_with_everything_it_forked(pod, tmp_path):
    # A child of the container's process that moves to a session of its own, as Airflow's task runners do.
    script = "import os, subprocess, time; subprocess.Popen(['setsid', 'sleep', '600']); print('up', flush=True); time.sleep(600)"
    log = tmp_path / "main.log"
    process = pod.start("main", log, command=python(script))
    try:
        deadline = time.monotonic() + 30
        while "up" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "up" in log.read_text(), log.read_text()
        assert any(command_line(p) == "sleep 600" for p in descendants())
    finally:
        stop_groups([process], timeout=10)
    assert not [p for p in descendants() if command_line(p) == "sleep 600"]


def test_a_run_that_times_out_is_stopped(pod):
    with pytest.raises(TimeoutError, match="still running after 2 s"):
        pod.run("main", timeout=2, command=["sleep", "600"])


def test_a_missing_working_directory_is_made_and_unsearchable_host_directories_are_left_out(tmp_path):
    # Redis's image has WORKDIR /data; Debian's /etc/redis (2770 redis:redis) cannot be searched by the
    # container's user, so a mount point made in it (the redis pod's /etc/redis/auth) gets an empty tmpfs.
    hidden = Path("/etc/airflow-gitops-test-hidden")
    hidden.mkdir(mode=0o770, exist_ok=True)
    os.chown(hidden, 65534, 65534)
    (hidden / "host-only").write_text("not for the container")
    try:
        pod = CompiledPod(deployment([{"name": "c", "command": ["sh", "-c", "pwd; ls -A /etc/airflow-gitops-test-hidden"],
                                       "workingDir": "/data", "volumeMounts": [{"name": "tmp", "mountPath": f"{hidden}/auth"}]}],
                                     volumes=[{"name": "tmp", "emptyDir": {}}]), airflow=STAND_IN, workdir=tmp_path)
        assert run_ok(pod, "c").split() == ["/data", "auth"]
    finally:
        shutil.rmtree(hidden)


def test_env_field_refs_are_the_pods_and_an_unknown_one_fails_clearly(tmp_path):
    env = [{"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
           {"name": "MEMORY_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}]
    spec = {"name": "c", "command": ["true"], "env": env, "resources": {"limits": {"memory": "512Mi"}}}
    pod = CompiledPod(deployment([spec]), airflow=STAND_IN, workdir=tmp_path, hostname="demo-0", fields={"status.podIP": "10.1.2.3"})
    assert {k: pod.env("c")[k] for k in ("ME", "IP", "MEMORY_MI")} == {"ME": "demo-0", "IP": "10.1.2.3", "MEMORY_MI": "512"}
    unknown = {**spec, "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}]}
    with pytest.raises(PodSpecError, match=r"fieldRef metadata.labels\['app'\], which CompiledPod does not provide"):
        CompiledPod(deployment([unknown]), airflow=STAND_IN, workdir=tmp_path).env("c")


def test_volumes_it_cannot_provide_fail_clearly(tmp_path):
    pod = CompiledPod(deployment([{"name": "c", "command": ["true"], "volumeMounts": [{"name": "host", "mountPath": "/data"}]}],
                                 volumes=[{"name": "host", "hostPath": {"path": "/var/data"}}]), airflow=STAND_IN, workdir=tmp_path)
    with pytest.raises(PodSpecError, match="hostPath, which CompiledPod does not provide"):
        pod.argv("c")
    with pytest.raises(PodSpecError, match="has no container 'nope'"):
        pod.argv("nope")


# --- the identity providers ----------------------------------------------------------------------

LDAP_USERS = [LdapUser("alice", "alice-password", given_name="Alice", surname="Admin"), LdapUser("bob", "bob-password")]
LDAP_GROUPS = {"airflow-admins": ["alice"], "airflow-viewers": ["alice", "bob"]}


def ldif_values(ldif: str, attribute: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in ldif.splitlines() if line.startswith(f"{attribute}: ")]


def test_an_ldap_user_binds_over_starttls_verifying_the_ca():
    with openldap(LDAP_USERS, LDAP_GROUPS) as ldap:
        alice = ldap.user_dns["alice"]
        assert ldap.whoami(alice, "alice-password").stdout.strip() == f"dn:{alice}"
        refused = ldap.whoami(alice, "wrong")
        assert refused.returncode == 49 and "Invalid credentials" in refused.stderr

        # The service account finds users and their groups (the memberof overlay).
        entry = ldap.search(ldap.people_dn, "(uid=alice)", "memberOf", "cn", "sn", "givenName", "mail", "userPassword")
        assert entry.returncode == 0, entry.stderr
        assert sorted(ldif_values(entry.stdout, "memberOf")) == sorted(ldap.group_dns.values())
        assert [ldif_values(entry.stdout, a) for a in ("cn", "sn", "givenName", "mail")] == \
            [["Alice Admin"], ["Admin"], ["Alice"], ["alice@example.org"]]
        assert ldif_values(entry.stdout, "userPassword") == [], "passwords serve binds only"
        bob = ldap.search(ldap.people_dn, "(uid=bob)", "memberOf").stdout
        assert ldif_values(bob, "memberOf") == [ldap.group_dns["airflow-viewers"]]

        # Read-only: the service account cannot write.
        change = f"dn: {alice}\nchangetype: modify\nreplace: mail\nmail: mallory@example.org\n"
        modify = subprocess.run(["ldapmodify", "-x", "-ZZ", "-H", ldap.url, "-D", ldap.bind_dn, "-w", ldap.bind_password],
                                input=change, env=ldap.client_env(), capture_output=True, text=True)
        assert modify.returncode == 50, modify.stderr  # insufficient access

        # TLS is required, and verified: no bind in clear text, no server the CA did not sign.
        plain = subprocess.run(["ldapwhoami", "-x", "-H", ldap.url, "-D", alice, "-w", "alice-password"],
                               env=ldap.client_env(), capture_output=True, text=True)
        assert plain.returncode == 13 and "Confidentiality required" in plain.stderr
        untrusted = subprocess.run(["ldapwhoami", "-x", "-ZZ", "-H", ldap.url, "-D", alice, "-w", "alice-password"],
                                   env={"LDAPTLS_CACERT": "/etc/ssl/certs/ca-certificates.crt", "LDAPTLS_REQCERT": "demand", "PATH": "/usr/bin:/bin"},
                                   capture_output=True, text=True)
        assert untrusted.returncode != 0 and "start_tls" in untrusted.stderr
        over_ldaps = subprocess.run(["ldapwhoami", "-x", "-H", ldap.ldaps_url, "-D", alice, "-w", "alice-password"],
                                    env=ldap.client_env(), capture_output=True, text=True)
        assert over_ldaps.stdout.strip() == f"dn:{alice}", over_ldaps.stderr
        anonymous = subprocess.run(["ldapsearch", "-x", "-ZZ", "-LLL", "-H", ldap.url, "-b", ldap.people_dn, "(uid=*)"],
                                   env=ldap.client_env(), capture_output=True, text=True)
        assert "uid=alice" not in anonymous.stdout, "anonymous clients see nothing"


def test_a_container_reaches_the_ldap_server_with_the_ca_from_a_secret(tmp_path):
    with openldap(LDAP_USERS, LDAP_GROUPS) as ldap:
        container = {"name": "c", "command": ["ldapwhoami", "-x", "-ZZ", "-H", ldap.url, "-D", ldap.bind_dn, "-w", ldap.bind_password],
                     "env": [{"name": "LDAPTLS_CACERT", "value": "/opt/airflow/ldap-ca/ca.crt"}, {"name": "LDAPTLS_REQCERT", "value": "demand"}],
                     "volumeMounts": [{"name": "ldap-ca", "mountPath": "/opt/airflow/ldap-ca", "readOnly": True}]}
        pod = CompiledPod(deployment([container], volumes=[{"name": "ldap-ca", "secret": {"secretName": "ldap-ca"}}]),
                          airflow=STAND_IN, workdir=tmp_path, secrets={"ldap-ca": {"ca.crt": ldap.ca_file.read_text()}})
        assert run_ok(pod, "c").strip() == f"dn:{ldap.bind_dn}"


def jwt_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_the_oidc_provider_serves_its_discovery_document():
    with oidc_provider() as idp:
        document = idp.discovery()
        assert document["issuer"] == idp.issuer and idp.issuer.startswith("http://127.0.0.1:")
        assert document["authorization_endpoint"] == idp.authorization_endpoint
        assert document["token_endpoint"] == idp.token_endpoint
        assert "code" in document["response_types_supported"] and document["jwks_uri"].startswith(idp.issuer)


def test_an_authorization_code_flow_yields_the_claims_set_for_the_user():
    redirect_uri = "http://127.0.0.1:1/auth/oauth-authorized/example"
    with oidc_provider({"alice": {"email": "alice@example.org", "groups": ["airflow-admins"]}}) as idp:
        idp.set_claims("bob", {"email": "bob@example.org", "name": "Bob Builder", "groups": ["airflow-viewers"]})
        for sub, groups in (("alice", ["airflow-admins"]), ("bob", ["airflow-viewers"])):
            query = urllib.parse.urlencode({"client_id": "airflow", "redirect_uri": redirect_uri, "response_type": "code",
                                            "scope": "openid email profile", "state": f"state-{sub}", "nonce": f"nonce-{sub}"})
            location = idp.login(f"{idp.authorization_endpoint}?{query}", sub)
            assert location.startswith(redirect_uri + "?")
            params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
            assert params["state"] == [f"state-{sub}"]

            body = urllib.parse.urlencode({"grant_type": "authorization_code", "code": params["code"][0],
                                           "redirect_uri": redirect_uri, "client_id": "airflow",
                                           "client_secret": "airflow-secret"}).encode()
            with urllib.request.urlopen(urllib.request.Request(idp.token_endpoint, data=body), timeout=10) as response:
                tokens = json.loads(response.read())
            claims = jwt_claims(tokens["id_token"])
            assert (claims["iss"], claims["sub"], claims["aud"], claims["nonce"]) == (idp.issuer, sub, ["airflow"], f"nonce-{sub}")
            assert claims["groups"] == groups and claims["email"] == f"{sub}@example.org"
        assert claims["name"] == "Bob Builder"


# --- with Apache Airflow --------------------------------------------------------------------------

@pytest.mark.slow
def test_airflow_runs_in_a_compiled_pod(tmp_path):
    """The dev migration Job's container, as compiled: Airflow reads the airflow.cfg of its
    configMap (subPath) and composes the database URL from the projected secret with the _CMD
    option (its `python` the image's), under a read-only root as uid 50000."""
    from airflow_gitops.airflow_env import ensure_airflow
    from airflow_gitops.up import manifests

    files = manifest_files(REPO / "compiled", "dev")
    job = yaml.safe_load(files[next(n for n in files if n.startswith("job-airflow-db-migrate-"))].read_text())
    config = yaml.safe_load(files["configmap-airflow-config.yaml"].read_text())
    secrets = {"airflow-metadata-db": manifests.load(REPO, "dev").secrets["airflow-metadata-db"]}
    pod = CompiledPod(job, airflow=ensure_airflow(REPO, "3.3.2"), workdir=tmp_path, secrets=secrets,
                      config_maps={"airflow-config": config["data"]}, replace={SERVICE: LOCAL})
    container = job["spec"]["template"]["spec"]["containers"][0]["name"]
    assert pod.command(container) == (["airflow", "db", "migrate"], True)

    url = run_ok(pod, container, ["airflow", "config", "get-value", "database", "sql_alchemy_conn"]).strip()
    password = urllib.parse.quote(secrets["airflow-metadata-db"]["password"], safe="")
    assert url == f"postgresql+psycopg2://airflow:{password}@{LOCAL}/airflow"

    # Its args through the image's entrypoint (`db migrate` needs a database: `version` does not).
    job["spec"]["template"]["spec"]["containers"][0]["args"] = ["version"]
    versioned = CompiledPod(job, airflow=pod.airflow, workdir=tmp_path, secrets=secrets,
                            config_maps={"airflow-config": config["data"]}, replace={SERVICE: LOCAL})
    assert run_ok(versioned, container).strip() == "3.3.2"
