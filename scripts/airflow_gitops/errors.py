"""Exceptions whose messages are written for the user: what went wrong, where, how to fix it."""


class AirflowGitopsError(Exception):
    """Base of every error the CLI reports without a traceback."""


class RepositoryError(AirflowGitopsError):
    """The command was not run inside an Airflow GitOps checkout."""


class InventoryError(AirflowGitopsError):
    """The inventory is invalid or a target does not exist."""


class CompileError(AirflowGitopsError):
    """`kapitan compile` failed."""


class AirflowEnvironmentError(AirflowGitopsError):
    """The isolated Apache Airflow environment could not be created."""


class AirflowCheckError(AirflowGitopsError):
    """Apache Airflow rejected the generated configuration or pod template."""
