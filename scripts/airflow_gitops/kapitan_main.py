"""`python -m airflow_gitops.kapitan_main ARGS`: Kapitan's own command line (kapitan.cli.main), started
without importing two of its modules until they are used.

kapitan.cli imports, for `kapitan init` and `kapitan refs`, the project generator copier and every
cloud KMS client (boto3, Azure, Google): 0.34 s of the 0.48 s its import takes, before every compile,
for commands a compile never runs. Here those two modules are stand-ins that import the real module
the first time anything of it is used, so every command behaves as with the `kapitan` script.
Compiling refs of a KMS backend imports that backend on its own, as it does under the script.

It also gives Kapitan a worker pool that stops without killing its workers (kapitan_pool): the
standard one can hang for ever when a target fails (CPython gh-96995).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any

from . import kapitan_pool

# The module, and the names kapitan.cli imports from it.
DEFERRED = {
    "kapitan.initialiser": ("initialise_skeleton",),
    "kapitan.refs.cmd_parser": ("handle_refs_command",),
}


class _Deferred(types.ModuleType):
    """Stands for a module until something of it is used: then the real one replaces it."""

    def __init__(self, name: str, names: tuple[str, ...]):
        super().__init__(name)
        for attribute in names:
            setattr(self, attribute, self._forwarder(attribute))

    def _real(self) -> types.ModuleType:
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return importlib.import_module(self.__name__)

    def _forwarder(self, attribute: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            return getattr(self._real(), attribute)(*args, **kwargs)

        call.__name__ = attribute
        return call

    def __getattr__(self, attribute: str) -> Any:  # anything else: the real module's
        if attribute.startswith("__"):  # the import system's questions (__path__, __spec__...)
            raise AttributeError(attribute)
        return getattr(self._real(), attribute)


def prepare() -> None:
    """The stand-ins for the deferred modules, and the draining pool, in this process."""
    for name, names in DEFERRED.items():
        sys.modules.setdefault(name, _Deferred(name, names))
    kapitan_pool.install()


def main() -> int:
    prepare()
    from kapitan.cli import main as kapitan_main

    sys.argv[0] = "kapitan"
    return kapitan_main()


if __name__ == "__main__":
    sys.exit(main())
