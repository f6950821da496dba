"""The airflow.cfg options an Airflow version knows, and how it reads each value, recorded for the
compile-time checks.

Airflow ignores a misspelt `[section] key` silently, and reads a value's type only when some code
first asks for it: `airflow config lint` passes `parallelism = lots`, the scheduler then stops.
The compile refuses both, by looking each key up in
`kapitan/schemas/airflow-config-options/<version>.json`, which this module writes from Airflow's
own configuration description (core and the providers in its environment) and its code. Each
option maps to the kind of value Airflow reads:

- "string": text, nothing to check (lists, class names given as text...);
- "boolean", "integer", "float", "timedelta" (whole seconds), "json", "import": what
  `conf.getboolean`, `getint`, `getfloat`, `gettimedelta`, `getjson`, `getimport` accept;
- a list: the only values `conf.validate()` lets Airflow start with (its `enums_options`).

The description's `type` is documentation, and Airflow's code disagrees with it for dozens of
options ([logging] remote_logging is a "string" read with getboolean; [triggerer]
triggerer_health_check_threshold a "float" the triggerer reads with getint). So the kind comes from
the code: every `.get<kind>("section", "key")` call in Airflow, its Task SDK and the installed
providers (a value read two ways must pass both), and from the description where no code reads
the option typed. Values Airflow's code handles before its typed read (`expose_config =
non-sensitive-only`) and its own defaults must pass, checked with Airflow's getters; an option
where they do not is left unchecked rather than refusing something Airflow accepts.
"""

from __future__ import annotations

import ast
import json
import subprocess
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from .airflow_env import AirflowEnvironment
from .errors import AirflowCheckError

OPTIONS_DIR = Path("kapitan") / "schemas" / "airflow-config-options"

# A kind is one of these names, or the list of allowed values of an enum.
Kind = str | list[str]

# Airflow's typed getters and the kind each reads; `get`, `getlist` and `getenumlist` refuse nothing.
GETTERS = {"getboolean": "boolean", "getint": "integer", "getfloat": "float", "gettimedelta": "timedelta",
           "getjson": "json", "getimport": "import"}
DESCRIBED = {"boolean": "boolean", "integer": "integer", "float": "float"}
# A value read both ways must pass the narrower (every getint value is a getfloat value).
NARROWER = {frozenset({"integer", "float"}): "integer"}

_DESCRIBE_SCRIPT = """
import json, warnings
warnings.simplefilter("ignore")
import airflow
from airflow.configuration import conf
try:  # before 3.2, providers' sections join the description only once the manager loaded them
    from airflow.providers_manager import ProvidersManager
    ProvidersManager().initialize_providers_configuration()
except Exception:
    pass
try:  # what `airflow config lint` knows of options removed or renamed since Airflow 2
    from airflow.cli.commands.config_command import CONFIGS_CHANGES
except Exception:
    CONFIGS_CHANGES = []
renamed = [[old_s, old_k, new_s, new_k, str(since)] for (new_s, new_k), (old_s, old_k, since) in conf.deprecated_options.items()]
renamed += [[c.config.section, c.config.option, c.renamed_to.section, c.renamed_to.option, "3.0"]
            for c in CONFIGS_CHANGES if c.renamed_to is not None]
removed = [[c.config.section, c.config.option, c.suggestion or ""] for c in CONFIGS_CHANGES
           if c.was_removed and c.renamed_to is None]
print(json.dumps({
    "renamed": renamed,
    "removed": removed,
    "types": {s: {o: str(i.get("type") or "string") for o, i in v.get("options", {}).items()}
              for s, v in conf.configuration_description.items()},
    "defaults": {s: {o: conf.get_default_value(s, o) for o in v.get("options", {})}
                 for s, v in conf.configuration_description.items()},
    "enums": [[s, o, list(values)] for (s, o), values in conf.enums_options.items()],
    "code": list(airflow.__path__),
}))
"""

# Reads each [section, key, getter, value] with Airflow's own getter; prints those it refuses.
_REFUSED_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
from airflow.configuration import conf
refused = []
for section, key, getter, value in json.load(sys.stdin):
    try:
        conf.read_dict({section: {key: value.replace("%", "%%")}})  # stored as a file holds it
        getattr(conf, getter)(section, key)
    except Exception:
        refused.append([section, key, value])
