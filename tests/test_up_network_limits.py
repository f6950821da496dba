"""`up`'s pod networks and container limits, for real: network namespaces, veths and a bridge made
with `ip`, cgroups written under /sys/fs/cgroup (v1 or v2, whichever this machine offers). Needs root,
which CI has; nothing is mocked or skipped."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_gitops.up import limits, network
from airflow_gitops.up.limits import ContainerCgroup, environment_cgroups, parse_cpu, parse_memory, remove_environment
from airflow_gitops.up.network import EnvironmentNetwork, NetworkError, PortForward, cleanup, hosts_file, service_names
from conftest import free_port, running, start_group, stop_groups
from up_leftovers import leftovers, links, namespaces

# A web server on the pod's address. socketserver.TCPServer, not `python -m http.server`: the latter
# resolves its address's name (socket.getfqdn) before it listens, and a pod has no DNS server it can
# reach, so it would listen only after the resolver's 10 s timeout.
SERVE = ("import http.server, socketserver, sys; "
         "socketserver.TCPServer((sys.argv[1], int(sys.argv[2])), http.server.SimpleHTTPRequestHandler).serve_forever()")
# Fetches a URL, retrying while the server is starting.
FETCH = """
import sys, time, urllib.request
deadline = time.monotonic() + 20
while True:
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode(), end="")
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.1)
"""
# Allocates 1 MiB after 1 MiB (bytes filled in, so the pages are really charged) until killed.
ALLOCATE = "chunks = []\nwhile True:\n    chunks.append(b'x' * (1 << 20))"
# Spins for 2 s of wall time, then prints the CPU seconds it got.
SPIN = "import time\nstart, cpu = time.monotonic(), time.process_time()\nwhile time.monotonic() - start < 2: pass\nprint(time.process_time() - cpu)"


@pytest.fixture
def environment(request: pytest.FixtureRequest) -> Iterator[str]:
    """A name no other test (or concurrent run) uses; whatever a failed test left of it is removed."""
    name = f"t{os.getpid()}-{request.node.name.removeprefix('test_')[:20].replace('_', '-')}"
    yield name
    cleanup(name)
    remove_environment(name)


def host_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    return [ipaddress.IPv4Interface(line.split()[3]).network for line in out.splitlines()]


def serve(pod: network.PodNetwork, port: int) -> list[str]:
    """A web server on the pod's address serving the working directory."""
    return [*pod.prefix(), sys.executable, "-c", SERVE, pod.ip, str(port)]


