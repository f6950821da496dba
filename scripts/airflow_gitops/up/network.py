"""One address per pod, as a cluster gives it: every pod of an environment gets a network namespace
of its own, with `lo` and an `eth0` holding its address in a /24 that the environment takes from
10.213.0.0/16, and pods reach each other by address. This machine reaches them too (it holds the
subnet's first address, the pods' default gateway), and `PortForward` relays a port of 127.0.0.1 to
a pod, as `kubectl port-forward` does, for `up --port`.

The layout, for environment `dev` (hash h = the first 8 hex digits of sha256("dev")):

    host:            agw-<h>  (10.213.N.1/24, a veth)
                        |
    netns agw-<h>:   host -- bridge br0 -- p2, p3, ...       (the environment's switch)
                                            |
    netns agw-<h>-<pod>:                   eth0 (10.213.N.2/24, default via 10.213.N.1), lo

The bridge sits in a namespace of its own rather than on the host because bridged traffic goes
through the iptables of the bridge's namespace when br_netfilter is loaded (it is on these
machines: net.bridge.bridge-nf-call-iptables = 1): on a host where Docker set the FORWARD policy
to DROP, pods on a host bridge could not reach each other. The environment's namespace has no
firewall, and the host keeps a single link per environment.

Names derive from the environment's name only, so `cleanup(env)` finds what a crashed run left:
namespaces `agw-<h>` and `agw-<h>-*`, the host link `agw-<h>`. Interface names are at most 15
characters (IFNAMSIZ); network namespace names are files in /run/netns.

Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2's `ip`.

    with EnvironmentNetwork("dev") as network:
        db = network.add_pod("airflow-postgres-0")
        subprocess.Popen([*db.prefix(), "postgres", ...], start_new_session=True)
        hosts = hosts_file({db.ip: service_names("airflow-postgres", "airflow-dev")})
        with PortForward(8080, api.ip, 8080):
            ...  # http://127.0.0.1:8080 is the api-server
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import ipaddress
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..errors import AirflowGitopsError

POOL = ipaddress.IPv4Network("10.213.0.0/16")
SUBNET_PREFIX = 24
PREFIX = "agw"
BRIDGE = "br0"  # inside the environment's namespace
UPLINK = "host"  # the environment namespace's end of the host link
# Serializes choosing a free /24 and taking it, between runs of `up` for different environments.
LOCK_FILE = Path("/run/lock/airflow-gitops-network.lock")
NETNS_DIR = Path("/run/netns")
_POD_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_NAME_MAX = 255


class NetworkError(AirflowGitopsError):
    """The pods' network cannot be set up or torn down: no `ip`, no permission, no free subnet."""


# --- Names --------------------------------------------------------------------------------------


def environment_hash(environment: str) -> str:
    """8 hex digits naming the environment's links and namespaces (its name may be too long for them)."""
    if not environment:
        raise ValueError("the environment's name is empty")
    return hashlib.sha256(environment.encode()).hexdigest()[:8]


def host_link_name(environment: str) -> str:
    """The environment's link on the host (12 characters, IFNAMSIZ allows 15)."""
    return f"{PREFIX}-{environment_hash(environment)}"


def environment_namespace(environment: str) -> str:
    """The network namespace holding the environment's bridge."""
    return f"{PREFIX}-{environment_hash(environment)}"


def pod_namespace(environment: str, pod: str) -> str:
    """The network namespace of a pod: agw-<hash>-<pod>, the pod's name hashed when too long."""
    if not _POD_NAME.match(pod) or len(pod) > 253:
        raise ValueError(f"pod name {pod!r} is not a Kubernetes name (lower-case letters, digits, '-', '.')")
    name = f"{environment_namespace(environment)}-{pod}"
    if len(name) > _NAME_MAX:
        name = f"{environment_namespace(environment)}-{hashlib.sha256(pod.encode()).hexdigest()[:16]}"
    return name


# --- Running ip ---------------------------------------------------------------------------------


def _ip_executable() -> str:
    ip = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if os.path.exists(p)), None)
    if ip is None:
        raise NetworkError("`ip` (iproute2) is not installed: apt-get install iproute2")
    return ip


def _hint(stderr: str) -> str:
    if "Operation not permitted" in stderr or "Permission denied" in stderr:
        return " (pod networks need root: run as root, or with CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    if "Unknown device type" in stderr or "not supported" in stderr.lower():
        return " (the kernel lacks bridge or veth support: modprobe bridge veth)"
    return ""


