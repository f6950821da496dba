"""The lifecycle commands' refusals: what is wrong, in which file, and what to do instead."""

from __future__ import annotations

from ..errors import AirflowGitopsError


class LifecycleError(AirflowGitopsError):
    """A lifecycle command refused its input or could not produce a valid result; nothing changed."""
