"""Sign-in works for real with what the compile generates: each auth method's target is compiled,
then its migration Job, users Job and api-server run as their manifests say, under a read-only
root with only their declared volumes (airflow_gitops.up.sandbox), against PostgreSQL 15 and real
identity providers (tests/identity_providers.py: OpenLDAP's slapd, oidc-provider-mock).

Only what a cluster would provide is substituted: the database's address and the api-server's port.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
import yaml

from airflow_api import http
from airflow_gitops.airflow_env import AirflowEnvironment, ensure_airflow
from airflow_gitops.up import manifests
from airflow_gitops.up.kubelet import IMAGE_EXTRAS
from airflow_gitops.up.sandbox import CompiledPod
from conftest import REPO, compile_in, copy_repo, free_port, kapitan, stop_groups
from identity_providers import LdapDirectory, LdapUser, OidcProvider, oidc_provider, openldap
from local_postgres import create_database, psql, throwaway_postgres

pytestmark = pytest.mark.slow

DEV = ["common", "airflow.defaults", "airflow.executor.local", "airflow.dags.git-sync", "airflow.database.bundled",
       "dag-repository", "gitops-repository", "profiles.dev"]
# Several sign-ins a minute from one address: FAB's rate limit (5 per 40 s) stays on in production.
NO_RATE_LIMIT = {"fab": {"auth_rate_limited": "False"}}

LDAP_USERS = [LdapUser("alice", "alice-ldap-pw"), LdapUser("bob", "bob-ldap-pw"), LdapUser("carol", "carol-ldap-pw")]
LDAP_GROUPS = {"airflow-admins": ["alice"], "airflow-operators": ["bob"]}  # carol: in no group Airflow maps
VIEWER_PASSWORD = "viewer-password-7c1d"
# What the OAuth client's secret is; the test provider accepts any.
OIDC_CLIENT_SECRET = "oidc-client-secret-3f9a"
LDAP_CA_CONFIG_MAP = "corp-ldap-ca"
# Where people open the OIDC target's UI: a TLS-terminating ingress in front of the api-server
# (played by the Browser below), so that the OAuth callback is built from it.
PUBLIC_URL = "https://airflow.signin.test"


@dataclass
class Identity:
    ldap: LdapDirectory
    oidc: OidcProvider


@pytest.fixture(scope="module")
def identity() -> Iterator[Identity]:
    with openldap(LDAP_USERS, LDAP_GROUPS) as ldap, oidc_provider({
        "alice": {"email": "alice@example.org", "preferred_username": "alice", "groups": ["airflow-admins"]},
        "dave": {"email": "dave@example.org", "preferred_username": "dave", "groups": ["data-engineers"]},
        "erin": {"email": "erin@example.org", "preferred_username": "erin", "groups": ["marketing"]},
    }) as oidc:
        yield Identity(ldap, oidc)


def targets(identity: Identity) -> dict[str, tuple[list[str], dict]]:
    """One target per auth method, as a user writes it (the providers' addresses are this run's)."""
    ldap = identity.ldap
    return {
        "signin-db": (DEV + ["airflow.auth.fab-database"], {"config": NO_RATE_LIMIT, "auth": {"fab": {
            "users": [{"username": "viewer", "role": "Viewer", "email": "viewer@example.org",
                       "password": {"ref": "auth/viewer-password"}}]}}}),
        "signin-oidc": (DEV + ["airflow.auth.fab-oauth"], {"config": NO_RATE_LIMIT, "api_server": {"base_url": PUBLIC_URL}, "auth": {"fab": {
            "oauth": {"providers": [{"name": "corp", "type": "oidc", "client_id": "airflow-signin-oidc",
                                     "client_secret": {"ref": "auth/corp-client-secret"},
                                     "discovery_url": identity.oidc.discovery_url}]},
            "roles_mapping": {"airflow-admins": ["Admin"], "data-engineers": ["User"]},
            "default_role": ""}}}),
        "signin-ldap": (DEV + ["airflow.auth.fab-ldap"], {"config": NO_RATE_LIMIT, "auth": {"fab": {
            "ldap": {"url": ldap.url, "start_tls": True, "ca": {"config_map": LDAP_CA_CONFIG_MAP, "key": "ca.crt"},
                     "bind_dn": ldap.bind_dn, "bind_password": {"ref": "auth/ldap-bind-password"},
                     "search_base": ldap.people_dn},
            "roles_mapping": {ldap.group_dns["airflow-admins"]: ["Admin"], ldap.group_dns["airflow-operators"]: ["Op"]},
            # Here someone in no mapped group gets a role (the OIDC target refuses them).
            "default_role": "Viewer"}}}),
        "signin-keycloak": (DEV + ["airflow.auth.keycloak"], {"auth": {"keycloak": {
            "server_url": "https://sso.example.org", "realm": "acme", "client_id": "airflow",
            "client_secret": {"ref": "auth/keycloak-client-secret"}}}}),
    }


@pytest.fixture(scope="module")
def signin_repo(identity: Identity, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_repo(tmp_path_factory.mktemp("signin"))
    for name, (classes, airflow) in targets(identity).items():
        body = {"classes": classes, "parameters": {"airflow": airflow}}
        (root / "inventory" / "targets" / f"{name}.yml").write_text(yaml.safe_dump(body, sort_keys=False))
    # The secrets a user writes once as Kapitan refs (the others are generated by the compile).
    for target, ref, value in [("signin-db", "auth/viewer-password", VIEWER_PASSWORD),
                               ("signin-oidc", "auth/corp-client-secret", OIDC_CLIENT_SECRET),
                               ("signin-ldap", "auth/ldap-bind-password", identity.ldap.bind_password),
                               ("signin-keycloak", "auth/keycloak-client-secret", "keycloak-client-secret-5e2b")]:
        source = root / f"{target}-{ref.replace('/', '-')}.txt"
        source.write_text(value + "\n")  # as `echo` writes it: the newline is not part of the value
        written = kapitan(root, "refs", "--write", f"base64:targets/{target}/{ref}", "-f", str(source))
        assert written.returncode == 0, written.stderr
    for _ in range(2):  # the first compile writes the generated refs, the second reads their digests
        result = compile_in(root)
        assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.fixture(scope="module")
def airflow_image() -> AirflowEnvironment:
    return ensure_airflow(REPO, "3.3.2", IMAGE_EXTRAS)


# --- running an environment's sign-in path ------------------------------------------------------


@dataclass
class Running:
    base: str
    postgres_port: int
    secrets: dict[str, dict[str, str]]
    logs: Path
    objects: dict[str, dict] = field(default_factory=dict)

    def roles_of(self, username: str) -> list[str]:
        """The user's roles, as FAB stored them in the metadata database."""
        query = ("SELECT r.name FROM ab_user u JOIN ab_user_role ur ON ur.user_id = u.id JOIN ab_role r ON r.id = ur.role_id "
                 f"WHERE u.username = '{username}' ORDER BY r.name")
        result = subprocess.run([*psql(self.postgres_port), "-d", "airflow", "-c", query], capture_output=True, text=True, check=True)
        return result.stdout.split()

    def user_exists(self, username: str) -> bool:
        query = f"SELECT count(*) FROM ab_user WHERE username = '{username}'"
        result = subprocess.run([*psql(self.postgres_port), "-d", "airflow", "-c", query], capture_output=True, text=True, check=True)
        return result.stdout.strip() == "1"


