"""The diff's errors, each written for the person who ran the command."""

from __future__ import annotations

from ..errors import AirflowGitopsError


class DiffError(AirflowGitopsError):
    """Base of every error `airflow-gitops diff` reports."""


class UnknownRevisionError(DiffError):
    """--base or --head names nothing Git knows."""


class UnknownTargetError(DiffError):
    """--target names an environment neither side has under compiled/."""


class StaleCompiledError(DiffError):
    """The working tree's compiled/ is not what a compile of its inventory produces."""
