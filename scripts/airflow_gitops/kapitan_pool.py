"""The worker pool Kapitan compiles with, under `airflow_gitops.kapitan_main`: one that stops without
killing its workers.

Kapitan compiles targets inside `with multiprocessing.Pool(...)`, and the standard pool's exit is
terminate(): SIGTERM to every worker, wherever it is. A worker stopped while it holds the result
queue's write lock (it was sending a target's result) leaves that lock taken for good; terminate()
then waits for ever on its task handler, which needs the lock to send its last message (CPython
gh-96995, open). A target that fails while others compile makes this likely: a failing
`kapitan compile` hung once in about 100 runs on two busy cores, and once a whole CI run.

This pool's exit closes it and waits for the workers to leave on their own. After an error, tasks
not yet started return None at once, so a failing compile still ends as soon as the targets in
hand are done. An interrupt (KeyboardInterrupt, SystemExit) still terminates at once.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import multiprocessing.pool
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# Set by the parent when the pool exits on an error; the workers read it before each task. Created
# before the workers start, so that forked workers share it (under spawn they see None and simply
# run every task).
_failed: Any = None


class _SkippedAfterFailure:
    """A task function that does nothing once the pool's user has failed (picklable: it travels
    with every task)."""

    def __init__(self, function: Callable[..., Any]):
        self.function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _failed is not None and _failed.value:
            return None
        return self.function(*args, **kwargs)


class DrainingPool(multiprocessing.pool.Pool):
    """multiprocessing.pool.Pool whose `with` block ends with close() and join() instead of
    terminate(); imap_unordered's remaining tasks are skipped after an error in the block."""

    def __init__(self, *args: Any, **kwargs: Any):
        global _failed
        context = kwargs.get("context") or multiprocessing.get_context()
        _failed = self._failed = context.RawValue(ctypes.c_bool, False)
        super().__init__(*args, **kwargs)

    def imap_unordered(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[Any]:
        return super().imap_unordered(_SkippedAfterFailure(func), iterable, chunksize)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None or issubclass(exc_type, Exception):
            if exc_type is not None:
                self._failed.value = True
            self.close()
            self.join()
        self.terminate()  # after join(), only the pool's own bookkeeping is left to end


def pool(processes: int | None = None, initializer: Callable[..., Any] | None = None, initargs: tuple[Any, ...] = (),
         maxtasksperchild: int | None = None) -> DrainingPool:
    """multiprocessing.Pool's signature, for the default context (the start method Kapitan set)."""
    return DrainingPool(processes, initializer, initargs, maxtasksperchild, context=multiprocessing.get_context())


def install() -> None:
    """Makes multiprocessing.Pool, which Kapitan calls, build a DrainingPool in this process."""
    multiprocessing.Pool = pool  # type: ignore[assignment]