def checked(result: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-4000:]}"
    # Nothing may write outside its declared volumes (the root is read-only under bwrap).
    assert "Read-only file system" not in result.stdout + result.stderr, f"{what} wrote outside its volumes"
    return result


@contextmanager
def environment_running(root: Path, target: str, work: Path, airflow: AirflowEnvironment,
                        extra_config_maps: dict[str, dict[str, str]] | None = None,
                        components: tuple[str, ...] = ()) -> Iterator[Running]:
    """PostgreSQL, then the compiled migration Job, users Job (when there is one), api-server and
    `components` (scheduler, dag-processor, triggerer) of `target`, each container as its manifest
    says, with the DAGs git-sync would have put in place; all stopped when the block ends."""
    environment = manifests.load(root, target)
    objects, secrets = environment.objects, environment.secrets
    config_maps = {**environment.config_maps, **(extra_config_maps or {})}
    logs = work / "logs"
    logs.mkdir(parents=True)

    def pod(prefix: str) -> CompiledPod:
        name = next(n for n in objects if n.startswith(prefix))
        return CompiledPod(objects[name], airflow=airflow, workdir=work / name.removesuffix(".yaml"),
                           secrets=secrets, config_maps=config_maps, replace=replace)

    with throwaway_postgres("-A trust -U postgres") as (_, postgres_port):
        database = objects["statefulset-airflow-postgres.yaml"]["spec"]["template"]["spec"]["containers"][0]
        pg_env = {e["name"]: e.get("value") for e in database["env"]}
        create_database(postgres_port, pg_env["POSTGRES_USER"], secrets["airflow-metadata-db"]["password"], pg_env["POSTGRES_DB"])
        api_port = free_port()
        replace = {f"airflow-postgres.airflow-{target}.svc.cluster.local:5432": f"127.0.0.1:{postgres_port}",
                   f"airflow-api-server.airflow-{target}.svc.cluster.local:8080": f"127.0.0.1:{api_port}",
                   "\nport = 8080\n": f"\nport = {api_port}\n",
                   "scheduler_health_check_server_port = 8974": f"scheduler_health_check_server_port = {free_port()}"}

        checked(pod("job-airflow-db-migrate-").run("db-migrate", timeout=300), "the migration Job")
        if any(n.startswith("job-airflow-auth-users-") for n in objects):
            users = pod("job-airflow-auth-users-")
            checked(users.run("wait-for-migrations", timeout=120), "the users Job's wait-for-migrations")
            checked(users.run("sync-users", timeout=180), "the users Job")
        api = pod("deployment-airflow-api-server.yaml")
        checked(api.run("wait-for-migrations", timeout=120), "the api-server's wait-for-migrations")
        servers = {"api-server": api.start("api-server", logs / "api-server.log")}
        server = servers["api-server"]
        try:
            for name in components:
                component = pod(f"deployment-airflow-{name}.yaml")
                # What git-sync would have put in place (its containers clone from the DAG repository).
                shutil.copytree(REPO / "dags", component.volume_dir("dags") / "repo" / "dags")
                checked(component.run("wait-for-migrations", timeout=120), f"the {name}'s wait-for-migrations")
                servers[name] = component.start(name, logs / f"{name}.log")
            base = f"http://127.0.0.1:{api_port}"
            deadline = time.monotonic() + 120
            while True:
                log = (logs / "api-server.log").read_text()
                assert server.poll() is None, f"the api-server exited ({server.returncode}):\n{log[-4000:]}"
                assert time.monotonic() < deadline, f"the api-server did not answer in 120 s:\n{log[-4000:]}"
                try:
                    with urllib.request.urlopen(f"{base}/api/v2/version", timeout=5):
                        break
                except (urllib.error.URLError, ConnectionError, OSError):
                    time.sleep(1)
            yield Running(base, postgres_port, secrets, logs, objects)
            for name, process in servers.items():
                log = (logs / f"{name}.log").read_text()
                assert process.poll() is None, f"the {name} exited ({process.returncode}):\n{log[-4000:]}"
                assert "Read-only file system" not in log, f"the {name} wrote outside its volumes:\n{log[-4000:]}"
        finally:
            stop_groups(servers.values(), timeout=60)


