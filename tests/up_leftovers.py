"""What an `up` environment may leave on the machine, for the tests that check nothing is: its
network namespaces, its host link and its cgroup directories (where this process's cgroups are)."""

from __future__ import annotations

import subprocess

from airflow_gitops.up import limits, network


def namespaces() -> list[str]:
    return [line.split()[0] for line in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                                       check=True).stdout.splitlines() if line.strip()]


def links() -> list[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    return [line.split(":", 2)[1].strip().split("@")[0] for line in out.splitlines()]


def leftovers(env: str) -> list[str]:
    """Namespaces, host links and cgroup directories of the environment that still exist."""
    prefix = network.environment_namespace(env)
    return ([f"netns {n}" for n in namespaces() if n == prefix or n.startswith(prefix + "-")]
            + [f"link {name}" for name in links() if name.startswith(network.host_link_name(env))]
            + [f"cgroup {d}" for d in limits.environment_directories(env) if d.exists()])
