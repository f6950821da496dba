"""Kapitan refs on either side of a diff, read only to compare values (never shown).

A base64 ref (the backend this repository's refs use) is a YAML file whose `data` is the value,
base64-encoded; refs of an encrypting backend (gpg, gkms, awskms, vault...) cannot be read here and
give None, as does a ref missing on that side.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from pathlib import Path

import yaml

from .. import gitcli
from .impact import RefValues

REFS = "kapitan/refs"


def decode(text: str | None) -> str | None:
    try:
        ref = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    if not isinstance(ref, dict) or ref.get("type") != "base64" or not isinstance(ref.get("data"), str):
        return None
    try:
        value = base64.b64decode(ref["data"], validate=True)
        if ref.get("encoding") == "base64":  # the value was stored base64-encoded itself
            value = base64.b64decode(value, validate=True)
        return value.decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def values_between(root: Path, base: str, head: str | Path) -> RefValues:
    """Ref values at `base` (a commit) and `head` (a commit, or the working tree at that path)."""
    @lru_cache(maxsize=None)
    def read(path: str, side: str) -> str | None:
        if ".." in path.split("/"):
            return None
        where = base if side == "old" else head
        if isinstance(where, Path):
            file = where / REFS / path
            return decode(file.read_text()) if file.is_file() else None
        shown = gitcli.run("show", f"{where}:{REFS}/{path}", cwd=root, check=False)
        return decode(shown.stdout) if shown.returncode == 0 else None
    return read
