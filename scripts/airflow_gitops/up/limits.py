"""Resource limits of a container, applied as the kubelet applies them: a cgroup per container with
its memory limit (hard: over it the kernel's OOM killer kills a process of the container, never one
outside) and its CPU limit (a CFS quota: `cpu: 200m` is 20 ms of CPU time per 100 ms period).

The cgroups of an environment live under one parent, `airflow-gitops-<env>`, below the cgroup this
process runs in, so that `remove_environment` can remove whatever a crashed run left. Both cgroup
versions are supported, chosen at run time:

- cgroup v2 (one hierarchy, `memory.max`, `cpu.max`, `memory.peak`, `memory.events`), used when its
  memory controller is available to this process's cgroup. A v2 cgroup holding processes cannot
  pass controllers on to children ("no internal processes"), so when this process's cgroup holds
  processes and has not enabled the controllers below it, the parent goes next to it instead, below
  its parent (which does offer them).
- cgroup v1 (a hierarchy per controller, `memory.limit_in_bytes`, `cpu.cfs_quota_us`,
  `memory.max_usage_in_bytes`, `memory.oom_control`), used otherwise; a container then has a
  directory in the memory hierarchy and one in the cpu hierarchy, and joins both.

Swap is off for a container (v2 `memory.swap.max` 0, v1 `memory.memsw.limit_in_bytes` equal to the
limit where the kernel accounts swap), as on a node with the kubelet's default NoSwap: over its
limit a container is killed rather than swapped out. On v2 `memory.oom.group` is set, as the
kubelet sets it: an OOM kill takes the whole container.

    with environment_cgroups("dev") as cgroups:
        scheduler = cgroups.container("airflow-scheduler-0", "scheduler")
        scheduler.set_limits(parse_memory("1Gi"), parse_cpu("500m"))
        process = subprocess.Popen(scheduler.wrap(["airflow", "scheduler"]), start_new_session=True)
        ...
        print(scheduler.memory_peak(), scheduler.oom_kills())
    # every cgroup of the environment removed here, what still ran in them killed
"""

from __future__ import annotations

import errno
import math
import os
import re
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ..errors import AirflowGitopsError

PARENT_PREFIX = "airflow-gitops-"
# The kubelet's CFS period (cpuCFSQuotaPeriod default) and the smallest quota it sets (1 ms).
CPU_PERIOD_US = 100_000
MIN_CPU_QUOTA_US = 1_000
# How long removing a cgroup waits for the processes it killed to exit.
REMOVE_TIMEOUT_SECONDS = 10.0

# Kubernetes resource quantities (k8s.io/apimachinery resource.Quantity): a decimal number, then
# either an exponent (e3, E-2) or a suffix; "1E" is one exa, "1E3" a thousand.
_QUANTITY = re.compile(r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))(?:(?P<exponent>[eE][+-]?\d+)|(?P<suffix>[a-zA-Z]*))$")
_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"), "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40), "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")  # a pod or container name (DNS subdomain / label)
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


class CgroupError(AirflowGitopsError):
    """A container's cgroup cannot be made or used: no usable controller, no permission, stuck processes."""


# --- Quantities ---------------------------------------------------------------------------------


def _quantity(q: str | int | float, what: str) -> Decimal:
    """A Kubernetes quantity as an exact decimal, ValueError naming the value when it is not one."""
    if isinstance(q, bool):  # YAML's `yes` is not a quantity, though bool is an int
        raise ValueError(f"{what} {q!r} is not a Kubernetes quantity")
    if isinstance(q, int):
        value = Decimal(q)
    elif isinstance(q, float):
        if not math.isfinite(q):
            raise ValueError(f"{what} {q!r} is not a Kubernetes quantity")
        value = Decimal(repr(q))
    elif isinstance(q, str):
        match = _QUANTITY.match(q.strip())
        if not match:
            raise ValueError(f"{what} {q!r} is not a Kubernetes quantity (examples: 512Mi, 1Gi, 1e9, 500m, 1.5)")
        suffix = match["suffix"] or ""
        if suffix not in _SUFFIXES:
            raise ValueError(f"{what} {q!r} has an unknown suffix {suffix!r} "
                             f"(Kubernetes knows {', '.join(s for s in _SUFFIXES if s)})")
        try:
            value = Decimal(match["number"]) * (Decimal(f"1{match['exponent']}") if match["exponent"] else _SUFFIXES[suffix])
        except InvalidOperation as e:
            raise ValueError(f"{what} {q!r} is not a Kubernetes quantity") from e
    else:
        raise ValueError(f"{what} {q!r} is not a Kubernetes quantity (a string or a number)")
    if value < 0:
        raise ValueError(f"{what} {q!r} is negative")
    return value


