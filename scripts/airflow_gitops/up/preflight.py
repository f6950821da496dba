"""What `up` needs from this machine, checked before anything starts: root, and the programs its
pods and stand-ins run, all missing ones named at once with the Debian packages that bring them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from . import standins
from .sandbox import pod_specs

# program -> the Debian package that installs it
ALWAYS = {"bwrap": "bubblewrap", "ip": "iproute2", "git": "git", "mount": "mount", "umount": "mount"}
# What an image's stand-in runs, by the kind standins.image_kind gives it.
BY_IMAGE = {
    "postgres": {str(standins.POSTGRES_BIN / "postgres"): "postgresql-15"},
    "redis": {"redis-server": "redis-server"},
}


def _images(objects: Iterable[Mapping]) -> set[str]:
    return {str(container.get("image", "")) for _, spec in pod_specs(objects)
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]}


def problems(objects: Iterable[Mapping]) -> list[str]:
    """What stops `up` from running the objects here: one line per missing thing, empty when none."""
    found: list[str] = []
    if os.geteuid() != 0:
        found.append("root: up makes a network namespace per pod and a cgroup per container "
                     "(run it with sudo, or as root in a VM or container that allows both)")
    needed = dict(ALWAYS)
    for image in _images(objects):
        needed.update(BY_IMAGE.get(standins.image_kind(image) or "", {}))
    missing = {program: package for program, package in needed.items()
               if not (Path(program).exists() if program.startswith("/") else shutil.which(program))}
    if missing:
        packages = sorted(set(missing.values()))
        found.append(f"{', '.join(sorted(missing))}: install the Debian package{'s' if len(packages) > 1 else ''} "
                     f"{' '.join(packages)} (apt-get install {' '.join(packages)}; `make test-packages` installs "
                     "everything the tests need)")
    return found