def fetch_in(pod: network.PodNetwork, url: str, hosts: Path | None = None) -> str:
    """GET url from inside the pod (with `hosts` as its /etc/hosts: `ip netns exec` runs the command
    in a mount namespace of its own, so the bind mount stays there)."""
    command = [sys.executable, "-c", FETCH, url]
    if hosts is not None:
        command = ["/bin/sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *command]
    result = subprocess.run([*pod.prefix(), *command], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


# --- Quantities ---------------------------------------------------------------------------------


def test_quantities_parse_as_kubernetes_reads_them() -> None:
    assert parse_memory("128974848") == parse_memory(128974848) == 128974848
    assert parse_memory("129e6") == parse_memory("129M") == 129_000_000
    assert parse_memory("123Mi") == 123 * 2**20
    assert parse_memory("1.5Gi") == 3 * 2**29
    assert parse_memory("1Ki") == 1024 and parse_memory("2Ti") == 2 * 2**40 and parse_memory("1k") == 1000
    assert parse_memory("1G") == 10**9 and parse_memory("1E") == 10**18 and parse_memory("1E3") == 1000
    assert parse_memory("1500m") == 2  # a fraction of a byte rounds up
    assert parse_cpu("500m") == 500 and parse_cpu("1") == 1000 and parse_cpu("1.5") == 1500
    assert parse_cpu(2) == 2000 and parse_cpu(0.25) == 250 and parse_cpu("2e-1") == 200 and parse_cpu("100u") == 1
    for bad in ("", "1.2.3", "12 Mi", "1Mb", "-1Gi", "Gi", "1e", "abc"):
        with pytest.raises(ValueError, match="memory quantity") as error:
            parse_memory(bad)
        assert repr(bad) in str(error.value)
    for bad in ("one", "500 m", True, None):
        with pytest.raises(ValueError, match="cpu quantity") as error:
            parse_cpu(bad)  # type: ignore[arg-type]
        assert repr(bad) in str(error.value)


def test_hosts_file_and_service_names() -> None:
    assert service_names("airflow-postgres", "airflow-dev") == [
        "airflow-postgres", "airflow-postgres.airflow-dev", "airflow-postgres.airflow-dev.svc",
        "airflow-postgres.airflow-dev.svc.cluster.local"]
    text = hosts_file({"10.213.0.2": service_names("db", "ns"), "10.213.0.3": ["api", "db"]})
    lines = text.splitlines()
    assert lines[0] == "127.0.0.1 localhost"
    assert "10.213.0.2 db db.ns db.ns.svc db.ns.svc.cluster.local" in lines
    assert "10.213.0.3 api" in lines  # "db" is the first address's
    with pytest.raises(ValueError, match="not-an-ip"):
        hosts_file({"not-an-ip": ["x"]})


# --- Networks -----------------------------------------------------------------------------------


def test_pods_get_their_own_addresses_and_reach_each_other(environment: str, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello from a")
    before = host_networks()
    hosts = tmp_path / "hosts"
    with EnvironmentNetwork(environment) as net, EnvironmentNetwork(environment + "-2") as other:
        a, b = net.add_pod("pod-a"), net.add_pod("pod-b")
        assert a.ip != b.ip
        assert net.subnet is not None and other.subnet is not None
        assert {ipaddress.ip_address(a.ip), ipaddress.ip_address(b.ip)} <= set(net.subnet.hosts())
        assert net.subnet.subnet_of(network.POOL) and not any(net.subnet.overlaps(n) for n in before)
        assert other.subnet != net.subnet  # two environments at once: two subnets
        assert network.host_link_name(environment) in links() and len(network.host_link_name(environment)) <= 15
        assert {a.namespace, b.namespace} <= set(namespaces())
        inside = subprocess.run([*a.prefix(), "ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True)
        assert f"eth0    inet {a.ip}/24" in inside.stdout and "lo    inet 127.0.0.1/8" in inside.stdout
        with running(serve(a, 8080), cwd=tmp_path, stderr=subprocess.DEVNULL):
            assert fetch_in(b, f"http://{a.ip}:8080/hello.txt") == "hello from a"
            # By a Service's name, through the hosts file a pod is given.
            hosts.write_text(hosts_file({a.ip: service_names("airflow-api-server", "airflow-dev")}))
            url = "http://airflow-api-server.airflow-dev.svc.cluster.local:8080/hello.txt"
            assert fetch_in(b, url, hosts) == "hello from a"
            # The host reaches a pod directly too (it holds the gateway address).
            assert urllib.request.urlopen(f"http://{a.ip}:8080/hello.txt", timeout=10).read() == b"hello from a"
        other.close()
        net.remove_pod("pod-b")
        assert b.namespace not in namespaces()
        assert net.add_pod("pod-c").ip == b.ip  # its address is free again
    assert leftovers(environment) == [] and leftovers(environment + "-2") == []


def test_port_forward_reaches_a_pod_from_the_host(environment: str, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello through the forward")
    port = free_port()
    with EnvironmentNetwork(environment) as net:
        api = net.add_pod("api-server")
        with running(serve(api, 8080), cwd=tmp_path, stderr=subprocess.DEVNULL):
            with PortForward(port, api.ip, 8080) as forward:
                assert forward.port == port
                with pytest.raises(NetworkError, match=f"127.0.0.1:{port}.*in use"):
                    PortForward(port, api.ip, 8080).start()
                deadline = time.monotonic() + 20
                while True:  # the server may still be starting: the forward then closes the connection
                    try:
                        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10).read()
                        break
                    except OSError:
                        assert time.monotonic() < deadline, forward.errors
                        time.sleep(0.1)
                assert body == b"hello through the forward"
                # Several connections at once, each relayed in both directions.
                replies = [urllib.request.urlopen(f"http://127.0.0.1:{port}/hello.txt", timeout=10) for _ in range(5)]
                assert [r.read() for r in replies] == [body] * 5
                idle = socket.create_connection(("127.0.0.1", port), timeout=10)
                time.sleep(0.2)
            # Closing the forward ends open connections and stops listening.
            assert idle.recv(1) == b""
            idle.close()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert leftovers(environment) == []


def test_teardown_leaves_nothing_also_after_an_exception(environment: str) -> None:
    started: list[subprocess.Popen] = []
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with EnvironmentNetwork(environment) as net, environment_cgroups(environment) as cgroups:
                pod = net.add_pod("worker-0")
                cgroup = cgroups.container("worker-0", "worker")
                cgroup.set_limits(parse_memory("256Mi"), parse_cpu("1"))
                # Left running on purpose: teardown kills what is still in the pod's namespace and cgroup.
                started.append(start_group(cgroup.wrap([*pod.prefix(), "sleep", "300"])))
                deadline = time.monotonic() + 10
                while started[0].pid not in cgroup.pids():
                    assert time.monotonic() < deadline and started[0].poll() is None
                    time.sleep(0.02)
                assert leftovers(environment)
                raise RuntimeError("boom")
        assert started[0].wait(timeout=10) == -9
        assert leftovers(environment) == []
    finally:
        stop_groups(started)


def test_cleanup_removes_what_a_crashed_run_left(environment: str) -> None:
    cleanup(environment)  # nothing there: nothing to do
    remove_environment(environment)
    net = EnvironmentNetwork(environment)
    net.create()  # and never closed, as after a kill -9
    pod = net.add_pod("scheduler-0")
    cgroup = ContainerCgroup(environment, "scheduler-0", "scheduler")
    process = start_group(cgroup.wrap([*pod.prefix(), "/bin/sh", "-c", "sleep 300 & sleep 300"]))
    try:
        deadline = time.monotonic() + 10
        while len(cgroup.pids()) < 3:  # the shell and its two sleeps
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        with pytest.raises(NetworkError, match=r"exists already.*cleanup"):
            EnvironmentNetwork(environment).create()
        # Joining the cgroup under `ip netns exec` fails, saying why (it hides /sys/fs/cgroup).
        inverted = subprocess.run([*pod.prefix(), *cgroup.wrap(["true"])], capture_output=True, text=True)
        assert inverted.returncode == 125 and "wrap the ip netns exec command line" in inverted.stderr
        cleanup(environment)
        remove_environment(environment)
        assert leftovers(environment) == []
        assert process.wait(timeout=10) == -9
        cleanup(environment)  # twice: still fine
        remove_environment(environment)
        cgroup.remove()
    finally:
        stop_groups([process])


# --- Limits -------------------------------------------------------------------------------------


def test_a_process_over_its_memory_limit_is_oom_killed(environment: str) -> None:
    limit = parse_memory("64Mi")
    with environment_cgroups(environment) as cgroups:
        cgroup = cgroups.container("webserver-0", "webserver")
        cgroup.set_limits(limit, None)
        assert cgroup.oom_kills() == 0
        with running(cgroup.wrap([sys.executable, "-c", ALLOCATE]), stderr=subprocess.PIPE) as process:
            assert process.wait(timeout=60) == -9, process.stderr.read()
        assert cgroup.oom_kills() >= 1
        assert 0.8 * limit <= cgroup.memory_peak() <= limit + 4 * 2**20, cgroup.memory_peak()
    assert leftovers(environment) == []


def test_a_cpu_limit_of_200m_keeps_a_busy_loop_to_a_fifth_of_a_core(environment: str) -> None:
    with environment_cgroups(environment) as cgroups:
        cgroup = cgroups.container("scheduler-0", "scheduler")
        cgroup.set_limits(None, parse_cpu("200m"))
        with running(cgroup.wrap([sys.executable, "-c", SPIN]), stdout=subprocess.PIPE, text=True) as process:
            out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        share = float(out) / 2
        assert 0.1 <= share <= 0.35, f"{share:.0%} of a core under a 200m limit"


def test_what_the_wrapped_command_forks_is_in_the_cgroup(environment: str) -> None:
    with environment_cgroups(environment) as cgroups:
        cgroup = cgroups.container("triggerer-0", "triggerer")
        cgroup.set_limits(parse_memory("128Mi"), parse_cpu("500m"))
        with running(cgroup.wrap(["/bin/sh", "-c", "sleep 300 & echo $!; wait"]), stdout=subprocess.PIPE,
                     text=True) as process:
            child = int(process.stdout.readline())
            assert {process.pid, child} <= set(cgroup.pids())
            memberships = Path(f"/proc/{child}/cgroup").read_text()
            for directory in cgroup.directories:
                assert any(directory.as_posix().endswith(line.split(":", 2)[2]) for line in memberships.splitlines()
                           if line.split(":", 2)[2] != "/"), (directory, memberships)
            cgroup.remove()  # kills the shell and its child
            assert process.wait(timeout=10) == -9
            assert cgroup.pids() == [] and not any(d.exists() for d in cgroup.directories)
            cgroup.remove()  # idempotent
        # A wrapped command whose cgroup is gone does not run outside it.
        gone = subprocess.run(cgroup.wrap(["true"]), capture_output=True, text=True)
        assert gone.returncode == 125 and "cgroup.procs" in gone.stderr
    assert leftovers(environment) == []


def test_limits_refuse_nonsense(environment: str) -> None:
    with environment_cgroups(environment) as cgroups:
        cgroup = cgroups.container("pod", "main")
        with pytest.raises(ValueError, match="memory_bytes"):
            cgroup.set_limits(-1, None)
        with pytest.raises(ValueError, match="cpu_millis"):
            cgroup.set_limits(None, 1.5)  # type: ignore[arg-type]
        cgroup.set_limits(0, 0)  # 0 is no limit, as the kubelet reads it
        with pytest.raises(ValueError, match="cannot name a cgroup"):
            cgroups.container("../escape", "main")
    assert leftovers(environment) == []


def test_no_usable_memory_controller_is_reported_clearly() -> None:
    """With every cgroup hierarchy unmounted (in a mount namespace of its own, so only for that
    process), detecting the layout fails naming what is missing for both versions."""
    hide = ("awk '$3 ~ /^cgroup2?$/ {print $2}' /proc/self/mounts | sort -r | "
            'while read -r m; do umount -l "$m" || exit 1; done; exec "$@"')
    code = "from airflow_gitops.up.limits import ContainerCgroup\nContainerCgroup('dev', 'pod', 'main')"
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", hide, "hide",
                             sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "CgroupError: no usable memory cgroup controller" in result.stderr
    assert "no cgroup v2 hierarchy is mounted" in result.stderr
    assert "no cgroup v1 hierarchy with the memory controller is mounted" in result.stderr
