"""The validate report as a table (check x target) with the reasons below it, or as JSON."""

from __future__ import annotations

import json

from .runner import Report

SYMBOL = {"ok": "ok", "fail": "FAIL", "skip": "-"}
MAX_REASONS = 15


def as_table(report: Report) -> str:
    width = max(len(name) for name in report.outcomes) + 2
    columns = [max(len(t), 4) + 2 for t in report.targets]
    lines = ["check".ljust(width) + "".join(t.ljust(c) for t, c in zip(report.targets, columns))]
    for check, per_target in report.outcomes.items():
        lines.append(check.ljust(width) + "".join(SYMBOL[per_target[t].status].ljust(c) for t, c in zip(report.targets, columns)))
    failures = [(check, t, o) for check, per_target in report.outcomes.items() for t, o in per_target.items() if o.status == "fail"]
    if failures:
        lines.append("")
        for check, target, outcome in failures:
            lines.append(f"{target} / {check}:")
            shown = outcome.reasons[:MAX_REASONS]
            lines += [f"  - {reason}" for reason in shown]
            if len(outcome.reasons) > MAX_REASONS:
                lines.append(f"  ... and {len(outcome.reasons) - MAX_REASONS} more")
    verdict = "every check passed" if report.ok else f"{len(failures)} failed"
    lines += ["", f"{verdict} ({report.seconds:.1f} s)"]
    return "\n".join(lines)


def as_json(report: Report) -> str:
    return json.dumps({
        "ok": report.ok,
        "seconds": round(report.seconds, 2),
        "targets": report.targets,
        "checks": {check: {t: {"status": o.status, "reasons": o.reasons} for t, o in per_target.items()}
                   for check, per_target in report.outcomes.items()},
    }, indent=2)