print(json.dumps(refused))
"""


@dataclass
class CodeReads:
    """How Airflow's code reads options: the typed getters, and the text it compares a plain
    `conf.get` with before (or instead of) a typed read."""

    kinds: dict[tuple[str, str], set[str]]
    compared: dict[tuple[str, str], set[str]]


def _run_in_airflow(env: AirflowEnvironment, home: Path, script: str, stdin: str = "") -> str:
    result = subprocess.run(
        [str(env.python), "-c", script], input=stdin,
        capture_output=True, text=True, env={"AIRFLOW_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    if result.returncode != 0:
        raise AirflowCheckError(f"could not read Airflow's configuration description:\n{result.stderr[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def _string_names(tree: ast.Module) -> dict[str, set[str]]:
    """The strings a module assigns to each name or attribute (`SECTION = "common.io"`,
    `self.kubernetes_section = "kubernetes_executor"`): sections are often passed that way."""
    names: dict[str, set[str]] = defaultdict(set)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, (ast.Name, ast.Attribute)):
                    names[target.id if isinstance(target, ast.Name) else target.attr].add(node.value.value)
    return names


def _string(node: ast.expr | None, names: Mapping[str, set[str]]) -> str | None:
    """A literal string, or a name the module assigns exactly one string to."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    values = names.get(name, set()) if name else set()
    return next(iter(values)) if len(values) == 1 else None


def _literal_option(call: ast.Call, names: Mapping[str, set[str]]) -> tuple[str, str] | None:
    """("section", "key") of `x.get*("section", "key")` or `x.get*(section=..., key=...)`."""
    named = {k.arg: k.value for k in call.keywords}
    section, key = (_string(call.args[i] if len(call.args) > i else named.get(name), names)
                    for i, name in enumerate(("section", "key")))
    # Airflow lowers both before its lookup (its own code asks for "LOAD_EXAMPLES").
    return (section.lower(), key.lower()) if section is not None and key is not None else None


def _getter_call(node: ast.expr) -> ast.Call | None:
    """The `x.get(...)` call under `.lower()`, `.strip()`... of a comparison's left side."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("lower", "upper", "strip"):
        node = node.func.value
    return node if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" else None


def _strings(node: ast.expr) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for element in node.elts:
            yield from _strings(element)


def read_by_code(package_dirs: list[Path], described: Mapping[str, Mapping[str, object]]) -> CodeReads:
    """Scan Airflow's source for reads of described options whose section and key are known strings."""
    reads = CodeReads(defaultdict(set), defaultdict(set))
    # Only files that call a typed getter can type an option; skipping the others halves the scan.
    for path in sorted(p for d in package_dirs for p in Path(d).rglob("*.py")):
        source = path.read_text(errors="replace")
        if not any(f".{getter}(" in source for getter in GETTERS):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        names = _string_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in GETTERS:
                option = _literal_option(node, names)
                if option and option[1] in described.get(option[0], {}):
                    reads.kinds[option].add(GETTERS[node.func.attr])
            elif isinstance(node, ast.Compare) and (call := _getter_call(node.left)) and (option := _literal_option(call, names)):
                if option[1] in described.get(option[0], {}):
                    reads.compared[option].update(s for c in node.comparators for s in _strings(c))
    return reads


def _combine(kinds: set[str], section: str, key: str) -> str:
    if len(kinds) == 1:
        return next(iter(kinds))
    if frozenset(kinds) in NARROWER:
        return NARROWER[frozenset(kinds)]
    raise AirflowCheckError(f"Airflow's code reads [{section}] {key} as {' and '.join(sorted(kinds))}: "
                            "no single kind accepts only what both accept; extend config_options.NARROWER")


@dataclass
class OptionList:
    """What an Airflow version knows of airflow.cfg: every option and its kind, and the options it
    no longer reads (renamed: old -> (new section, new key, since); removed: old -> why)."""

    sections: dict[str, dict[str, Kind]]
    renamed: dict[tuple[str, str], tuple[str, str, str]]
    removed: dict[tuple[str, str], str]


def describe(env: AirflowEnvironment, home: Path) -> OptionList:
    """The option list of Airflow `env` (see the module docstring)."""
    described = json.loads(_run_in_airflow(env, home, _DESCRIBE_SCRIPT))
    sections = _kinds(env, home, described)
    # An option still described is not gone, whatever a lint rule from Airflow 2 says of it.
    renamed = {(os_, ok): (ns, nk, since) for os_, ok, ns, nk, since in described["renamed"]
               if ok not in sections.get(os_, {})}
    removed = {(s, k): why for s, k, why in described["removed"] if k not in sections.get(s, {}) and (s, k) not in renamed}
    return OptionList(sections, renamed, removed)


