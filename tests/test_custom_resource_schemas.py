"""Offline strict validation of the KEDA, Prometheus Operator and Gateway API objects the manifests
will contain: a valid object of each kind passes the validate command's own check, and a broken one
gives one problem that names the bad field."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from airflow_gitops.validate.kubernetes_schemas import problems_of
from conftest import REPO

KUBERNETES = "1.33"
METADATA = {"name": "airflow-worker", "namespace": "airflow-x",
            "labels": {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": "worker"},
            "annotations": {"argocd.argoproj.io/sync-wave": "3"}}

SCALED_OBJECT = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "ScaledObject",
    "metadata": METADATA,
    "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "airflow-worker"},
        "pollingInterval": 5,
        "cooldownPeriod": 30,
        "minReplicaCount": 0,
        "maxReplicaCount": 10,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
            "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                          "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]},
            "scaleUp": {"stabilizationWindowSeconds": 0,
                        "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
        }}},
        "triggers": [{
            "type": "postgresql",
            "metadata": {
                "host": "airflow-postgresql.airflow-x.svc.cluster.local", "port": "5432", "userName": "airflow",
                "dbName": "airflow", "sslmode": "disable", "targetQueryValue": "16",
                "query": "SELECT ceil(COUNT(*)::decimal / 16) FROM task_instance WHERE state IN ('running', 'queued')",
            },
            "authenticationRef": {"name": "airflow-keda-postgres"},
        }],
    },
}
SCALED_OBJECT_WITH_OPTIONS = copy.deepcopy(SCALED_OBJECT)
SCALED_OBJECT_WITH_OPTIONS["spec"].update({
    "idleReplicaCount": 0, "minReplicaCount": 1, "initialCooldownPeriod": 60,
    "fallback": {"failureThreshold": 3, "replicas": 2, "behavior": "currentReplicasIfHigher"},
})
SCALED_OBJECT_WITH_OPTIONS["spec"]["advanced"]["restoreToOriginalReplicaCount"] = True
SCALED_OBJECT_WITH_OPTIONS["spec"]["triggers"][0].update(
    {"name": "queued-and-running-tasks", "metricType": "AverageValue", "useCachedMetrics": True})
TRIGGER_AUTHENTICATION = {
    "apiVersion": "keda.sh/v1alpha1",
    "kind": "TriggerAuthentication",
    "metadata": {"name": "airflow-keda-postgres", "namespace": "airflow-x", "labels": METADATA["labels"]},
    "spec": {"secretTargetRef": [{"parameter": "password", "name": "airflow-metadata-db", "key": "password"}]},
}
SERVICE_MONITOR = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "ServiceMonitor",
    "metadata": {"name": "airflow-statsd", "namespace": "airflow-x", "labels": {"release": "kube-prometheus-stack"}},
    "spec": {
        "selector": {"matchLabels": {"app.kubernetes.io/component": "statsd"},
                     "matchExpressions": [{"key": "app.kubernetes.io/name", "operator": "In", "values": ["airflow"]}]},
        "namespaceSelector": {"matchNames": ["airflow-x"]},
        "jobLabel": "app.kubernetes.io/component",
        "targetLabels": ["app.kubernetes.io/name"],
        "endpoints": [{
            "port": "metrics", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s", "scheme": "http",
            "honorLabels": True,
            "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "pod", "action": "replace"}],
            "metricRelabelings": [{"sourceLabels": ["__name__"], "regex": "go_.*", "action": "drop"}],
        }, {"targetPort": 8125, "interval": "1m"}],
    },
}
HTTP_ROUTE = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {"name": "airflow-api-server", "namespace": "airflow-x", "labels": METADATA["labels"]},
    "spec": {
        "parentRefs": [{"name": "shared-gateway", "namespace": "gateway-system", "sectionName": "https",
                        "group": "gateway.networking.k8s.io", "kind": "Gateway", "port": 443}],
        "hostnames": ["airflow.example.com", "*.airflow.example.com"],
        "rules": [{
            "matches": [
                {"path": {"type": "PathPrefix", "value": "/"}},
                {"path": {"type": "Exact", "value": "/api/v2/monitor/health"}, "method": "GET",
                 "headers": [{"name": "X-Forwarded-Proto", "value": "https"}],
                 "queryParams": [{"type": "Exact", "name": "verbose", "value": "true"}]},
                {"path": {"type": "RegularExpression", "value": "^/dags/[^/]+$"}},
            ],
            "filters": [{"type": "RequestHeaderModifier",
                         "requestHeaderModifier": {"set": [{"name": "X-Airflow", "value": "1"}]}}],
            "backendRefs": [{"name": "airflow-api-server", "port": 8080, "weight": 1},
                            {"name": "airflow-api-canary", "kind": "Service", "group": "", "port": 8080, "weight": 0}],
            "timeouts": {"request": "60s", "backendRequest": "30s"},
        }],
    },
}


def changed(obj: dict, change: Callable[[dict], object]) -> dict:
    broken = copy.deepcopy(obj)
    change(broken)
    return broken


@pytest.mark.parametrize("obj", [SCALED_OBJECT, SCALED_OBJECT_WITH_OPTIONS, TRIGGER_AUTHENTICATION, SERVICE_MONITOR,
                                 HTTP_ROUTE], ids=lambda o: o["kind"] + ("-options" if o is SCALED_OBJECT_WITH_OPTIONS else ""))
def test_valid_object_has_no_problem(obj):
    assert problems_of(obj, REPO, KUBERNETES) == []


BROKEN = {
    # KEDA
    "scaledobject-misspelt-spec-key": (
        SCALED_OBJECT, lambda o: o["spec"].update(pollingIntervall=5), "spec:", "pollingIntervall"),
    "scaledobject-without-target-name": (
        SCALED_OBJECT, lambda o: o["spec"]["scaleTargetRef"].pop("name"), "spec.scaleTargetRef:", "'name'"),
    "scaledobject-without-triggers": (SCALED_OBJECT, lambda o: o["spec"].pop("triggers"), "spec:", "'triggers'"),
    "trigger-without-metadata": (
        SCALED_OBJECT, lambda o: o["spec"]["triggers"][0].pop("metadata"), "spec.triggers.0:", "'metadata'"),
    "trigger-metadata-value-not-a-string": (
        SCALED_OBJECT, lambda o: o["spec"]["triggers"][0]["metadata"].update(port=5432),
        "spec.triggers.0.metadata.port:", "5432"),
    "postgresql-trigger-misspelt-metadata-key": (
        SCALED_OBJECT, lambda o: o["spec"]["triggers"][0]["metadata"].update(targetQueryValu="16"),
        "spec.triggers.0.metadata:", "targetQueryValu"),
    "postgresql-trigger-unknown-sslmode": (
        SCALED_OBJECT, lambda o: o["spec"]["triggers"][0]["metadata"].update(sslmode="on"),
        "spec.triggers.0.metadata.sslmode:", "'on'"),
    "trigger-metric-type-not-in-enum": (
        SCALED_OBJECT, lambda o: o["spec"]["triggers"][0].update(metricType="Average"),
        "spec.triggers.0.metricType:", "'Average'"),
    "scaledobject-replica-count-as-string": (
        SCALED_OBJECT, lambda o: o["spec"].update(maxReplicaCount="10"), "spec.maxReplicaCount:", "'10'"),
    "hpa-policy-type-not-in-enum": (
        SCALED_OBJECT,
        lambda o: o["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]["policies"][0]
        .update(type="Replicas"),
        "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.policies.0.type:", "'Replicas'"),
    "fallback-without-replicas": (
        SCALED_OBJECT, lambda o: o["spec"].update(fallback={"failureThreshold": 3}), "spec.fallback:", "'replicas'"),
    "restore-to-original-replica-count-as-string": (
        SCALED_OBJECT, lambda o: o["spec"]["advanced"].update(restoreToOriginalReplicaCount="true"),
        "spec.advanced.restoreToOriginalReplicaCount:", "'true'"),
    "triggerauthentication-secret-ref-without-key": (
        TRIGGER_AUTHENTICATION, lambda o: o["spec"]["secretTargetRef"][0].pop("key"),
        "spec.secretTargetRef.0:", "'key'"),
    "triggerauthentication-misspelt-spec-key": (
        TRIGGER_AUTHENTICATION, lambda o: o["spec"].update(secretTargetRefs=[]), "spec:", "secretTargetRefs"),
    # Prometheus Operator
    "servicemonitor-misspelt-endpoint-key": (
        SERVICE_MONITOR, lambda o: o["spec"]["endpoints"][0].update(scrapeTimout="10s"),
        "spec.endpoints.0:", "scrapeTimout"),
    "servicemonitor-interval-not-a-duration": (
        SERVICE_MONITOR, lambda o: o["spec"]["endpoints"][0].update(interval="30 seconds"),
        "spec.endpoints.0.interval:", "'30 seconds'"),
    "servicemonitor-without-selector": (SERVICE_MONITOR, lambda o: o["spec"].pop("selector"), "spec:", "'selector'"),
    "servicemonitor-honor-labels-as-string": (
        SERVICE_MONITOR, lambda o: o["spec"]["endpoints"][0].update(honorLabels="true"),
        "spec.endpoints.0.honorLabels:", "'true'"),
    "servicemonitor-namespace-selector-any-as-string": (
        SERVICE_MONITOR, lambda o: o["spec"]["namespaceSelector"].update(any="yes"),
        "spec.namespaceSelector.any:", "'yes'"),
    "servicemonitor-relabel-action-not-in-enum": (
        SERVICE_MONITOR, lambda o: o["spec"]["endpoints"][0]["relabelings"][0].update(action="rename"),
        "spec.endpoints.0.relabelings.0.action:", "'rename'"),
    # Gateway API
    "httproute-path-match-type-not-in-enum": (
        HTTP_ROUTE, lambda o: o["spec"]["rules"][0]["matches"][0]["path"].update(type="Prefix"),
        "spec.rules.0.matches.0.path.type:", "'Prefix'"),
    "httproute-hostname-with-underscore": (
        HTTP_ROUTE, lambda o: o["spec"]["hostnames"].append("airflow_x.example.com"),
        "spec.hostnames.2:", "'airflow_x.example.com'"),
    "httproute-parent-ref-without-name": (
        HTTP_ROUTE, lambda o: o["spec"]["parentRefs"][0].pop("name"), "spec.parentRefs.0:", "'name'"),
    "httproute-service-backend-without-port": (
        HTTP_ROUTE, lambda o: o["spec"]["rules"][0]["backendRefs"][0].pop("port"),
        "spec.rules.0.backendRefs.0:", "'port'"),
    "httproute-prefix-path-not-absolute": (
        HTTP_ROUTE, lambda o: o["spec"]["rules"][0]["matches"][0]["path"].update(value="api"),
        "spec.rules.0.matches.0.path.value:", "'api'"),
    "httproute-exact-path-with-double-slash": (
        HTTP_ROUTE, lambda o: o["spec"]["rules"][0]["matches"][1]["path"].update(value="/api//v2"),
        "spec.rules.0.matches.1.path.value:", "'/api//v2'"),
    "httproute-timeout-not-a-duration": (
        HTTP_ROUTE, lambda o: o["spec"]["rules"][0]["timeouts"].update(request="1 minute"),
        "spec.rules.0.timeouts.request:", "'1 minute'"),
    "httproute-misspelt-rule-key": (
        HTTP_ROUTE, lambda o: o["spec"]["rules"][0].update(backendRef=[]), "spec.rules.0:", "backendRef"),
    "httproute-method-not-in-enum": (
        HTTP_ROUTE, lambda o: o["spec"]["rules"][0]["matches"][1].update(method="get"),
        "spec.rules.0.matches.1.method:", "'get'"),
    "httproute-filter-without-its-field": (
        HTTP_ROUTE, lambda o: o["spec"]["rules"][0]["filters"][0].pop("requestHeaderModifier"),
        "spec.rules.0.filters.0:", "'requestHeaderModifier'"),
}


@pytest.mark.parametrize(("obj", "change", "where", "field"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_object_gives_one_problem_naming_the_field(obj, change, where, field):
    problems = problems_of(changed(obj, change), REPO, KUBERNETES)
    assert len(problems) == 1, problems
    assert problems[0].startswith(where) and field in problems[0], problems


def test_regular_expression_path_match_is_not_held_to_the_absolute_path_rules():
    route = changed(HTTP_ROUTE, lambda o: o["spec"]["rules"][0]["matches"][2]["path"].update(value=".*/dags//x"))
    assert problems_of(route, REPO, KUBERNETES) == []


def test_backend_other_than_a_service_needs_no_port():
    route = changed(HTTP_ROUTE, lambda o: o["spec"]["rules"][0]["backendRefs"].__setitem__(
        0, {"name": "airflow-backend", "group": "gateway.envoyproxy.io", "kind": "Backend"}))
    assert problems_of(route, REPO, KUBERNETES) == []


def test_problem_of_one_kind_is_not_reported_against_the_other_kind_of_the_same_file():
    """A misspelt ScaledObject key is reported as such, not as a TriggerAuthentication missing its fields."""
    problems = problems_of(changed(SCALED_OBJECT, lambda o: o["spec"].update(cooldown=30)), REPO, KUBERNETES)
    assert len(problems) == 1 and "cooldown" in problems[0] and "secretTargetRef" not in problems[0], problems
    problems = problems_of(changed(TRIGGER_AUTHENTICATION, lambda o: o["spec"]["secretTargetRef"][0].update(
        parameter=1)), REPO, KUBERNETES)
    assert problems and problems[0].startswith("spec.secretTargetRef.0.parameter:"), problems


@pytest.mark.parametrize(("obj", "kind"), [(SCALED_OBJECT, "ScaledJob"), (SERVICE_MONITOR, "PodMonitor"),
                                           (HTTP_ROUTE, "GRPCRoute")])
def test_kind_the_schema_does_not_cover_is_a_problem(obj, kind):
    problems = problems_of(changed(obj, lambda o: o.update(kind=kind)), REPO, KUBERNETES)
    assert len(problems) == 1 and problems[0].startswith("kind:") and kind in problems[0], problems


@pytest.mark.parametrize(("obj", "api_version"), [(SCALED_OBJECT, "keda.sh/v1alpha2"),
                                                  (TRIGGER_AUTHENTICATION, "keda.sh/v1beta1"),
                                                  (SERVICE_MONITOR, "monitoring.coreos.com/v1alpha1"),
                                                  (HTTP_ROUTE, "gateway.networking.k8s.io/v1beta1")])
def test_api_version_other_than_the_one_we_emit_is_a_problem(obj, api_version):
    problems = problems_of(changed(obj, lambda o: o.update(apiVersion=api_version)), REPO, KUBERNETES)
    assert problems == [f"apiVersion: {obj['apiVersion']!r} was expected"]
