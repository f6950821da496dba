"""What `up` reads of an environment: its objects in apply order, its Secrets revealed from the
committed refs, an External Secrets environment's values from a local file."""

from __future__ import annotations

import pytest
import yaml

from airflow_gitops.up import manifests
from conftest import REPO


def test_objects_come_in_apply_order_with_revealed_secrets_and_config_maps():
    dev = manifests.load(REPO, "dev")
    names = list(dev.objects)
    assert names.index("namespace-airflow-dev.yaml") < names.index(next(n for n in names if n.startswith("job-airflow-db-migrate-")))
    assert names.index(next(n for n in names if n.startswith("job-airflow-db-migrate-"))) < names.index("deployment-airflow-api-server.yaml")
    # Values, not ref tags.
    assert len(dev.secrets["airflow-secrets"]["jwt-secret"]) == 86 and "?{" not in dev.secrets["airflow-secrets"]["jwt-secret"]
    assert "[core]" in dev.config_maps["airflow-config"]["airflow.cfg"]


def test_an_external_secrets_environment_takes_its_values_from_a_local_file(tmp_path):
    with pytest.raises(manifests.ManifestError, match="--secrets-file"):
        manifests.load(REPO, "staging")
    store = tmp_path / "staging-secrets.yaml"
    store.write_text(yaml.safe_dump({"airflow/staging/fernet-key": "k"}))
    with pytest.raises(manifests.ManifestError, match="has no value for the store keys airflow/staging/admin-password, airflow/staging/api-secret-key, airflow/staging/jwt-secret;"):
        manifests.load(REPO, "staging", store)
    keys = {"airflow/staging/" + k: f"value-of-{k}" for k in ("fernet-key", "api-secret-key", "jwt-secret", "admin-password")}
    store.write_text(yaml.safe_dump({**keys, "secrets": {"airflow-metadata-db": {"connection": "postgresql://x"}}}))
    staging = manifests.load(REPO, "staging", store)
    assert staging.secrets["airflow-secrets"] == {"fernet-key": "value-of-fernet-key", "api-secret-key": "value-of-api-secret-key",
                                                  "jwt-secret": "value-of-jwt-secret"}
    assert staging.secrets["airflow-metadata-db"] == {"connection": "postgresql://x"}


def test_an_environment_that_was_never_compiled_is_named():
    with pytest.raises(manifests.ManifestError, match="compiled/qa/manifests does not exist: compile first"):
        manifests.load(REPO, "qa")


def test_up_names_every_missing_program_and_its_package_before_starting(monkeypatch, tmp_path):
    from airflow_gitops.up import preflight

    dev = manifests.load(REPO, "dev").objects.values()
    assert preflight.problems(dev) == []
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it
    monkeypatch.setattr(preflight.os, "geteuid", lambda: 1000)
    found = preflight.problems(dev)
    assert found[0].startswith("root: up makes a network namespace per pod")
    assert found[1] == ("bwrap, git, ip, mount, umount: install the Debian packages bubblewrap git iproute2 mount "
                        "(apt-get install bubblewrap git iproute2 mount; `make test-packages` installs everything the tests need)")
    # Redis only where an environment runs the bundled Redis.
    redis = {"kind": "StatefulSet", "spec": {"template": {"spec": {"containers": [{"name": "redis", "image": "redis:7.4.2-bookworm"}]}}}}
    assert "redis-server" in preflight.problems([*dev, redis])[1]