def parse_memory(q: str | int) -> int:
    """Bytes of a memory quantity ("512Mi", "1G", "1.5Gi", "129e6", 1073741824); a fraction of a
    byte is rounded up, as Kubernetes rounds it."""
    return math.ceil(_quantity(q, "memory quantity"))


def parse_cpu(q: str | int | float) -> int:
    """Millicores of a CPU quantity ("500m", "1", "1.5", 0.25, "2e-1"); rounded up to a whole
    millicore, as Kubernetes rounds it."""
    return math.ceil(_quantity(q, "cpu quantity") * 1000)


# --- Where the cgroups go -----------------------------------------------------------------------


@dataclass(frozen=True)
class CgroupLayout:
    """The cgroup version in use and, per controller, the directory under which the environments'
    parents are made (v2: one directory for both; v1: one per hierarchy; no "cpu" when there is no
    usable CPU controller, which only matters once a CPU limit is set)."""

    version: int
    bases: Mapping[str, Path]

    def directories(self) -> list[Path]:
        """The distinct base directories, memory's first."""
        seen: list[Path] = []
        for path in self.bases.values():
            if path not in seen:
                seen.append(path)
        return seen


@dataclass(frozen=True)
class _Mount:
    fstype: str
    mountpoint: Path
    root: str
    options: frozenset[str]


def _unescape(field: str) -> str:
    """A path of /proc/self/mountinfo, whose spaces and the like are octal escapes (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)


def _cgroup_mounts() -> list[_Mount]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        fstype = fields[dash + 1]
        if fstype in ("cgroup", "cgroup2"):
            options = frozenset(fields[dash + 3].split(",")) if len(fields) > dash + 3 else frozenset()
            mounts.append(_Mount(fstype, Path(_unescape(fields[4])), _unescape(fields[3]), options))
    return mounts


def _own_cgroups() -> dict[str, str]:
    """Controller list ("" for v2, "cpu,cpuacct", "memory", ...) -> this process's cgroup path."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    return own


def _directory_of(mount: _Mount, path: str) -> Path:
    """The directory of cgroup `path` (as /proc/self/cgroup names it) in `mount`."""
    if mount.root != "/" and (path == mount.root or path.startswith(mount.root + "/")):
        path = path[len(mount.root):]
    return mount.mountpoint / path.lstrip("/")


def _read_words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _v2_base(mount: _Mount, own: Path) -> tuple[Path | None, str]:
    """Where environments' parents go on cgroup v2, or None and why not."""
    available = _read_words(own / "cgroup.controllers")
    if "memory" not in available:
        return None, (f"cgroup v2 at {mount.mountpoint} does not offer the memory controller to {own} "
                      f"(cgroup.controllers: {' '.join(sorted(available)) or 'none'})")
    wanted = {"memory", "cpu"} & available
    enabled = _read_words(own / "cgroup.subtree_control")
    if wanted <= enabled:
        return own, ""
    try:
        for controller in sorted(wanted - enabled):
            (own / "cgroup.subtree_control").write_text(f"+{controller}")
        return own, ""
    except OSError as e:
        if e.errno == errno.EBUSY and own != mount.mountpoint:
            # Processes in `own` (this one) forbid enabling controllers for its children; its parent
            # does enable them (they are in own's cgroup.controllers), so the parent goes beside it.
            return own.parent, ""
        if e.errno == errno.EBUSY:
            return None, (f"cgroup v2 at {mount.mountpoint}: the memory controller cannot be enabled below {own}, "
                          "which holds processes (v2 passes controllers only through cgroups without processes); "
                          f"move this shell into a child cgroup first: mkdir {own}/init && echo $$ > {own}/init/cgroup.procs")
        return None, f"cgroup v2 at {mount.mountpoint}: cannot enable the memory controller below {own}: {e.strerror}"


