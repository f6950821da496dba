"""Sign-in settings (parameters.airflow.auth) compile into what each auth manager reads, and every
mistake is a compile error naming the target file, the key and what to set."""

from __future__ import annotations

import ast

import pytest
import yaml

from conftest import assert_compile_refuses, compile_in, load_manifests

STAGING = "inventory/targets/staging.yml"
CLASSES = ["common", "airflow.defaults", "airflow.executor.kubernetes", "airflow.dags.git-sync", "airflow.database.external",
           "secrets.external-secrets", "airflow.logs.pvc", "dag-repository", "gitops-repository", "profiles.staging"]
PRODUCTION = {"api_server": {"base_url": "https://airflow-staging.acme.internal"}, "logs": {"pvc": {"storage_class": "standard-rwx"}},
              "database": {"external": {"secret_name": "airflow-metadata-db"}}}
OIDC = {"name": "corp", "type": "oidc", "client_id": "airflow", "client_secret": {"ref": "auth/corp-client-secret"},
        "discovery_url": "https://sso.acme.internal/.well-known/openid-configuration"}
LDAP = {"url": "ldaps://ldap.acme.internal", "bind_dn": "cn=airflow,dc=acme,dc=internal",
        "bind_password": {"ref": "auth/ldap-bind-password"}, "search_base": "ou=people,dc=acme,dc=internal"}
KEYCLOAK = {"server_url": "https://sso.acme.internal", "realm": "acme", "client_secret": {"ref": "auth/keycloak-client-secret"}}


def write_staging(root, auth_class: str | None, airflow: dict) -> None:
    classes = CLASSES + ([auth_class] if auth_class else [])
    body = {"classes": classes, "parameters": {"airflow": {**PRODUCTION, **airflow}}}
    (root / STAGING).write_text(yaml.safe_dump(body, sort_keys=False))


