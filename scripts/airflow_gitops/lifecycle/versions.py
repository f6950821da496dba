"""Airflow versions as the lifecycle commands compare them."""

from __future__ import annotations

import re

from .errors import LifecycleError

_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def parse(version: str, origin: str) -> tuple[int, int, int]:
    match = _VERSION.match(version)
    if not match:
        raise LifecycleError(f"{origin}: {version!r} is not an Airflow release version (X.Y.Z, e.g. 3.3.2)")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def tag_for(tag: str, old: str, new: str) -> str | None:
    """The image tag naming `new` where `tag` names `old` (3.3.1-python3.12 -> 3.3.2-python3.12), or
    None when the tag does not contain the version (a custom image: its tag is the user's to choose)."""
    pattern = re.compile(rf"(?<![0-9.]){re.escape(old)}(?![0-9])")
    return pattern.sub(new, tag, count=1) if pattern.search(tag) else None
