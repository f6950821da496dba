"""Part of the secrets check, on the values a kapitan-refs environment deploys: the HMAC keys
(`[api_auth] jwt_secret`, `[api] secret_key`) are long enough for the algorithm that signs with
them, and the fernet key is one Airflow can use (one key, or `new,old` during a rotation).

Airflow 3 signs the Execution API tokens of tasks with HS512 when a jwt_secret is set and
`[api_auth] jwt_algorithm` is not (its config.yml), and its log-fetching tokens with `[api]
secret_key` and HS512 always (file_task_handler.py); PyJWT warns about any HMAC key shorter than
the hash's digest (`check_key_length`, RFC 7518 section 3.2): 64 bytes for HS512. The key is read
from the base64 ref file the compiled Secret's tag points at, decoded the way Kapitan reveals it.
Refs of encrypted backends (gpg, gkms, awskms, ...) cannot be read without their keys: not checked.
"""

from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path
from typing import Any

import yaml

# Their keys in the compiled Secret -> the option.
SIGNING_KEYS = {"jwt-secret": "[api_auth] jwt_secret", "api-secret-key": "[api] secret_key"}
# HMAC algorithms Airflow can use with a jwt_secret -> the digest size PyJWT asks of the key.
MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
AIRFLOW_DEFAULT = "HS512"
# ?{base64:targets/dev/jwt_secret:8fac91bb}
_TAG = re.compile(r"^\?\{(?P<type>[a-z0-9]+):(?P<path>[^:{}\s]+)(:[0-9a-f]+)?\}=*$")


def refs_path(root: Path) -> Path:
    """Where Kapitan keeps refs: `.kapitan`'s compile refs-path (Kapitan's default: refs)."""
    settings = yaml.safe_load((root / ".kapitan").read_text()) if (root / ".kapitan").is_file() else None
    compile_settings = settings.get("compile") if isinstance(settings, dict) else None
    configured = compile_settings.get("refs-path") if isinstance(compile_settings, dict) else None
    return root / (configured or "refs")


def reveal_base64(ref_file: Path) -> bytes:
    """The value of a Kapitan base64 ref file, as `kapitan refs --reveal` gives it (Base64Ref.reveal:
    the decoded bytes when they are text, else the base64 text itself)."""
    data = str(yaml.safe_load(ref_file.read_text())["data"])
    decoded = base64.b64decode(data)
    try:
        decoded.decode()
    except UnicodeDecodeError:
        return data.encode()
    return decoded


def _tags(compiled_env: Path, secret_key: str) -> list[str]:
    """The ref tags the environment's Secrets give as `secret_key`."""
    tags = []
    for path in sorted(compiled_env.rglob("secret-*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            if isinstance(obj, dict) and obj.get("kind") == "Secret":
                value = (obj.get("stringData") or {}).get(secret_key)
                if isinstance(value, str):
                    tags.append(value)
    return sorted(set(tags))


def _algorithm(params: dict[str, Any]) -> tuple[str, str]:
    """The algorithm that signs with the key, and where that comes from."""
    configured = ((params.get("config") or {}).get("api_auth") or {}).get("jwt_algorithm")
    if configured:
        return str(configured).split(",")[0].strip(), "parameters.airflow.config.api_auth.jwt_algorithm"
    return AIRFLOW_DEFAULT, "Airflow's jwt_algorithm when a jwt_secret is set"


def _fix(ref_file: str, target: str) -> str:
    return (f"Fix: `rm {ref_file} && make compile` generates a new key; commit it with compiled/{target}. Once it is "
            "applied, the pods that read it roll by themselves (checksum/secrets): tokens signed with the old key are "
            "no longer accepted, so tasks running across the roll fail and need a retry")


def _fernet_key_problem(value: str) -> str | None:
    """Why `value` (the Secret's fernet-key) is not a key list Airflow's MultiFernet accepts."""
    for key in value.split(","):
        try:
            ok = len(base64.urlsafe_b64decode(key.strip().encode())) == 32
        except (binascii.Error, ValueError):
            ok = False
        if not ok:
            return f"{key.strip()[:4]}…" if key.strip() else "an empty key"
    return None


def _base64_refs(root: Path, target: str, secret_key: str) -> list[tuple[str, Path, str]]:
    """(tag, ref file, the file as shown) of each base64 ref the environment's Secrets give as
    `secret_key` (refs of encrypted backends cannot be read without their keys: left out)."""
    found = []
    for tag in _tags(root / "compiled" / target, secret_key):
        m = _TAG.match(tag)
        if m and m["type"] == "base64":
            ref_file = refs_path(root) / m["path"]
            found.append((tag, ref_file, str(ref_file.relative_to(root)) if ref_file.is_relative_to(root) else str(ref_file)))
    return found


def _fernet_problems(root: Path, target: str) -> list[str]:
    """A fernet key ref that does not make a Fernet key: every Airflow process reading it would
    fail to encrypt or decrypt (e.g. a rotation step written from an empty shell variable)."""
    found = []
    for tag, ref_file, shown in _base64_refs(root, target, "fernet-key"):
        try:
            # The Secret appends what follows the tag (the first key's trailing `=`).
            value = reveal_base64(ref_file).decode() + tag[tag.rindex("}") + 1:]
        except (OSError, yaml.YAMLError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
            continue  # reported by the length check's reading, or not a base64 ref
        bad = _fernet_key_problem(value)
        if bad is not None:
            found.append(f"{shown}: [core] fernet_key is not a Fernet key ({bad} is not 32 bytes of URL-safe base64): "
                         "write it again as the README's fernet rotation says (`NEW,OLD` while rotating), then `make compile`")
    return found


def problems(root: Path, target: str, params: dict[str, Any] | None) -> list[str]:
    """Why the target's fernet key is unusable or an HMAC key too short for its algorithm (none
    when its secrets are not Kapitan refs, or when its refs cannot be read without keys)."""
    if not params or (params.get("secrets") or {}).get("mode") != "kapitan-refs":
        return []
    found = _fernet_problems(root, target)
    for secret_key, option in SIGNING_KEYS.items():
        if secret_key == "jwt-secret":
            algorithm, why = _algorithm(params)
        else:
            algorithm, why = AIRFLOW_DEFAULT, "Airflow's log-fetching tokens"
        minimum = MIN_BYTES.get(algorithm)
        if minimum is None:  # an asymmetric algorithm signs with a private key, not with jwt_secret
            continue
        found += _short_refs(root, target, secret_key, option, algorithm, why, minimum)
    return found


def _short_refs(root: Path, target: str, secret_key: str, option: str, algorithm: str, why: str, minimum: int) -> list[str]:
    found = []
    for _tag, ref_file, shown in _base64_refs(root, target, secret_key):
        try:
            length = len(reveal_base64(ref_file))
        except FileNotFoundError:
            found.append(f"{shown}: missing, but compiled/{target} uses it as {option}: "
                         f"run `make compile` (a new key) and commit the ref file")
            continue
        except (OSError, yaml.YAMLError, KeyError, TypeError, binascii.Error) as error:
            found.append(f"{shown}: not a Kapitan base64 ref file ({type(error).__name__}: {error})")
            continue
        if length < minimum:
            found.append(f"{shown}: {option} is {length} bytes long; {algorithm} ({why}) needs at least "
                         f"{minimum} (PyJWT warns below that, RFC 7518 section 3.2). " + _fix(shown, target))
    return found
