"""Check 6: no literal value in any Secret (only Kapitan ref tags), and nothing that looks like a
credential anywhere in compiled/ or the inventory: private keys, tokens, passwords in URLs or
under secret-sounding keys. And a kapitan-refs environment's HMAC keys long enough for the
algorithm signing with them, and its fernet key well-formed (key_values)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from . import key_values
from .model import Context, Outcome

NAME = "secrets"
# A Secret value is one Kapitan ref tag; the Fernet key's base64 padding may follow it.
REF_TAG = re.compile(r"^\?\{[a-z0-9]+:[^{}\s]+\}=*$")
# What is never a literal value: a ref tag, a $(VAR)/${VAR} expansion, a template, the
# inventory's reference to a secret value ({ref: PATH} or {secret_name: ..., secret_key: ...}).
INDIRECT = re.compile(r"^(\?\{|\$\(|\$\{|\{\{|%s|\{\s*(ref|secret_name)\s*:)")
CREDENTIAL_PATTERNS = {
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a GitHub token": re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})\b"),
    "a GitLab token": re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}\b"),
    "a Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}\b"),
    "an AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
}
# scheme://user:password@host with a literal password.
PASSWORD_IN_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?P<password>[^@\s/'\"]+)@")
SECRET_KEY_NAMES = re.compile(
    r"^\s*-?\s*[\"']?(?P<key>password|passwd|secret|token|api_?key|access_?key|private_?key|client_secret|"
    r"fernet_key|secret_key|jwt_secret)[\"']?\s*:\s*(?P<value>\S.*?)\s*$", re.IGNORECASE)


def _literal(value: str) -> bool:
    value = value.strip().strip("\"'")
    return bool(value) and value not in ("null", "~", "''", '""') and not INDIRECT.match(value) and not value.startswith("|")


def _long_enough(key: str, value: str) -> bool:
    """Any literal password is one; other secret-sounding keys (`secret_key: connection` names a
    key inside a Secret) only with a value long and opaque enough to be a credential."""
    value = value.strip().strip("\"'")
    return key.lower() in ("password", "passwd") or (len(value) >= 16 and " " not in value)


def scan_text(text: str, origin: str) -> list[str]:
    problems = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{origin}:{number}"
        for what, pattern in CREDENTIAL_PATTERNS.items():
            if pattern.search(line):
                problems.append(f"{where}: looks like {what}")
        url = PASSWORD_IN_URL.search(line)
        if url and _literal(url["password"]):
            problems.append(f"{where}: a password in a URL; take it from a Secret ($(VAR) expansion or a ref)")
        key = SECRET_KEY_NAMES.match(line)
        if key and _literal(key["value"]) and not line.lstrip().startswith("#") and _long_enough(key["key"], key["value"]):
            problems.append(f"{where}: '{key['key']}' holds a literal value; use a Kapitan ref or External Secrets")
    return problems


def secret_values(obj: dict, origin: str) -> list[str]:
    if not isinstance(obj, dict) or obj.get("kind") != "Secret":
        return []
    problems = []
    for field in ("data", "stringData"):
        for key, value in (obj.get(field) or {}).items():
            if not REF_TAG.match(str(value)):
                problems.append(f"{origin}: Secret {obj['metadata']['name']} {field}.{key} is not a Kapitan ref tag (a literal value in Git)")
    return problems


def _scan_tree(directory: Path, root: Path) -> list[str]:
    problems = []
    for path in sorted(directory.rglob("*")):
        # .md: the environment's overview page (compiled/<env>/README.md) is compiled text too.
        if not path.is_file() or path.suffix not in (".yaml", ".yml", ".json", ".cfg", ".txt", ".md", ""):
            continue
        text = path.read_text(errors="replace")
        origin = str(path.relative_to(root))
        problems += scan_text(text, origin)
        if path.suffix in (".yaml", ".yml"):
            for obj in yaml.safe_load_all(text):
                problems += secret_values(obj, origin)
    return problems


def run(ctx: Context) -> dict[str, Outcome]:
    # Classes are shared by every environment: a finding there concerns them all.
    shared = _scan_tree(ctx.root / "inventory" / "classes", ctx.root)
    outcomes = {}
    for target in ctx.targets:
        own = ctx.root / "inventory" / "targets" / f"{target}.yml"
        reasons = list(shared) + (scan_text(own.read_text(), str(own.relative_to(ctx.root))) if own.is_file() else [])
        reasons += _scan_tree(ctx.compiled / target, ctx.root)
        reasons += key_values.problems(ctx.root, target, ctx.parameters.get(target))
        outcomes[target] = Outcome.failed(reasons)
    return outcomes