def _ip(*args: str, namespace: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs `ip [-n namespace] args`; NetworkError with its message when it fails and check is set."""
    command = [_ip_executable(), *(["-n", namespace] if namespace else []), *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        stderr = result.stderr.strip()
        raise NetworkError(f"`{' '.join(command[1:])}` failed: {stderr or f'exit status {result.returncode}'}{_hint(stderr)}")
    return result


def _namespaces() -> list[str]:
    """The named network namespaces (`ip netns list` prints "name (id: 3)" or "name")."""
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def _links(namespace: str | None = None) -> list[str]:
    """Link names (`ip -o link` prints "4: name@peer: <...>")."""
    result = _ip("-o", "link", "show", namespace=namespace, check=namespace is None)
    return [line.split(":", 2)[1].strip().split("@")[0] for line in result.stdout.splitlines() if ":" in line]


def _used_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 networks a subnet of the pool must not overlap: those of this machine's addresses, and
    routes at least as specific as a /24 (a broader route loses to the subnet's own, more specific
    one). Networks broader than the pool are left out: they would take all of it, and a /24 on a
    link of its own wins over them."""
    used = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        match = re.search(r"\sinet\s+(\S+)", line)
        if match:
            used.append(ipaddress.IPv4Interface(match[1]).network)
    for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        destination = line.split()[0] if line.strip() else ""
        if destination[:1].isdigit():
            try:
                network = ipaddress.IPv4Network(destination if "/" in destination else f"{destination}/32", strict=False)
            except ValueError:
                continue
            if network.prefixlen >= SUBNET_PREFIX:
                used.append(network)
    return [network for network in used if network.prefixlen >= POOL.prefixlen]


def free_subnet(used: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first /24 of 10.213.0.0/16 overlapping none of `used`."""
    for subnet in POOL.subnets(new_prefix=SUBNET_PREFIX):
        if not any(subnet.overlaps(network) for network in used):
            return subnet
    raise NetworkError(f"no free /{SUBNET_PREFIX} left in {POOL} for the pods (every one is on an interface or route "
                       "of this machine): stop other `airflow-gitops up` runs, or remove leftovers with "
                       "airflow_gitops.up.network.cleanup(<env>)")


@contextmanager
def _subnet_lock() -> Iterator[None]:
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _kill_processes_in(namespace: str) -> None:
    """SIGKILL what still runs in a namespace: deleting its name would not end it (processes keep a
    namespace alive), and a pod being removed has no business running."""
    result = _ip("netns", "pids", namespace, check=False)
    for pid in result.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _delete_namespace(namespace: str) -> None:
    _kill_processes_in(namespace)
    result = _ip("netns", "delete", namespace, check=False)
    if result.returncode != 0 and (NETNS_DIR / namespace).exists():
        raise NetworkError(f"cannot delete network namespace {namespace}: {result.stderr.strip()}{_hint(result.stderr)}")


def cleanup(environment: str) -> None:
    """Removes what a run of the environment left (a crash, a kill -9): its pods' namespaces and
    processes, the bridge's namespace, the host link. Safe when nothing exists."""
    # Links first: deleting a veth end takes its peer at once, while a namespace's devices go when
    # the kernel gets round to destroying it, after `ip netns delete` has returned.
    link = host_link_name(environment)
    if link in _links():
        _ip("link", "delete", link, check=False)
        if link in _links():
            raise NetworkError(f"cannot delete the link {link} of environment {environment}")
    environment_ns = environment_namespace(environment)
    namespaces = _namespaces()
    for namespace in namespaces:
        if namespace.startswith(f"{environment_ns}-"):
            _delete_namespace(namespace)
    if environment_ns in namespaces:
        _delete_namespace(environment_ns)


# --- The environment's network ------------------------------------------------------------------


@dataclass(frozen=True)
class PodNetwork:
    """A pod's network: its namespace and address."""

    pod: str
    namespace: str
    ip: str
    gateway: str
    prefix_length: int
    bridge_port: str  # its veth end on the bridge, in the environment's namespace

    @property
    def netns_path(self) -> str:
        """The namespace's file, for tools that join it by path (nsenter --net=, setns)."""
        return str(NETNS_DIR / self.namespace)

    def prefix(self) -> list[str]:
        """Put in front of a command to run it in the pod's network. `ip netns exec` runs it in a
        mount namespace of its own with a fresh /sys (the pod's /sys/class/net), which has no
        /sys/fs/cgroup: join a cgroup before, cgroup.wrap([*pod.prefix(), ...]), not after."""
        return ["ip", "netns", "exec", self.namespace]


class EnvironmentNetwork:
    """The environment's switch and its pods' namespaces (a context manager: made on entry, all
    removed on exit, also on failure; processes still in a pod's namespace then are killed)."""

    def __init__(self, environment: str) -> None:
        self.environment = environment
        self.host_link = host_link_name(environment)
        self.namespace = environment_namespace(environment)
        self.subnet: ipaddress.IPv4Network | None = None
        self.pods: dict[str, PodNetwork] = {}
        self._next_port = 0

    @property
    def gateway(self) -> str:
        return str(self._subnet()[1])

    def _subnet(self) -> ipaddress.IPv4Network:
        if self.subnet is None:
            raise NetworkError(f"the network of {self.environment} is not set up: use it in a `with` block")
        return self.subnet

    def __enter__(self) -> EnvironmentNetwork:
        self.create()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def create(self) -> None:
        """Makes the bridge's namespace, the bridge and the host link with the gateway address."""
        _ip_executable()
        if self.namespace in _namespaces() or self.host_link in _links():
            raise NetworkError(f"the network of environment {self.environment} exists already (namespace or link "
                               f"{self.namespace}): another `airflow-gitops up {self.environment}` is running, or one "
                               f"crashed; if none runs, remove the leftovers with "
                               f"airflow_gitops.up.network.cleanup({self.environment!r})")
        try:
            _ip("netns", "add", self.namespace)
            _ip("link", "set", "lo", "up", namespace=self.namespace)
            _ip("link", "add", BRIDGE, "type", "bridge", namespace=self.namespace)
            _ip("link", "set", BRIDGE, "up", namespace=self.namespace)
            _ip("link", "add", self.host_link, "type", "veth", "peer", "name", UPLINK, "netns", self.namespace)
            _ip("link", "set", UPLINK, "master", BRIDGE, "up", namespace=self.namespace)
            with _subnet_lock():
                subnet = free_subnet(_used_networks())
                _ip("addr", "add", f"{subnet[1]}/{subnet.prefixlen}", "dev", self.host_link)
            self.subnet = subnet
            _ip("link", "set", self.host_link, "up")
        except BaseException:
            self.close()
            raise

    def _free_address(self) -> ipaddress.IPv4Address:
        subnet = self._subnet()
        taken = {ipaddress.IPv4Address(p.ip) for p in self.pods.values()} | {subnet[1]}
        for address in subnet.hosts():
            if address not in taken:
                return address
        raise NetworkError(f"no address left in {subnet} for another pod of {self.environment}")

    def add_pod(self, pod_name: str, address: str | None = None) -> PodNetwork:
        """A namespace for the pod with `lo` up and `eth0` on the bridge, holding `address` (a
        replacement pod keeping its predecessor's, so that /etc/hosts stays right) or the next free one."""
        if pod_name in self.pods:
            raise NetworkError(f"pod {pod_name} of {self.environment} has a network already")
        namespace = pod_namespace(self.environment, pod_name)
        subnet = self._subnet()
        if address is not None:
            wanted = ipaddress.IPv4Address(address)
            if wanted not in subnet or wanted == subnet[1] or any(p.ip == address for p in self.pods.values()):
                raise NetworkError(f"address {address} is not free in {subnet} for pod {pod_name} of {self.environment}")
        chosen = ipaddress.IPv4Address(address) if address is not None else self._free_address()
        self._next_port += 1
        port = f"p{self._next_port}"
        pod = PodNetwork(pod_name, namespace, str(chosen), self.gateway, subnet.prefixlen, port)
        try:
            _ip("netns", "add", namespace)
            _ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace, namespace=self.namespace)
            _ip("link", "set", port, "master", BRIDGE, "up", namespace=self.namespace)
            _ip("addr", "add", f"{chosen}/{subnet.prefixlen}", "dev", "eth0", namespace=namespace)
            _ip("link", "set", "eth0", "up", namespace=namespace)
            _ip("link", "set", "lo", "up", namespace=namespace)
            _ip("route", "add", "default", "via", pod.gateway, namespace=namespace)
        except BaseException:
            self._remove(pod)
            raise
        self.pods[pod_name] = pod
        return pod

    def _remove(self, pod: PodNetwork) -> None:
        if pod.bridge_port in _links(self.namespace):  # takes eth0 with it, at once (see cleanup)
            _ip("link", "delete", pod.bridge_port, namespace=self.namespace, check=False)
        if pod.namespace in _namespaces():
            _delete_namespace(pod.namespace)

    def remove_pod(self, pod_name: str) -> None:
        """Removes a pod's namespace (killing what runs in it) and its port; its address is free again."""
        pod = self.pods.pop(pod_name, None)
        if pod is not None:
            self._remove(pod)

    def close(self) -> None:
        """Removes every pod's namespace, the bridge's and the host link. Idempotent."""
        errors = []
        for name in list(self.pods):
            try:
                self.remove_pod(name)
            except NetworkError as e:
                errors.append(str(e))
        try:
            cleanup(self.environment)
        except NetworkError as e:
            errors.append(str(e))
        self.subnet = None
        if errors:
            raise NetworkError(f"tearing down the network of {self.environment} left something behind: " + "; ".join(errors))


# --- Names pods resolve -------------------------------------------------------------------------


def service_names(name: str, namespace: str, cluster_domain: str = "cluster.local") -> list[str]:
    """The names under which cluster DNS resolves a Service (the short ones through the pod's search
    domains). In a hosts file the short name resolves from every namespace, not only its own."""
    return [name, f"{name}.{namespace}", f"{name}.{namespace}.svc", f"{name}.{namespace}.svc.{cluster_domain}"]


def hosts_file(entries: Mapping[str, list[str]]) -> str:
    """/etc/hosts content: localhost, then a line per address with its names (each name once, for
    the first address that claims it, as a resolver would answer)."""
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    claimed: set[str] = {"localhost", "ip6-localhost", "ip6-loopback"}
    for address, names in entries.items():
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as e:
            raise ValueError(f"hosts entry {address!r} is not an IP address") from e
        fresh = []
        for name in names:
            if not name or any(c.isspace() or c == "#" for c in name):
                raise ValueError(f"host name {name!r} (for {address}) cannot be written to /etc/hosts")
            if name not in claimed:
                claimed.add(name)
                fresh.append(name)
        if fresh:
            lines.append(f"{ip} {' '.join(fresh)}")
    return "\n".join(lines) + "\n"


# --- Port forwarding ----------------------------------------------------------------------------


class PortForward:
    """Listens on 127.0.0.1:<host_port> and relays each TCP connection to <pod_ip>:<port>, in
    background threads; a context manager that closes the listener and every connection on exit.
    host_port 0 lets the kernel choose (see .port)."""

    def __init__(self, host_port: int, pod_ip: str, port: int, *, listen_address: str = "127.0.0.1",
                 connect_timeout: float = 10.0) -> None:
        self.host_port = host_port
        self.target = (pod_ip, port)
        self.listen_address = listen_address
        self.connect_timeout = connect_timeout
        self.port = host_port
        self.errors: list[str] = []  # connections to the pod that failed (the client saw them closed)
        self._listener: socket.socket | None = None
        self._wake_read: socket.socket | None = None
        self._wake_write: socket.socket | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def __enter__(self) -> PortForward:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Binds the port (a NetworkError now, not later, when it is taken) and starts relaying."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.listen_address, self.host_port))
            listener.listen(64)
        except OSError as e:
            listener.close()
            taken = " (in use: stop what listens there, or choose another port)" if e.errno == errno.EADDRINUSE else ""
            raise NetworkError(f"cannot listen on {self.listen_address}:{self.host_port}: {e.strerror}{taken}") from e
        self._listener = listener
        self._wake_read, self._wake_write = socket.socketpair()
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop, "accept")

    def _spawn(self, target, name: str, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=f"port-forward-{self.port}-{name}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not self._closed:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_read or self._closed:
                        return
                    try:
                        client, _ = self._listener.accept()
                    except OSError:
                        continue
                    if not self._track(client):
                        return
                    self._spawn(self._relay, "relay", client)

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed:
                sock.close()
                return False
            self._connections.add(sock)
            return True

    def _relay(self, client: socket.socket) -> None:
        upstream = None
        try:
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
            except OSError as e:
                self.errors.append(f"{self.target[0]}:{self.target[1]}: {e.strerror or e}")
                return
            upstream.settimeout(None)
            if not self._track(upstream):
                return
            self._pump(client, upstream)
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self._lock:
                        self._connections.discard(sock)
                    sock.close()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copies both ways until both have ended; an end in one direction is passed on (half-close)."""
        with selectors.DefaultSelector() as selector:
            selector.register(client, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, client)
            selector.register(self._wake_read, selectors.EVENT_READ, None)
            open_directions = 2
            while open_directions and not self._closed:
                for key, _ in selector.select():
                    if key.data is None:  # closing
                        return
                    source, destination = key.fileobj, key.data
                    try:
                        data = source.recv(65536)  # type: ignore[union-attr]
                        if data:
                            destination.sendall(data)
                            continue
                    except OSError:
                        return
                    selector.unregister(source)
                    open_directions -= 1
                    try:
                        destination.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass

    def close(self) -> None:
        """Stops listening, ends every connection, waits for the threads. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections = list(self._connections)
        if self._wake_write is not None:
            self._wake_write.send(b"x")  # never read: every thread's select sees it readable
        for sock in connections:  # a relay blocked in sendall wakes with an error
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=5)
        for sock in (self._listener, self._wake_read, self._wake_write):
            if sock is not None:
                sock.close()
