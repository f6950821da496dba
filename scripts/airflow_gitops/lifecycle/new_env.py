"""`new-env NAME --from ENV`: a target file for NAME that is ENV's with what must differ changed.

ENV's target file is copied with its classes, comments and layout; every value (and comment) that
names ENV as a word names NAME instead: the DAG ref `staging` becomes `qa`, the URL
https://airflow-staging.acme.internal becomes https://airflow-qa.acme.internal, an OAuth client
airflow-staging becomes airflow-qa. The namespace, the store key prefix and the refs come from the
target's name already. A value that must differ between two environments but does not name ENV
(a URL, namespace, store prefix or database name set by hand) is refused unless given with --set:
two environments would otherwise share a URL or a database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import target_file
from .errors import LifecycleError
from .workspace import Change

# Values two environments may never share; each is refused when copied as it is.
OWN_VALUES = (
    ("parameters", "airflow", "namespace"),
    ("parameters", "airflow", "api_server", "base_url"),
    ("parameters", "airflow", "api_server", "ingress", "host"),
    ("parameters", "airflow", "secrets", "external_secrets", "key_prefix"),
    ("parameters", "airflow", "database", "external", "database"),
)


@dataclass
class NewEnvironment:
    name: str
    source: str
    change: Change
    # (key, old, new): what was changed from the source's values.
    replaced: list[tuple[str, str, str]] = field(default_factory=list)


def _word(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", re.IGNORECASE)


def _rename_in(text: str, source: str, name: str) -> str:
    """`source` as a word -> `name`, keeping a capital first letter (a comment's "Staging:")."""
    def one(match: re.Match[str]) -> str:
        return name[:1].upper() + name[1:] if match.group(0)[:1].isupper() else name
    return _word(source).sub(one, text)


# A line's comment: a `#` at the start or after a blank, outside quotes.
_COMMENT = re.compile(r"""^(?P<head>(?:[^'"#]|'[^']*'|"[^"]*")*?)(?P<comment>(?:(?<=\s)|^)#.*)$""")


def _comments_renamed(text: str, source: str, name: str) -> str:
    """Comments name the new environment too ("# Staging: DAGs from the staging branch")."""
    out = []
    for line in text.splitlines(keepends=True):
        match = _COMMENT.match(line.rstrip("\n"))
        if match:
            line = match["head"] + _rename_in(match["comment"], source, name) + ("\n" if line.endswith("\n") else "")
        out.append(line)
    return "".join(out)


def parse_settings(settings: list[str]) -> dict[tuple[str, ...], Any]:
    """--set parameters.airflow.key=value (value read as YAML: 3, true, [a, b] keep their types)."""
    import yaml

    parsed: dict[tuple[str, ...], Any] = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        path = tuple(key.strip().split("."))
        if not sep or not key.strip() or path[:2] != ("parameters", "airflow") or len(path) < 3 or "" in path:
            raise LifecycleError(f"--set {setting}: expected parameters.airflow.<key>=<value>, e.g. "
                                 "--set parameters.airflow.api_server.base_url=https://airflow-qa.example.com")
        parsed[path] = yaml.safe_load(value) if value.strip() else ""
    return parsed


def plan(root: Path, name: str, source: str, dag_ref: str | None = None,
         settings: dict[tuple[str, ...], Any] | None = None) -> NewEnvironment:
    target_file.check_name(name)
    target_file.check_environment(root, source, "--from")
    for taken in (f"inventory/targets/{name}.yml", f"compiled/{name}", f"kapitan/refs/targets/{name}"):
        if (root / taken).exists():
            hint = " (left by a removed environment: delete it, or choose another name)" if "refs" in taken else ""
            raise LifecycleError(f"{name}: {taken} already exists{hint}")
    origin = f"inventory/targets/{source}.yml"
    document = target_file.load((root / origin).read_text(), origin)
    settings = dict(settings or {})
    result = NewEnvironment(name=name, source=source, change=Change())
    word = _word(source)
    for path, value in list(target_file.strings(document.get("parameters") or {}, ("parameters",))):
        if path in settings or not word.search(value):
            continue
        new = _rename_in(value, source, name)
        target_file.replace_at(document, path, new)
        result.replaced.append((".".join(path), value, new))
    if dag_ref is not None:
        settings[("parameters", "airflow", "dags", "git_sync", "ref")] = dag_ref
    for path, value in settings.items():
        old = target_file.get(document, path)
        target_file.set_value(document, path, value)
        result.replaced.append((".".join(path), "" if old is None else str(old), str(value)))
    for path in OWN_VALUES:
        value = target_file.get(document, path)
        if isinstance(value, str) and value and path not in settings and not _word(name).search(value):
            raise LifecycleError(
                f"{origin}: {'.'.join(path)} is {value!r}, which {name} would share with {source}: give {name} its own with "
                f"--set {'.'.join(path)}=<value>")
    text = _comments_renamed(target_file.dump(document), source, name)
    header = f"# Made from {source} by `airflow-gitops new-env {name} --from {source}`.\n"
    result.change = Change(writes={f"inventory/targets/{name}.yml": header + text}, environments=[name], bootstrap=True)
    return result
