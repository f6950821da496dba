"""A DiffResult as text for the terminal, Markdown for a pull-request comment, or JSON."""

from __future__ import annotations

import json
import re
from typing import Any

from .compare import DiffResult, EnvironmentDiff
from .objects import ABSENT, FieldChange, ObjectChange

MARKER = "<!-- airflow-gitops-diff -->"
COMMENT_LIMIT = 65536  # GitHub's largest comment, in characters
VALUE_WIDTH = 160
SHA256 = re.compile(r"^[0-9a-f]{64}$")
SIGNS = {"added": "+", "removed": "-", "changed": "~"}


def _value(value: Any) -> str:
    if isinstance(value, str) and SHA256.match(value):
        return value[:12] + "..."  # a checksum: its change is what matters
    if value is ABSENT:
        return "(absent)"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, sort_keys=True, default=str)
    elif value is None:
        text = "null"
    elif isinstance(value, str):
        text = value if value and value.strip() == value and "\n" not in value else json.dumps(value)
    else:
        text = json.dumps(value) if isinstance(value, bool) else str(value)
    return text if len(text) <= VALUE_WIDTH else text[:VALUE_WIDTH - 3] + "..."


def field_line(change: FieldChange) -> str:
    if change.secret:
        if change.old is ABSENT:
            return f"{change.path}: added ({_value(change.new)})"
        if change.new is ABSENT:
            return f"{change.path}: removed (was {_value(change.old)})"
        same = change.old == change.new
        return f"{change.path}: value changed ({_value(change.new) if same else _value(change.old) + ' -> ' + _value(change.new)})"
    return f"{change.path}: {_value(change.old)} -> {_value(change.new)}"


def object_header(change: ObjectChange) -> str:
    where = change.path if not change.old_path else f"{change.old_path} -> {change.path}"
    renamed = f" (replaced: {change.old_name} -> {change.name})" if change.old_name else ""
    return f"{SIGNS[change.status]} {change.label}{renamed}  [{where}]"


def _counts(env: EnvironmentDiff) -> str:
    if env.status == "unchanged":
        return "no change"
    counts = {s: sum(1 for o in env.objects if o.status == s) for s in ("changed", "added", "removed")}
    text = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no object change"
    return f"environment {env.status}: {text}" if env.status in ("added", "removed") else text


def _impact_lines(env: EnvironmentDiff) -> list[str]:
    return env.impact.dangers + env.impact.lines


def _object_lines(env: EnvironmentDiff) -> list[str]:
    lines = []
    for change in env.objects:
        lines.append(object_header(change))
        lines += [f"    {field_line(f)}" for f in change.fields]
    return lines


def _short(commit: str) -> str:
    return commit[:12] if len(commit) == 40 else commit


def as_text(result: DiffResult) -> str:
    out = [f"compiled/: {_short(result.base)} -> {_short(result.head)}"]
    unchanged = [e.name for e in result.environments if e.status == "unchanged"]
    for env in result.environments:
        if env.status == "unchanged":
            continue
        out.append("")
        out.append(f"{env.name}: {_counts(env)}")
        impact = _impact_lines(env)
        if impact:
            out.append("  What it means for Airflow:")
            out += [f"    {line}" for line in impact]
        if env.objects:
            out.append("  Objects:")
            out += [f"    {line}" for line in _object_lines(env)]
    if unchanged:
        out += ["", f"unchanged: {', '.join(unchanged)}"]
    dangers = result.dangers
    out.append("")
    out.append(f"{dangers} danger{'' if dangers == 1 else 's'}" if dangers else "no danger")
    return "\n".join(out) + "\n"


def as_json(result: DiffResult) -> str:
    def obj(change: ObjectChange) -> dict[str, Any]:
        return {"status": change.status, "kind": change.kind, "name": change.name, "namespace": change.namespace,
                "path": change.path, "old_name": change.old_name, "old_path": change.old_path,
                "changes": [f.as_dict() for f in change.fields]}

    data = {
        "base": result.base, "head": result.head, "dangers": result.dangers,
        "environments": [{"name": e.name, "status": e.status, "dangers": e.impact.dangers, "impact": e.impact.lines,
                          "objects": [obj(o) for o in e.objects]} for e in result.environments],
    }
    return json.dumps(data, indent=2, default=str) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _fence(lines: list[str]) -> str:
    body = "\n".join(lines).replace("```", "`\u200b``")
    return f"```\n{body}\n```"


def as_markdown(result: DiffResult, limit: int = COMMENT_LIMIT) -> str:
    """A pull-request comment: the summary table in full, then one collapsible section per changed
    environment, shortened (never the summary) to stay under `limit` characters."""
    changed = [e for e in result.environments if e.status != "unchanged"]
    dangers = result.dangers
    head = [MARKER, "### airflow-gitops diff", "",
            f"`compiled/` {_short(result.base)} → {_short(result.head)}: {len(changed)} of "
            f"{len(result.environments)} environment{'' if len(result.environments) == 1 else 's'} changed, "
            + (f"**{dangers} danger{'' if dangers == 1 else 's'}**" if dangers else "no danger"), ""]
    if changed:
        head += ["| environment | objects | what it means for Airflow |", "| --- | --- | --- |"]
        for env in changed:
            impact = "<br>".join(("⚠️ **" + _cell(line) + "**") if line.startswith("DANGER") else _cell(line)
                                 for line in _impact_lines(env)) or "-"
            head.append(f"| {env.name} | {_counts(env)} | {impact} |")
    summary = "\n".join(head) + "\n"
    footer_full = ""
    truncated_note = ("\n_Some details were shortened to fit a comment: run `airflow-gitops diff --target ENV` "
                      "for all of them._\n")
    sections = []
    for env in changed:
        lines = _object_lines(env)
        title = f"<details><summary>{env.name}: {_counts(env)}</summary>\n\n"
        sections.append((title, lines))
    budget = limit - len(summary) - len(truncated_note) - 16
    fulls = [title + _fence(lines) + "\n\n</details>\n" for title, lines in sections]
    # Small sections whole first; what is left shared equally among the larger ones.
    allowed = [0] * len(sections)
    order = sorted(range(len(sections)), key=lambda i: len(fulls[i]))
    for placed, index in enumerate(order):
        share = max(budget, 0) // (len(order) - placed)
        allowed[index] = min(len(fulls[index]), share)
        budget -= allowed[index]
    rendered = []
    shortened = False
    for index, (title, lines) in enumerate(sections):
        if allowed[index] >= len(fulls[index]):
            rendered.append(fulls[index])
            continue
        shortened = True
        env_name = title.split("<summary>")[1].split(":")[0]
        more_text = "... {} more lines (run `airflow-gitops diff --target " + env_name + "`)"
        room = allowed[index] - len(title) - len(more_text) - 40
        kept: list[str] = []
        used = 0
        for line in lines:
            if used + len(line) + 1 > room:
                break
            kept.append(line)
            used += len(line) + 1
        if room > 0:
            rendered.append(title + _fence(kept + [more_text.format(len(lines) - len(kept))]) + "\n\n</details>\n")
    out = summary + ("\n" + "\n".join(r for r in rendered if r) if any(rendered) else "") + (truncated_note if shortened else footer_full)
    return out