def detect_layout() -> CgroupLayout:
    """The cgroup version to use and where: v2 when its memory controller is usable, else v1; a
    CgroupError naming what is missing when neither is."""
    mounts = _cgroup_mounts()
    own = _own_cgroups()
    problems = []
    v2 = next((m for m in mounts if m.fstype == "cgroup2"), None)
    if v2 is None:
        problems.append("no cgroup v2 hierarchy is mounted")
    elif "" not in own:
        problems.append(f"this process is in no cgroup of the cgroup v2 hierarchy at {v2.mountpoint}")
    else:
        base, why = _v2_base(v2, _directory_of(v2, own[""]))
        if base is not None:
            enabled = _read_words(base / "cgroup.subtree_control")
            return CgroupLayout(2, {c: base for c in ("memory", "cpu") if c in enabled})
        problems.append(why)
    bases = {}
    for controller in ("memory", "cpu"):
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.options), None)
        membership = next((path for names, path in own.items() if controller in names.split(",")), None)
        if mount is not None and membership is not None:
            bases[controller] = _directory_of(mount, membership)
    if "memory" in bases:
        return CgroupLayout(1, bases)
    problems.append("no cgroup v1 hierarchy with the memory controller is mounted")
    raise CgroupError("no usable memory cgroup controller, so container memory limits cannot be applied: "
                      + "; ".join(problems) + ". Run on a Linux host (or a privileged container with a writable "
                      "/sys/fs/cgroup) with cgroup v2 and its memory controller enabled (systemd's default), or "
                      "mount cgroup v1's: mount -t cgroup -o memory cgroup /sys/fs/cgroup/memory")


