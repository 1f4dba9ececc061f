"""Progress reporting for the terminal and for CI logs.

Commands report through :class:`~sstate_mirror.transfer.Progress` callbacks and never print;
this module decides what a person sees:

* on a terminal (stderr is a TTY): a live rich display per phase with files, bytes, rate and
  time left, redrawn in place on stderr so stdout stays clean for results;
* elsewhere (CI logs, pipes): plain lines only — a line when a long phase ends, and one every
  ``heartbeat`` seconds while it runs, so a log shows the job is alive without redraw noise;
* with ``-q`` or ``--json``: nothing but warnings.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

from ..transfer import Progress
from ..units import format_size
from .ui import UI


def make_progress(ui: UI, *, heartbeat: float = 30.0) -> Progress:
    """The progress reporter that suits this run's output."""
    if ui.quiet:
        return QuietProgress(ui)
    if ui.err_is_terminal and not ui.json_mode:
        return RichProgress(ui)
    return LineProgress(ui, heartbeat=heartbeat)


class QuietProgress(Progress):
    """Nothing to draw (retries are events, printed by the CLI: see cli/ui.py)."""

    def __init__(self, ui: UI) -> None:
        self.ui = ui


def _describe(name: str, items: int, total_items: int, nbytes: int, total_bytes: int,
              elapsed: float) -> str:
    count = f"{items}/{total_items} files" if total_items else f"{items} files"
    parts = [f"{name}: {count}"]
    if total_bytes or nbytes:
        size = (f"{format_size(nbytes)}/{format_size(total_bytes)}" if total_bytes
                else format_size(nbytes))
        parts.append(size)
        if elapsed > 0 and nbytes:
            rate = nbytes / elapsed
            parts.append(f"{format_size(rate)}/s")
            if total_bytes > nbytes and rate > 0:
                parts.append(f"{(total_bytes - nbytes) / rate:.0f}s left")
    parts.append(f"{elapsed:.1f}s")
    return ", ".join(parts)


class LineProgress(QuietProgress):
    """Plain lines for logs: a heartbeat during long phases, a summary at the end of each."""

    def __init__(self, ui: UI, *, heartbeat: float = 30.0) -> None:
        super().__init__(ui)
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._name = ""
        self._items = self._bytes = self._total_items = self._total_bytes = 0
        self._start = self._last = time.monotonic()

    def phase(self, name: str, total_items: int, total_bytes: int = 0) -> None:
        with self._lock:
            self._name = name
            self._items = self._bytes = 0
            self._total_items, self._total_bytes = total_items, total_bytes
            self._start = self._last = time.monotonic()

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        line = None
        with self._lock:
            self._items += items
            self._bytes += nbytes
            now = time.monotonic()
            if now - self._last >= self.heartbeat:
                self._last = now
                line = self._line(now)
        if line:
            self.ui.info(line)

    def _line(self, now: float) -> str:
        return _describe(self._name, self._items, self._total_items, self._bytes,
                         self._total_bytes, now - self._start)

    def done(self) -> None:
        with self._lock:
            now = time.monotonic()
            line = self._line(now)
            long_phase = now - self._start >= self.heartbeat
        if long_phase:
            self.ui.info(line)
        else:
            self.ui.detail(line)


class RichProgress(QuietProgress):
    """A live display on the terminal (stderr), one bar per phase."""

    def __init__(self, ui: UI) -> None:
        super().__init__(ui)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            SpinnerColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichBar

        self._console = Console(file=ui.err, no_color=not ui.err_color, highlight=False)
        self._bar = RichBar(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files {task.fields[detail]}"),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._lock = threading.Lock()
        self._task: Optional[Any] = None
        self._bytes = self._total_bytes = 0
        self._start = time.monotonic()
        self._started = False

    def phase(self, name: str, total_items: int, total_bytes: int = 0) -> None:
        with self._lock:
            self._bytes, self._total_bytes = 0, total_bytes
            self._start = time.monotonic()
            self._task = self._bar.add_task(name, total=total_items or None, detail="")
            if not self._started:
                self._bar.start()
                self._started = True

    def _detail(self) -> str:
        if not (self._bytes or self._total_bytes):
            return ""
        elapsed = max(time.monotonic() - self._start, 1e-6)
        done = format_size(self._bytes)
        total = f"/{format_size(self._total_bytes)}" if self._total_bytes else ""
        return f"{done}{total} at {format_size(self._bytes / elapsed)}/s"

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        with self._lock:
            if self._task is not None:
                self._bytes += nbytes
                self._bar.update(self._task, advance=items, detail=self._detail())

    def done(self) -> None:
        """End the phase: its final line stays on screen, and whatever is printed next
        (the next phase, the command's summary) comes below it, not interleaved."""
        with self._lock:
            if self._task is None:
                return
            task = self._bar.tasks[-1]
            if task.total is None:
                self._bar.update(self._task, total=task.completed)
            self._bar.stop()
            self._bar.remove_task(self._task)
            self._task = None
            self._started = False

    def close(self) -> None:
        with self._lock:
            if self._started:
                self._bar.stop()
                self._started = False
