"""Object-level, field-level differences between two versions of an environment's files.

Objects are matched by kind and name (a file that moved between directories is the same object;
a Job whose name ends in a content hash, `airflow-db-migrate-<hash>`, is matched by the name
before the hash, and reported as replaced). Fields are paths (`spec.template.spec.containers[scheduler].image`);
list items with a name are addressed by it; airflow.cfg is compared by section and option, YAML
held in a string (a pod template) as its own structure, other long strings by line. Secret values
never leave this module: a Secret's data shows its Kapitan ref tag, without the tag's hash, and
"value changed".
"""

from __future__ import annotations

import configparser
import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .trees import ChangedFile

try:
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML without libyaml
    _Loader = yaml.SafeLoader


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


ABSENT: Any = _Missing()
HASHED_NAME = re.compile(r"^(?P<stem>.+)-(?P<hash>[0-9a-f]{10})$")
REF_TAG = re.compile(r"\?\{(?P<backend>[\w-]+):(?P<path>[^}:|]+)(?P<rest>[^}]*)\}")
SECRET_KINDS = {"Secret"}
LIST_KEYS = ("name", "mountPath", "secretKey", "containerPort", "key", "path", "namespace")


@dataclass(frozen=True)
class FieldChange:
    path: str
    old: Any
    new: Any
    secret: bool = False  # a Secret's value: old and new are ref tags (or "(hidden)"), never values

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "old": None if self.old is ABSENT else self.old,
                "new": None if self.new is ABSENT else self.new, **({"secret": True} if self.secret else {})}


@dataclass
class ObjectChange:
    """An object added, removed or changed in one environment."""

    status: str  # added | removed | changed
    kind: str
    name: str  # the head's name (the base's if removed)
    namespace: str | None
    path: str  # file under compiled/<env>/ (head's, base's if removed)
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    old_name: str | None = None  # set when a hashed name changed (a Job replaced)
    old_path: str | None = None
    fields: list[FieldChange] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name}"


def _load(data: bytes) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(data, Loader=_Loader) if isinstance(d, dict)]


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", ""))
    if obj.get("kind") == "Job":
        match = HASHED_NAME.match(name)
        if match:
            name = match.group("stem") + "-<hash>"
    group = str(obj.get("apiVersion", "")).rpartition("/")[0]
    return f"{obj.get('kind')}.{group}", str(meta.get("namespace") or ""), name


def _objects(files: list[ChangedFile], side: str) -> dict[tuple[str, str, str], tuple[str, dict[str, Any]]]:
    found = {}
    for f in files:
        data = getattr(f, side)
        if data is None or not f.path.endswith((".yaml", ".yml", ".json")):
            continue
        for index, obj in enumerate(_load(data)):
            key = _identity(obj)
            if obj.get("kind") == "Kustomization" and "kustomize.config.k8s.io" in str(obj.get("apiVersion")):
                key = (key[0], "", f.path)  # unnamed: identified by its file
            found[key] = (f.path, obj)
    return found


def compare_files(files: list[ChangedFile]) -> list[ObjectChange]:
    """Every object that differs between the old and new sides of these files."""
    old, new = _objects(files, "old"), _objects(files, "new")
    changes = []
    for key in sorted(old.keys() | new.keys(), key=lambda k: (k[0], k[2])):
        (old_path, old_obj), (new_path, new_obj) = old.get(key, (None, None)), new.get(key, (None, None))
        obj = new_obj if new_obj is not None else old_obj
        assert obj is not None
        meta = obj.get("metadata") or {}
        change = ObjectChange(
            status="added" if old_obj is None else "removed" if new_obj is None else "changed",
            kind=str(obj.get("kind")), name=str(meta.get("name", key[2])), namespace=meta.get("namespace"),
            path=str(new_path or old_path), old=old_obj, new=new_obj,
        )
        if old_obj is not None and new_obj is not None:
            old_name = str((old_obj.get("metadata") or {}).get("name"))
            if old_name != change.name:
                change.old_name = old_name
            if old_path != new_path:
                change.old_path = old_path
            change.fields = diff_object(old_obj, new_obj)
            if not change.fields and not change.old_name and not change.old_path:
                continue  # same object, other bytes (formatting)
        changes.append(change)
    return changes


# --- values --------------------------------------------------------------------------------------


def _key_path(prefix: str, key: Any) -> str:
    key = str(key)
    if re.fullmatch(r"[A-Za-z0-9_-]+", key) or ("/" in key and "." not in key and " " not in key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{key}]"


def _list_key(old: list[Any], new: list[Any]) -> str | None:
    items = old + new
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in LIST_KEYS:
        if all(key in i for i in items) and all(len({str(i[key]) for i in side}) == len(side) for side in (old, new)):
            return key
    return None


