"""Target files read and written round-trip: comments, key order, quoting and flow style kept, so a
command's edit shows in review as the lines it changed and nothing else."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from .errors import LifecycleError

# Kubernetes names are built from it (namespace airflow-<name>, at most 63 characters) and it names
# compiled/<name>/ and the store keys.
ENVIRONMENT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,46}[a-z0-9])?$")
NOT_ENVIRONMENTS = {"bootstrap"}


def check_name(name: str) -> None:
    if name in NOT_ENVIRONMENTS:
        raise LifecycleError(f"{name!r} is reserved: compiled/{name}/ holds the objects that bring environments into a cluster")
    if not ENVIRONMENT_NAME.match(name):
        raise LifecycleError(f"{name!r} is not a valid environment name: lowercase letters, digits and '-', starting and "
                             "ending with a letter or digit, at most 48 characters (it becomes the namespace airflow-<name>)")


def check_environment(root: Path, name: str, option: str = "") -> None:
    """`name` must be an environment of the inventory (`option`: the command-line flag that gave it)."""
    from .. import inventory

    known = inventory.list_targets(root)  # inventory/targets/*.yml: the bootstrap lives deeper
    if name not in known:
        raise LifecycleError(f"{option + ' ' if option else ''}{name}: no environment inventory/targets/{name}.yml "
                             f"(environments: {', '.join(known)})")


def _yaml() -> YAML:
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)  # the inventory's layout: "  - item" under a key
    yaml.width = 4096  # never fold a long line the author wrote on one
    yaml.preserve_quotes = True
    return yaml


def load(text: str, origin: str) -> CommentedMap:
    try:
        document = _yaml().load(text)
    except Exception as error:
        raise LifecycleError(f"{origin}: not readable YAML: {error}") from error
    if not isinstance(document, CommentedMap):
        raise LifecycleError(f"{origin}: a target file is a mapping with classes and parameters")
    return document


def dump(document: CommentedMap) -> str:
    out = io.StringIO()
    _yaml().dump(document, out)
    return out.getvalue()


def get(document: Any, path: tuple[str, ...]) -> Any:
    """The value at `path`, or None when any part of it is absent."""
    node: Any = document
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def set_value(document: CommentedMap, path: tuple[str, ...], value: Any) -> None:
    """Set `path` to `value`, creating the mappings on the way (appended after their siblings)."""
    node = document
    for key in path[:-1]:
        child = node.get(key)
        if child is None:
            child = CommentedMap()
            node[key] = child
        elif not isinstance(child, dict):
            raise LifecycleError(f"{'.'.join(path)}: {key} holds a {type(child).__name__}, not a mapping")
        node = child
    node[path[-1]] = value


def strings(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every string value under `node` with its path (list items by index)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from strings(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from strings(value, (*path, str(index)))
    elif isinstance(node, str):
        yield path, node


def replace_at(document: CommentedMap, path: tuple[str, ...], value: str) -> None:
    """Replace the string at `path` (as `strings` names it: list items by index), keeping its quoting."""
    parent: Any = document
    for key in path[:-1]:
        parent = parent[int(key)] if isinstance(parent, list) else parent[key]
    last = path[-1]
    old = parent[int(last)] if isinstance(parent, list) else parent[last]
    new = type(old)(value) if type(old) is not str else value  # a quoted scalar stays quoted
    if isinstance(parent, list):
        parent[int(last)] = new
    else:
        parent[last] = new