# --- a browser, for forms and redirects ---------------------------------------------------------


class Browser:
    """Follows redirects and keeps cookies per origin (scheme, host and port), as a browser would
    for the api-server and the identity provider, which share 127.0.0.1 here."""

    def __init__(self, ingress: dict[str, str] | None = None) -> None:
        self.cookies: dict[str, dict[str, str]] = {}
        # public https origin -> local http address: requests go there with the X-Forwarded-*
        # headers a TLS-terminating ingress adds.
        self.ingress = ingress or {}
        opener = urllib.request.build_opener(_NoRedirect)
        self._open = opener.open

    @staticmethod
    def origin(url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}"

    def request(self, method: str, url: str, form: dict[str, str] | None = None, follow: bool = True) -> tuple[int, str, str]:
        """(status, final URL, body) after following redirects (a 302 after a POST becomes a GET)."""
        for _ in range(15):
            data = None if form is None else urllib.parse.urlencode(form).encode()
            public = self.origin(url)
            local = self.ingress.get(public)
            request = urllib.request.Request(url if local is None else local + url[len(public):], data=data, method=method)
            if local is not None:
                request.add_header("X-Forwarded-Proto", "https")
                request.add_header("X-Forwarded-Host", urllib.parse.urlsplit(public).netloc)
                request.add_header("X-Forwarded-For", "127.0.0.1")
            jar = self.cookies.setdefault(public, {})
            if jar:
                request.add_header("Cookie", "; ".join(f"{k}={v}" for k, v in jar.items()))
            if data is not None:
                request.add_header("Content-Type", "application/x-www-form-urlencoded")
            try:
                response = self._open(request, timeout=30)
                status, headers, body = response.status, response.headers, response.read().decode(errors="replace")
            except urllib.error.HTTPError as error:
                status, headers, body = error.code, error.headers, error.read().decode(errors="replace")
            for header in headers.get_all("Set-Cookie") or []:
                cookie = SimpleCookie()
                cookie.load(header)
                for key, morsel in cookie.items():
                    if morsel["expires"] and "1970" in morsel["expires"] or morsel["max-age"] == "0":
                        jar.pop(key, None)
                    else:
                        jar[key] = morsel.value
            if follow and status in (301, 302, 303, 307) and headers.get("Location"):
                url = urllib.parse.urljoin(url, headers["Location"])
                method, form = "GET", None
                continue
            return status, url, body
        raise AssertionError(f"too many redirects, last {url}")

    def cookie(self, url: str, name: str) -> str | None:
        return self.cookies.get(self.origin(url), {}).get(name)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # the Browser follows them itself, with its cookies
        return None


