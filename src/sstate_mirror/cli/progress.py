"""Progress reporting for the terminal and for CI logs.

Commands report through :class:`~sstate_mirror.transfer.Progress` callbacks; this module
decides what a person sees: with ``-v``, one line per finished phase (counts, bytes, rate),
and retries as warnings. Nothing is printed with ``-q``.
"""

from __future__ import annotations

import threading
import time

from ..transfer import Progress
from ..units import format_size
from .ui import UI


class LineProgress(Progress):
    """One summary line per phase: readable in CI logs, never a redraw."""

    def __init__(self, ui: UI) -> None:
        self.ui = ui
        self._lock = threading.Lock()
        self._name = ""
        self._items = 0
        self._bytes = 0
        self._start = time.monotonic()

    def phase(self, name: str, total_items: int, total_bytes: int = 0) -> None:
        with self._lock:
            self._name, self._items, self._bytes = name, 0, 0
            self._start = time.monotonic()

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        with self._lock:
            self._items += items
            self._bytes += nbytes

    def retry(self, what: str, error: BaseException, delay: float) -> None:
        self.ui.warn(f"{what}: {error}; retrying in {delay:.1f}s")

    def done(self) -> None:
        with self._lock:
            elapsed = max(time.monotonic() - self._start, 1e-6)
            rate = ""
            if self._bytes:
                rate = f", {format_size(self._bytes)} at {format_size(self._bytes / elapsed)}/s"
            self.ui.detail(f"{self._name}: {self._items} files{rate} in {elapsed:.1f}s")
