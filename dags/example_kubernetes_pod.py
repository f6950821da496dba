"""Run a step in its own container with the KubernetesPodOperator: a pinned image of its own,
requests and limits, a security context the namespace's *restricted* Pod Security Standard
accepts, and the pod deleted once it succeeded (kept for inspection when it failed).

The task launches its pod from the process that runs it (a KubernetesExecutor worker pod, or the
scheduler with the LocalExecutor), in that pod's own namespace, with that pod's service account:
the environment must give it a token (`parameters.airflow.workers.automount_service_account_token:
true` for worker pods) and a Role allowing pods create/get/list/watch/delete and pods/log get.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import dag
from kubernetes.client import models as k8s

# The step itself: anything in the image; here a tiny Python program reading its inputs from env.
SCORE_ORDERS = """
import json, os
orders = [{"order": 1, "amount": 12.5}, {"order": 2, "amount": 30.0}]
flagged = [o["order"] for o in orders if o["amount"] > float(os.environ["THRESHOLD"])]
print(json.dumps({"run_id": os.environ["RUN_ID"], "flagged": flagged}))
"""


@dag(
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["example", "kubernetes"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
)
def example_kubernetes_pod():
    KubernetesPodOperator(
        task_id="score_orders",
        name="score-orders",
        # Pin the image (a digest is better still): a moving tag changes the step under you.
        image="python:3.12.8-slim-bookworm",
        image_pull_policy="IfNotPresent",
        cmds=["python", "-c"],
        arguments=[SCORE_ORDERS],
        env_vars={"THRESHOLD": "20", "RUN_ID": "{{ run_id }}"},
        labels={"app.kubernetes.io/part-of": "airflow", "app.kubernetes.io/component": "task-pod"},
        in_cluster=True,
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "100m", "memory": "128Mi"},
            limits={"cpu": "500m", "memory": "256Mi"},
        ),
        # What the restricted Pod Security Standard requires of every pod in the namespace.
        security_context=k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=65534,
            run_as_group=65534,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        container_security_context=k8s.V1SecurityContext(
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        # The step does not talk to the Kubernetes API.
        automount_service_account_token=False,
        get_logs=True,
        # No XCom sidecar: the result goes to the task log (and, in real use, to storage).
        do_xcom_push=False,
        startup_timeout_seconds=300,
        on_finish_action="delete_succeeded_pod",
        execution_timeout=timedelta(minutes=30),
    )


example_kubernetes_pod()