def api(method: str, url: str, token: str, body: dict | None = None) -> int:
    """The status of a REST API call with a bearer token."""
    return http(method, url, body, token)[0]


def token(base: str, username: str, password: str) -> tuple[int, str | None]:
    """POST /auth/token: its status and the access token, if any."""
    status, body = http("POST", f"{base}/auth/token", {"username": username, "password": password})
    return status, body.get("access_token")


def form_login(base: str, username: str, password: str) -> Browser:
    """Signs in through FAB's login page (its CSRF token included), as a person does."""
    browser = Browser()
    status, _, page = browser.request("GET", f"{base}/auth/login/")
    assert status == 200, page[-2000:]
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(r'value="([^"]+)"[^>]*name="csrf_token"', page)
    assert csrf, "FAB's login form has no CSRF token"
    browser.request("POST", f"{base}/auth/login/", {"username": username, "password": password, "csrf_token": html.unescape(csrf.group(1))})
    return browser


# --- the tests ------------------------------------------------------------------------------------


def test_database_users_sign_in_and_get_their_roles(signin_repo, airflow_image, tmp_path):
    with environment_running(signin_repo, "signin-db", tmp_path, airflow_image,
                             components=("scheduler", "dag-processor", "triggerer")) as env:
        admin_password = env.secrets["airflow-admin-passwords"]["admin-password"]
        # The UI's login form: the generated admin password signs in (FAB sets the UI's token cookie).
        browser = form_login(env.base, "admin", admin_password)
        ui_token = browser.cookie(env.base, "_token")
        assert ui_token, "the admin's form login set no _token cookie"
        assert api("GET", f"{env.base}/api/v2/dags", ui_token) == 200
        assert form_login(env.base, "admin", "not-the-password").cookie(env.base, "_token") is None

        # The REST API's tokens.
        assert token(env.base, "admin", "not-the-password")[0] == 401
        status, admin = token(env.base, "admin", admin_password)
        assert status == 201 and admin
        status, viewer = token(env.base, "viewer", VIEWER_PASSWORD)
        assert status == 201 and viewer, "the listed Viewer cannot sign in with its ref's password"
        assert env.roles_of("viewer") == ["Viewer"] and env.roles_of("admin") == ["Admin"]

        # A Viewer reads but may not start a DAG run; the admin may, and it runs to success with
        # every Airflow process of the FAB environment up.
        dag = f"{env.base}/api/v2/dags/example_etl"
        deadline = time.monotonic() + 240
        while api("GET", dag, viewer) != 200:
            assert time.monotonic() < deadline, "example_etl was not parsed in 240 s:\n" + (env.logs / "dag-processor.log").read_text()[-3000:]
            time.sleep(2)
        assert api("PATCH", dag, viewer, {"is_paused": False}) == 403
        assert api("PATCH", dag, admin, {"is_paused": False}) == 200
        assert api("POST", f"{dag}/dagRuns", viewer, {"logical_date": None}) == 403
        status, run = http("POST", f"{dag}/dagRuns", {"logical_date": None}, admin)
        assert status == 200, run
        deadline = time.monotonic() + 300
        while (state := http("GET", f"{dag}/dagRuns/{run['dag_run_id']}", token=admin)[1].get("state")) not in ("success", "failed"):
            assert time.monotonic() < deadline, "the DAG run did not finish in 300 s:\n" + (env.logs / "scheduler.log").read_text()[-3000:]
            time.sleep(2)
        assert state == "success", (env.logs / "scheduler.log").read_text()[-3000:]