# name -> (auth class, parameters.airflow, key, words the message must hold)
CASES = {
    "simple outside dev": ("airflow.auth.simple", {}, "parameters.airflow.auth.manager",
                           "is simple (SimpleAuthManager: one shared admin, no roles, for development only) in a staging environment: "
                           "choose how people sign in with one of the classes airflow.auth.fab-database"),
    "no sign-in class outside dev": (None, {}, "parameters.airflow.auth.manager", "in a staging environment"),
    "provider without client secret": ("airflow.auth.fab-oauth", {"auth": {"fab": {"oauth": {"providers": [
        {k: v for k, v in OIDC.items() if k != "client_secret"}]}}}},
        "parameters.airflow.auth.fab.oauth.providers.0", "'client_secret' is a required property"),
    "role FAB does not have": ("airflow.auth.fab-oauth", {"auth": {"fab": {"oauth": {"providers": [OIDC]},
                                                                         "roles_mapping": {"admins": ["Superuser"]}}}},
                               "parameters.airflow.auth.fab.roles_mapping.admins",
                               '"Superuser" is not a role of the FAB auth manager; roles: Admin, Op, User, Viewer, Public'),
    "http issuer outside dev": ("airflow.auth.fab-oauth", {"auth": {"fab": {"oauth": {"providers": [
        {**OIDC, "discovery_url": "http://sso.acme.internal/.well-known/openid-configuration"}]}}}},
        "parameters.airflow.auth.fab.oauth.providers[corp].discovery_url", "is plain http in a staging environment"),
    "oidc without discovery url": ("airflow.auth.fab-oauth", {"auth": {"fab": {"oauth": {"providers": [
        {k: v for k, v in OIDC.items() if k != "discovery_url"}]}}}},
        "parameters.airflow.auth.fab.oauth.providers[corp].discovery_url", "is missing: a provider of type oidc needs it"),
    "github under another name": ("airflow.auth.fab-oauth", {"auth": {"fab": {"oauth": {"providers": [
        {"name": "gh", "type": "github", "client_id": "x", "client_secret": {"ref": "auth/gh"}}]}}}},
        "parameters.airflow.auth.fab.oauth.providers[gh].name", "a github provider must be named github"),
    "oauth without providers": ("airflow.auth.fab-oauth", {}, "parameters.airflow.auth.fab.oauth.providers", "is empty with method oauth"),
    "unknown provider type": ("airflow.auth.fab-oauth", {"auth": {"fab": {"oauth": {"providers": [{**OIDC, "type": "saml"}]}}}},
                              "parameters.airflow.auth.fab.oauth.providers.0.type", "'saml' is not one of ['oidc', 'google', 'github', 'entra', 'okta', 'keycloak']"),
    "ldap without search base": ("airflow.auth.fab-ldap", {"auth": {"fab": {"ldap": {k: v for k, v in LDAP.items() if k != "search_base"}}}},
                                 "parameters.airflow.auth.fab.ldap.search_base", "is empty: set where users are searched"),
    "ldap in clear outside dev": ("airflow.auth.fab-ldap", {"auth": {"fab": {"ldap": {**LDAP, "url": "ldap://ldap.acme.internal"}}}},
                                  "parameters.airflow.auth.fab.ldap.start_tls", "passwords would cross the network in clear"),
    "ldap without bind password": ("airflow.auth.fab-ldap", {"auth": {"fab": {"ldap": {k: v for k, v in LDAP.items() if k != "bind_password"}}}},
                                   "parameters.airflow.auth.fab.ldap.bind_password", "is missing: the bind password comes from a secret"),
    "keycloak without realm": ("airflow.auth.keycloak", {"auth": {"keycloak": {k: v for k, v in KEYCLOAK.items() if k != "realm"}}},
                               "parameters.airflow.auth.keycloak.realm", "is empty: set the realm"),
    "users with oauth": ("airflow.auth.fab-oauth", {"auth": {"fab": {"oauth": {"providers": [OIDC]}, "users": [
        {"username": "ops", "role": "Op", "email": "ops@acme.internal", "password": {"ref": "auth/ops"}}]}}},
        "parameters.airflow.auth.fab.users", "users are created only with the FAB auth manager's method database"),
    "user with an unknown role": ("airflow.auth.fab-database", {"auth": {"fab": {"users": [
        {"username": "ops", "role": "Operator", "email": "ops@acme.internal", "password": {"ref": "auth/ops"}}]}}},
        "parameters.airflow.auth.fab.users[ops].role", '"Operator" is not a role'),
    "misspelt auth key": ("airflow.auth.fab-database", {"auth": {"fab": {"rols_mapping": {}}}},
                          "parameters.airflow.auth.fab", "'rols_mapping' was unexpected"),
    "auth manager set in config": ("airflow.auth.fab-database", {"config": {"core": {"auth_manager": "x.Y"}}},
                                   "parameters.airflow.config.core.auth_manager", "set parameters.airflow.auth.manager with a class airflow.auth.*"),
    "keycloak settings without keycloak": ("airflow.auth.fab-database", {"auth": {"keycloak": KEYCLOAK}},
                                           "parameters.airflow.auth.keycloak", "is set, but the auth manager is fab"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_sign_in_settings_fail_with_file_key_and_what_to_set(case, scratch_repo):
    auth_class, airflow, key, words = CASES[case]
    assert_compile_refuses(scratch_repo, lambda: write_staging(scratch_repo, auth_class, airflow), STAGING, key, words)


def test_a_missing_ref_names_the_command_that_writes_it(scratch_repo):
    dev = scratch_repo / "inventory" / "targets" / "dev.yml"
    body = yaml.safe_load(dev.read_text())
    body["classes"] = [c if c != "airflow.auth.simple" else "airflow.auth.fab-database" for c in body["classes"]]
    body["parameters"]["airflow"]["auth"] = {"fab": {"users": [
        {"username": "ops", "role": "Op", "email": "ops@acme.internal", "password": {"ref": "auth/ops-password"}}]}}
    dev.write_text(yaml.safe_dump(body, sort_keys=False))
    result = compile_in(scratch_repo, "-t", "dev")
    assert result.returncode != 0
    assert ("inventory/targets/dev.yml: parameters.airflow.auth.fab.users[ops].password: the Kapitan ref targets/dev/auth/ops-password "
            "does not exist yet: write it once with `kapitan refs --write base64:targets/dev/auth/ops-password -f FILE`") in result.stderr


def test_only_the_api_server_gets_the_sign_in_configuration(manifests):
    for env in ("staging", "prod"):
        objects = manifests(env)
        cfg = objects["configmap-airflow-config.yaml"]["data"]["airflow.cfg"]
        assert "auth_manager = airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager" in cfg
        assert "config_file = /opt/airflow/fab/webserver_config.py" in cfg
        assert "simple_auth_manager" not in cfg
        for name, obj in objects.items():
            if obj["kind"] not in ("Deployment", "StatefulSet", "Job", "CronJob"):
                continue
            spec = obj["spec"]["template"]["spec"] if "template" in obj["spec"] else obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
            volumes = {v["name"] for v in spec.get("volumes", [])}
            reads_fab = "fab-config" in volumes or "auth-secrets" in volumes
            assert reads_fab == (name == "deployment-airflow-api-server.yaml" or name.startswith("job-airflow-auth-users-")), name


def test_webserver_config_is_valid_python_and_reads_every_secret_from_a_file(manifests):
    prod = manifests("prod")
    config = prod["configmap-airflow-fab-config.yaml"]["data"]["webserver_config.py"]
    tree = ast.parse(config)
    assigned = {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    assert {"AUTH_TYPE", "OAUTH_PROVIDERS", "AUTH_ROLES_MAPPING", "AUTH_ROLES_SYNC_AT_LOGIN", "AUTH_USER_REGISTRATION",
            "SECURITY_MANAGER_CLASS"} <= assigned
    assert '"client_secret": _secret("oauth-sso-client-secret")' in config
    api = prod["deployment-airflow-api-server.yaml"]["spec"]["template"]
    assert set(api["metadata"]["annotations"]) >= {"checksum/fab-config", "checksum/auth-secrets"}
    volume = next(v for v in api["spec"]["volumes"] if v["name"] == "auth-secrets")
    assert volume["projected"]["sources"] == [{"secret": {"name": "airflow-auth", "items": [
        {"key": "oauth-sso-client-secret", "path": "oauth-sso-client-secret"}]}}]
    store = prod["externalsecret-airflow-auth.yaml"]["spec"]["data"]
    assert store == [{"secretKey": "oauth-sso-client-secret", "remoteRef": {"key": "airflow/prod/auth/sso-client-secret"}}]


def test_a_change_of_the_sign_in_settings_rolls_only_the_api_server(scratch_repo):
    def annotations(env: str) -> dict[str, dict]:
        objects = load_manifests(scratch_repo / "compiled", env)
        return {n: o["spec"]["template"]["metadata"].get("annotations", {}) for n, o in objects.items() if o["kind"] == "Deployment"}

    before = annotations("prod")
    prod = scratch_repo / "inventory" / "targets" / "prod.yml"
    prod.write_text(prod.read_text().replace("data-engineers: [User]", "data-engineers: [Op]"))
    result = compile_in(scratch_repo, "-t", "prod")
    assert result.returncode == 0, result.stderr[-2000:]
    after = annotations("prod")
    assert [n for n in before if before[n] != after[n]] == ["deployment-airflow-api-server.yaml"]
    assert before["deployment-airflow-api-server.yaml"]["checksum/fab-config"] != after["deployment-airflow-api-server.yaml"]["checksum/fab-config"]


def test_switching_the_auth_manager_runs_the_migrations_again(scratch_repo):
    def migration_job(env: str) -> str:
        return next(n for n in load_manifests(scratch_repo / "compiled", env) if n.startswith("job-airflow-db-migrate-"))

    before = migration_job("staging")
    staging = scratch_repo / STAGING
    staging.write_text(staging.read_text().replace("airflow.auth.fab-database", "airflow.auth.keycloak") + (
        "    auth:\n      keycloak:\n        server_url: https://sso.acme.internal\n        realm: acme\n"
        "        client_secret: {ref: auth/keycloak-client-secret}\n"))
    result = compile_in(scratch_repo, "-t", "staging")
    assert result.returncode == 0, result.stderr[-2000:]
    assert migration_job("staging") != before
