"""A one-line progress bar on stderr, shown only to a person at a terminal and for large trees."""

from __future__ import annotations

import sys
import time

MIN_ITEMS = 500


class Progress:
    def __init__(self, label: str, total: int, stream=None):
        self.stream = stream or sys.stderr
        self.label, self.total, self.done = label, total, 0
        self.enabled = total >= MIN_ITEMS and getattr(self.stream, "isatty", lambda: False)()
        self._last = 0.0

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            width = 30
            filled = width * self.done // max(self.total, 1)
            self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