def test_oidc_sign_in_maps_groups_to_roles(signin_repo, airflow_image, identity, tmp_path):
    idp = identity.oidc
    with environment_running(signin_repo, "signin-oidc", tmp_path, airflow_image) as env:
        def sign_in(sub: str) -> str | None:
            browser = Browser(ingress={PUBLIC_URL: env.base})
            # The provider link of FAB's login page, then the provider's form, then the callback.
            status, url, page = browser.request("GET", f"{PUBLIC_URL}/auth/login/corp")
            assert status == 200 and url.startswith(idp.authorization_endpoint), f"not at the provider's form: {status} {url}"
            # The callback is built from the address people use (api_server.base_url, through the ingress).
            assert f"redirect_uri={urllib.parse.quote(PUBLIC_URL + '/auth/oauth-authorized/corp', safe='')}" in url
            status, url, page = browser.request("POST", url, {"sub": sub})
            assert url.startswith(PUBLIC_URL), f"the provider did not send {sub} back: {status} {url}"
            return browser.cookie(PUBLIC_URL, "_token")

        alice = sign_in("alice")
        assert alice, "alice (airflow-admins) was not signed in"
        assert env.roles_of("alice") == ["Admin"]
        assert api("GET", f"{env.base}/api/v2/dags", alice) == 200
        assert sign_in("dave") and env.roles_of("dave") == ["User"]

        # Someone in no mapped group is refused (default_role ""), and gets no role.
        assert sign_in("erin") is None
        assert env.roles_of("erin") == []

        # Roles follow the group claim at the next sign-in.
        idp.set_claims("dave", {"email": "dave@example.org", "preferred_username": "dave", "groups": ["airflow-admins"]})
        assert sign_in("dave") and env.roles_of("dave") == ["Admin"]
        idp.set_claims("dave", {"email": "dave@example.org", "preferred_username": "dave", "groups": []})
        assert sign_in("dave") is None

        log = (env.logs / "api-server.log").read_text()
        assert OIDC_CLIENT_SECRET not in log