def _check_name(value: str, what: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not isinstance(value, str) or not pattern.match(value) or len(value) > 253:
        raise ValueError(f"{what} {value!r} cannot name a cgroup (letters, digits, '-', '.', at most 253 characters)")
    return value


def environment_directories(environment: str, layout: CgroupLayout | None = None) -> list[Path]:
    """The parent cgroup directories of an environment, one per hierarchy (they may not exist)."""
    _check_name(environment, "environment", _ENVIRONMENT)
    layout = layout or detect_layout()
    return [base / f"{PARENT_PREFIX}{environment}" for base in layout.directories()]


# --- Making, emptying and removing cgroup directories --------------------------------------------


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise CgroupError(f"cannot write {value!r} to {path}: {e.strerror}"
                          + (" (cgroups need root)" if e.errno in (errno.EACCES, errno.EPERM) else "")) from e


def _make_directory(path: Path) -> None:
    try:
        path.mkdir(exist_ok=True)
    except OSError as e:
        hint = {errno.EACCES: " (creating cgroups needs root)", errno.EPERM: " (creating cgroups needs root)",
                errno.EROFS: " (the cgroup filesystem is read-only: in a container, run it privileged "
                             "with a writable /sys/fs/cgroup)"}.get(e.errno or 0, "")
        raise CgroupError(f"cannot create the cgroup {path}: {e.strerror}{hint}") from e


def _live_pids(directory: Path) -> list[int]:
    """Processes in the cgroup, zombies left out (they are gone already and cannot be killed)."""
    try:
        pids = [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []
    live = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2:].split()[0] not in ("Z", "X"):
            live.append(pid)
    return live


def _kill_all(directory: Path, timeout: float) -> None:
    """SIGKILL everything in the cgroup (children forked meanwhile too), until it is empty."""
    deadline = time.monotonic() + timeout
    kill_file = directory / "cgroup.kill"  # v2 since Linux 5.14: atomic, no race with fork
    while pids := _live_pids(directory):
        if kill_file.exists():
            try:
                kill_file.write_text("1")
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise CgroupError(f"processes {', '.join(map(str, pids))} in {directory} did not exit within "
                              f"{timeout:.0f} s of SIGKILL (stuck in the kernel, state D?)")
        time.sleep(0.02)


def _remove_tree(directory: Path, timeout: float = REMOVE_TIMEOUT_SECONDS) -> None:
    """Removes a cgroup and the cgroups below it, killing their processes; nothing if it is gone."""
    if not directory.is_dir():
        return
    for child in sorted((p for p in directory.iterdir() if p.is_dir()), reverse=True):
        _remove_tree(child, timeout)
    _kill_all(directory, timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            # EBUSY: a killed process is still on its way out (v2 counts it until it has exited).
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise CgroupError(f"cannot remove the cgroup {directory}: {e.strerror}") from e
            _kill_all(directory, timeout)
            time.sleep(0.02)


def remove_environment(environment: str, layout: CgroupLayout | None = None) -> None:
    """Removes every cgroup of the environment, killing whatever still runs in them: the leftovers
    of a run that crashed. Nothing happens when there are none."""
    for directory in environment_directories(environment, layout):
        _remove_tree(directory)


# --- A container's cgroup -----------------------------------------------------------------------

# Joins the cgroups given before "--" (each cgroup.procs file), then execs the rest: the command and
# whatever it starts are inside from their first instruction. `ip netns exec` mounts a /sys of its
# own, without /sys/fs/cgroup: under it the files are missing, hence the hint.
_JOIN_SCRIPT = ('for p do shift; [ "$p" = -- ] && break; echo $$ > "$p" || { '
                'echo "$0: cannot join the cgroup of $p; under ip netns exec /sys/fs/cgroup is hidden: '
                'wrap the ip netns exec command line, not the other way round" >&2; exit 125; }; done; exec "$@"')


class ContainerCgroup:
    """The cgroup of one container of a pod: limits, the command line that runs inside it, its
    memory peak and OOM kills. Made when constructed; a leftover of the same container (a
    restart, a crashed run) is removed first, so its counters start from zero."""

    def __init__(self, environment: str, pod: str, container: str, *, layout: CgroupLayout | None = None) -> None:
        self.environment = _check_name(environment, "environment", _ENVIRONMENT)
        self.pod = _check_name(pod, "pod name")
        self.container = _check_name(container, "container name")
        self.layout = layout or detect_layout()
        self.version = self.layout.version
        name = f"{pod}_{container}"  # "_" is in neither name: unambiguous, and no control file's name
        self.parents = environment_directories(environment, self.layout)
        self.directories = [parent / name for parent in self.parents]
        self._by_controller = {c: base / f"{PARENT_PREFIX}{environment}" / name for c, base in self.layout.bases.items()}
        for parent, directory in zip(self.parents, self.directories):
            _make_directory(parent)
            if self.version == 2:
                self._enable_controllers(parent)
            _remove_tree(directory)
            _make_directory(directory)

    def _enable_controllers(self, parent: Path) -> None:
        """v2: a cgroup's children get only the controllers it enables in cgroup.subtree_control."""
        enabled = _read_words(parent / "cgroup.subtree_control")
        for controller in self.layout.bases:
            if controller not in enabled:
                _write(parent / "cgroup.subtree_control", f"+{controller}")

    @property
    def memory_directory(self) -> Path:
        return self._by_controller["memory"]

    def _cpu_directory(self) -> Path:
        directory = self._by_controller.get("cpu")
        if directory is None:
            raise CgroupError(f"a CPU limit cannot be applied to {self.pod}/{self.container}: no usable cpu cgroup "
                              f"controller (cgroup v{self.version}; v2 needs cpu in cgroup.controllers, v1 a mounted "
                              "cpu hierarchy: mount -t cgroup -o cpu,cpuacct cgroup /sys/fs/cgroup/cpu,cpuacct)")
        return directory

    def set_limits(self, memory_bytes: int | None, cpu_millis: int | None) -> None:
        """Memory limit in bytes and CPU limit in millicores; None or 0 for none, as the kubelet
        treats a limit of 0."""
        for value, what in ((memory_bytes, "memory_bytes"), (cpu_millis, "cpu_millis")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"{what} must be a non-negative int or None, not {value!r}")
        self._set_memory(memory_bytes or None)
        if cpu_millis or "cpu" in self._by_controller:
            self._set_cpu(cpu_millis or None)

    def _set_memory(self, limit: int | None) -> None:
        d = self.memory_directory
        if self.version == 2:
            _write(d / "memory.max", "max" if limit is None else str(limit))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "max" if limit is None else "0")
            if (d / "memory.oom.group").exists():
                _write(d / "memory.oom.group", "1")
            return
        value = "-1" if limit is None else str(limit)
        files = [d / "memory.limit_in_bytes"]
        if (d / "memory.memsw.limit_in_bytes").exists():  # swap accounted: memory + swap = memory, no swap
            files.append(d / "memory.memsw.limit_in_bytes")
        # memsw may never be below the memory limit: lowering goes memory first, raising memsw first.
        try:
            for path in files:
                path.write_text(value)
        except OSError:
            for path in reversed(files):
                _write(path, value)

    def _set_cpu(self, millis: int | None) -> None:
        d = self._cpu_directory()
        quota = None if millis is None else max(MIN_CPU_QUOTA_US, millis * CPU_PERIOD_US // 1000)
        if self.version == 2:
            _write(d / "cpu.max", f"{'max' if quota is None else quota} {CPU_PERIOD_US}")
        else:
            _write(d / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(d / "cpu.cfs_quota_us", "-1" if quota is None else str(quota))

    def procs_files(self) -> list[Path]:
        """The cgroup.procs file of each of the container's cgroups (one on v2, one per hierarchy on v1)."""
        return [directory / "cgroup.procs" for directory in self.directories]

    def wrap(self, argv: Sequence[str]) -> list[str]:
        """A command line that joins this cgroup and then execs argv: everything the container
        starts is inside. Exit status 125 when joining fails (the shell says why on stderr). The
        outermost wrapper: wrap([*pod.prefix(), ...]), since `ip netns exec` hides /sys/fs/cgroup."""
        if not argv:
            raise ValueError("wrap() needs a command to run")
        return ["/bin/sh", "-c", _JOIN_SCRIPT, "airflow-gitops-cgroup", *map(str, self.procs_files()), "--", *argv]

    def pids(self) -> list[int]:
        """The processes in the container's cgroups now, zombies left out."""
        return sorted({pid for directory in self.directories for pid in _live_pids(directory)})

    def _read(self, name: str) -> str:
        path = self.memory_directory / name
        try:
            return path.read_text()
        except FileNotFoundError as e:
            if not self.memory_directory.exists():
                raise CgroupError(f"the cgroup of {self.pod}/{self.container} was removed ({self.memory_directory})") from e
            raise CgroupError(f"{path} does not exist: this kernel does not report it "
                              f"({'memory.peak needs Linux 5.19' if name == 'memory.peak' else 'too old a kernel'})") from e

    def memory_current(self) -> int:
        """Bytes charged to the container now."""
        return int(self._read("memory.current" if self.version == 2 else "memory.usage_in_bytes"))

    def memory_peak(self) -> int:
        """The most bytes ever charged to the container at once."""
        return int(self._read("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"))

    def oom_kills(self) -> int:
        """How many processes of the container the OOM killer has killed."""
        text = self._read("memory.events" if self.version == 2 else "memory.oom_control")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        raise CgroupError(f"{self.memory_directory} does not count OOM kills (oom_kill needs Linux 4.13)")

    def remove(self) -> None:
        """Kills what is left inside, waits for it to exit, removes the cgroups. Idempotent."""
        for directory in self.directories:
            _remove_tree(directory)


class EnvironmentCgroups:
    """The containers' cgroups of one environment (what `environment_cgroups` yields)."""

    def __init__(self, environment: str, layout: CgroupLayout | None = None) -> None:
        self.environment = _check_name(environment, "environment", _ENVIRONMENT)
        self.layout = layout or detect_layout()

    def container(self, pod: str, container: str) -> ContainerCgroup:
        return ContainerCgroup(self.environment, pod, container, layout=self.layout)

    def directories(self) -> list[Path]:
        return environment_directories(self.environment, self.layout)

    def remove(self) -> None:
        remove_environment(self.environment, self.layout)


@contextmanager
def environment_cgroups(environment: str) -> Iterator[EnvironmentCgroups]:
    """The environment's cgroups, all removed when the block ends, also when it fails (what still
    runs in them is killed)."""
    cgroups = EnvironmentCgroups(environment)
    try:
        yield cgroups
    finally:
        cgroups.remove()
