"""What every check receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "fail", "skip"]

# The not-an-environment target (compiled/bootstrap): checked where a check applies to it.
BOOTSTRAP = "bootstrap"


@dataclass
class Outcome:
    """One cell of the table: a check on one target."""

    status: Status
    reasons: list[str] = field(default_factory=list)

    @classmethod
    def ok(cls) -> "Outcome":
        return cls("ok")

    @classmethod
    def failed(cls, reasons: list[str]) -> "Outcome":
        return cls("fail", reasons) if reasons else cls("ok")

    @classmethod
    def skipped(cls, reason: str) -> "Outcome":
        return cls("skip", [reason])


@dataclass
class Context:
    """The repository being validated and the targets asked for."""

    root: Path
    environments: list[str]
    include_bootstrap: bool
    # Filled by the runner before the checks run: target -> parameters.airflow (None if unreadable).
    parameters: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # target -> why its parameters could not be read.
    inventory_errors: dict[str, str] = field(default_factory=dict)

    @property
    def targets(self) -> list[str]:
        return [*self.environments, *([BOOTSTRAP] if self.include_bootstrap else [])]

    @cached_property
    def compiled(self) -> Path:
        return self.root / "compiled"

    def kubernetes_version(self, target: str) -> str:
        params = self.parameters.get(target)
        if params:
            return str(params.get("kubernetes_version", "1.33"))
        versions = sorted((str(p["kubernetes_version"]) for p in self.parameters.values() if p),
                          key=lambda v: tuple(int(x) for x in v.split(".")))
        return versions[0] if versions else "1.33"
