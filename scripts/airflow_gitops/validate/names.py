"""The checks of `airflow-gitops validate`, in the order they run; the CLI offers them without
importing the checks themselves (see runner.CHECKS, which must match)."""

CHECK_NAMES = ("inventory", "up-to-date", "kubernetes-schemas", "kustomize", "security-policy", "secrets", "airflow", "dags")