def describe_options(env: AirflowEnvironment, home: Path) -> dict[str, dict[str, Kind]]:
    """{section: {option: kind}} for every option Airflow `env` describes."""
    return describe(env, home).sections


def _kinds(env: AirflowEnvironment, home: Path, described: dict) -> dict[str, dict[str, Kind]]:
    types: dict[str, dict[str, str]] = described["types"]
    reads = read_by_code([Path(d) for d in described["code"]], types)
    kinds: dict[str, dict[str, Kind]] = {
        section: {key: _combine(reads.kinds[(section, key)], section, key) if reads.kinds.get((section, key))
                  else DESCRIBED.get(kind, "string")
                  for key, kind in options.items()}
        for section, options in types.items()
    }
    # Values Airflow gives a meaning to must pass the typed read (imports are not tried: their
    # defaults may name providers this environment lacks).
    trials = sorted({
        (section, key, getter, value)
        for section, options in kinds.items() for key, kind in options.items()
        for getter in [g for g, k in GETTERS.items() if k == kind and k != "import"]
        for value in {*reads.compared.get((section, key), ()), *[described["defaults"].get(section, {}).get(key)]}
        if isinstance(value, str)
    })
    for section, key, _ in json.loads(_run_in_airflow(env, home, _REFUSED_SCRIPT, json.dumps(trials))):
        kinds[section][key] = "string"
    for section, key, values in described["enums"]:
        if key in kinds.get(section, {}):
            if kinds[section][key] != "string":
                raise AirflowCheckError(f"[{section}] {key} is an enum Airflow also reads as {kinds[section][key]}")
            kinds[section][key] = list(values)
    return kinds


def _nested(pairs: Mapping[tuple[str, str], object]) -> dict[str, dict[str, object]]:
    nested: dict[str, dict[str, object]] = {}
    for (section, key), value in sorted(pairs.items()):
        nested.setdefault(section, {})[key] = value
    return nested


def render(version: str, options: OptionList) -> str:
    """Deterministic file content: {section: {option: kind}} for constant-time lookups in Jsonnet
    (go-jsonnet parses it for every target on every compile: nothing else goes in it)."""
    document = {
        "airflow_version": version,
        "generated_by": "airflow-gitops config-options",
        "sections": {s: dict(sorted(opts.items())) for s, opts in sorted(options.sections.items())},
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def render_retired(version: str, options: OptionList) -> str:
    """The options `version` renamed ({"to": "section.key", "since": version}) or removed (why): read
    by `upgrade`, and by the compile only to explain an option it refuses."""
    document = {
        "airflow_version": version,
        "generated_by": "airflow-gitops config-options",
        "renamed": _nested({old: {"to": f"{new_s}.{new_k}", "since": since}
                            for old, (new_s, new_k, since) in options.renamed.items()}),
        "removed": _nested(options.removed),
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def options_file(root: Path, version: str) -> Path:
    return root / OPTIONS_DIR / f"{version}.json"


def retired_file(root: Path, version: str) -> Path:
    return root / OPTIONS_DIR / f"{version}.retired.json"


def generate(root: Path, version: str) -> dict[Path, str]:
    """The option list files of Airflow `version` (path -> text), from Airflow itself (installed in
    its own virtualenv if needed)."""
    import tempfile

    from .airflow_env import ensure_airflow

    env = ensure_airflow(root, version)
    with tempfile.TemporaryDirectory(prefix="airflow-home-") as home:
        options = describe(env, Path(home))
    return {options_file(root, version): render(version, options), retired_file(root, version): render_retired(version, options)}


def record(root: Path, version: str) -> Path:
    """Write the option list files of Airflow `version` into the repository; the options file's path."""
    for path, text in generate(root, version).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return options_file(root, version)


def parse(text: str, retired_text: str | None) -> OptionList:
    """An option list from its files' texts (no renames or removals known without the second)."""
    retired = json.loads(retired_text) if retired_text else {}
    return OptionList(
        sections=json.loads(text)["sections"],
        renamed={(s, k): (*v["to"].split(".", 1), v["since"]) for s, keys in retired.get("renamed", {}).items()
                 for k, v in keys.items()},
        removed={(s, k): why for s, keys in retired.get("removed", {}).items() for k, why in keys.items()},
    )


def read(root: Path, version: str) -> OptionList:
    """The recorded option list of `version`."""
    retired = retired_file(root, version)
    return parse(options_file(root, version).read_text(), retired.read_text() if retired.is_file() else None)