def redact(value: Any) -> Any:
    """A Secret's value as it may be shown: its ref tag without the hash, else "(hidden)"."""
    if value is ABSENT:
        return ABSENT
    if isinstance(value, str):
        tags = [f"?{{{m.group('backend')}:{m.group('path')}}}" for m in REF_TAG.finditer(value)]
        if tags:
            return " ".join(tags)
    return "(hidden)"


def _ini(text: str) -> dict[str, dict[str, str]] | None:
    if not re.search(r"^\[[^\]\n]+\]\s*$", text, re.MULTILINE):
        return None
    parser = configparser.RawConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    return {s: dict(parser.items(s)) for s in parser.sections()}


def _embedded_yaml(text: str) -> Any:
    try:
        value = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    return value if isinstance(value, (dict, list)) else None


def _strings(path: str, old: str, new: str) -> list[FieldChange]:
    if "\n" in old.strip() or "\n" in new.strip():
        old_ini, new_ini = _ini(old), _ini(new)
        if old_ini is not None and new_ini is not None:
            return [FieldChange(f"{path} [{section}] {option}", o, n)
                    for section in sorted(old_ini.keys() | new_ini.keys())
                    for option in sorted((old_ini.get(section) or {}).keys() | (new_ini.get(section) or {}).keys())
                    if (o := (old_ini.get(section) or {}).get(option, ABSENT)) != (n := (new_ini.get(section) or {}).get(option, ABSENT))]
        old_doc, new_doc = _embedded_yaml(old), _embedded_yaml(new)
        if old_doc is not None and new_doc is not None:
            return diff_values(old_doc, new_doc, path)
        lines = [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
                 if line[:1] in "+-" and not line.startswith(("+++", "---"))]
        return [FieldChange(f"{path} (line)", line[1:] if line[0] == "-" else ABSENT, line[1:] if line[0] == "+" else ABSENT)
                for line in lines]
    try:  # a JSON document in a string (dag_bundle_config_list, annotations)
        old_json, new_json = json.loads(old), json.loads(new)
        if isinstance(old_json, (dict, list)) and isinstance(new_json, (dict, list)):
            return diff_values(old_json, new_json, path)
    except ValueError:
        pass
    return [FieldChange(path, old, new)]


def _secret_fields(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """A Secret's data and stringData, key by key, as ref tags: "value changed" when the value did."""
    changes = []
    for section in ("data", "stringData"):
        o_map, n_map = old.get(section) or {}, new.get(section) or {}
        for key in sorted(o_map.keys() | n_map.keys(), key=str):
            o, n = o_map.get(key, ABSENT), n_map.get(key, ABSENT)
            if o != n:
                changes.append(FieldChange(_key_path(section, key), redact(o), redact(n), secret=True))
    return changes


def diff_object(old: dict[str, Any], new: dict[str, Any]) -> list[FieldChange]:
    """diff_values of two versions of one object; a Secret's values only as ref tags."""
    if old.get("kind") in SECRET_KINDS or new.get("kind") in SECRET_KINDS:
        strip = ("data", "stringData")
        rest = diff_values({k: v for k, v in old.items() if k not in strip}, {k: v for k, v in new.items() if k not in strip})
        return _secret_fields(old, new) + rest
    return diff_values(old, new)


def diff_values(old: Any, new: Any, path: str = "") -> list[FieldChange]:
    """The leaf-level changes from old to new, as paths."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(old.keys() | new.keys(), key=str):
            sub = _key_path(path, key)
            o, n = old.get(key, ABSENT), new.get(key, ABSENT)
            if o is ABSENT or n is ABSENT:
                changes.append(FieldChange(sub, o, n))
            else:
                changes += diff_values(o, n, sub)
        return changes
    if isinstance(old, list) and isinstance(new, list):
        key = _list_key(old, new)
        if key:
            old_items = {str(i[key]): i for i in old}
            new_items = {str(i[key]): i for i in new}
            changes = []
            for name in [*old_items, *(n for n in new_items if n not in old_items)]:
                o, n = old_items.get(name, ABSENT), new_items.get(name, ABSENT)
                sub = f"{path}[{name}]"
                if o is ABSENT or n is ABSENT:
                    changes.append(FieldChange(sub, o, n))
                else:
                    changes += diff_values(o, n, sub)
            return changes
        if len(old) == len(new):
            return [c for i, (o, n) in enumerate(zip(old, new)) for c in diff_values(o, n, f"{path}[{i}]")]
        return [FieldChange(path, old, new)]
    if isinstance(old, str) and isinstance(new, str):
        return _strings(path, old, new)
    return [FieldChange(path, old, new)]