def test_ldap_sign_in_over_starttls_maps_groups_to_roles(signin_repo, airflow_image, identity, tmp_path):
    ldap = identity.ldap
    ca = {LDAP_CA_CONFIG_MAP: {"ca.crt": ldap.ca_file.read_text()}}
    with environment_running(signin_repo, "signin-ldap", tmp_path, airflow_image, extra_config_maps=ca) as env:
        status, alice = token(env.base, "alice", "alice-ldap-pw")
        assert status == 201 and alice, f"alice could not sign in over LDAP:\n{(env.logs / 'api-server.log').read_text()[-3000:]}"
        assert env.roles_of("alice") == ["Admin"]
        assert api("GET", f"{env.base}/api/v2/dags", alice) == 200
        # The UI form too.
        assert form_login(env.base, "bob", "bob-ldap-pw").cookie(env.base, "_token")
        assert env.roles_of("bob") == ["Op"]
        assert token(env.base, "alice", "wrong-password")[0] == 401
        # carol is in the directory but in no mapped group: the default role.
        status, carol = token(env.base, "carol", "carol-ldap-pw")
        assert status == 201 and env.roles_of("carol") == ["Viewer"]
        assert api("POST", f"{env.base}/api/v2/dags/example_etl/dagRuns", carol, {"logical_date": None}) == 403
        # The service account bound with the password of the mounted file, over TLS (ssf > 0: the
        # directory refuses binds in clear), and searched the directory for the users.
        binds = re.findall(rf'BIND dn="{re.escape(ldap.bind_dn)}" mech=SIMPLE bind_ssf=0 ssf=(\d+)', ldap.log.read_text())
        assert binds and all(int(ssf) > 0 for ssf in binds)


def test_keycloak_auth_manager_configuration_loads(signin_repo, airflow_image, tmp_path):
    """No Keycloak server runs here: the compiled configuration loads in the api-server (the
    manager's class imports and reads its settings, the client secret from its file) and passes
    `airflow config lint`."""
    environment = manifests.load(signin_repo, "signin-keycloak")
    pod = CompiledPod(environment.objects["deployment-airflow-api-server.yaml"], airflow=airflow_image, workdir=tmp_path / "api-server",
                      secrets=environment.secrets, config_maps=environment.config_maps)
    script = (
        "from airflow.configuration import conf\n"
        "from airflow.api_fastapi.app import create_auth_manager\n"
        "manager = create_auth_manager()\n"
        "print(type(manager).__module__ + '.' + type(manager).__name__)\n"
        "print(conf.get('keycloak_auth_manager', 'server_url'), conf.get('keycloak_auth_manager', 'realm'),"
        " conf.get('keycloak_auth_manager', 'client_id'))\n"
        "print(len(conf.get('keycloak_auth_manager', 'client_secret')))\n"
        "print(manager.get_url_login())\n"
    )
    result = checked(pod.run("api-server", timeout=180, command=["python", "-c", script]), "loading the Keycloak auth manager")
    lines = result.stdout.strip().splitlines()
    assert lines[-4] == "airflow.providers.keycloak.auth_manager.keycloak_auth_manager.KeycloakAuthManager"
    assert lines[-3] == "https://sso.example.org acme airflow"
    assert lines[-2] == str(len("keycloak-client-secret-5e2b")), "the client secret was not read from its file"
    lint = checked(pod.run("api-server", timeout=180, command=["airflow", "config", "lint"]), "airflow config lint")
    assert "No issues found" in lint.stdout + lint.stderr, lint.stdout + lint.stderr
