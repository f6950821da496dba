"""A container's probes as the kubelet keeps them: the manifest's settings over the kubelet's
defaults, and the results the status table reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The kubelet's defaults.
PROBE_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1, "successThreshold": 1,
                  "failureThreshold": 3}
PROBE_KINDS = ("startup", "liveness", "readiness")


@dataclass
class ProbeState:
    """What the status table reports of one probe of a container."""

    kind: str
    spec: Mapping
    last: str = "-"  # ok, fail, or - before the first run
    failures: int = 0  # in a row
    successes: int = 0  # in a row
    total_failures: int = 0

    def setting(self, key: str) -> float:
        return float(self.spec.get(key, PROBE_DEFAULTS[key]))

    def record(self, ok: bool) -> None:
        self.last = "ok" if ok else "fail"
        self.failures, self.successes = (0, self.successes + 1) if ok else (self.failures + 1, 0)
        self.total_failures += 0 if ok else 1

    def report(self) -> str:
        threshold = int(self.setting("failureThreshold"))
        failing = f" {self.failures}/{threshold}" if self.failures else ""
        total = f" ({self.total_failures} failed)" if self.total_failures else ""
        return f"{self.kind}:{self.last}{failing}{total}"
