"""Progress reporting for the terminal and for CI logs.

Commands report through :class:`~sstate_mirror.transfer.Progress` callbacks and never print;
this module decides what a person sees:

* on a terminal (stderr is a TTY): a live rich display per phase with files, bytes, rate and
  time left, redrawn in place on stderr so stdout stays clean for results;
* elsewhere (CI logs, pipes): plain lines only — a line when a long phase ends, and a status
  line every ``heartbeat`` seconds while it runs (like rclone's ``--stats``), so a log shows
  the job is alive without redraw noise;
* with ``-q`` or ``--json``: nothing but warnings.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Optional, Tuple

from ..transfer import Progress
from ..units import format_size
from .ui import UI
from .wording import plural


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
    count = f"{items}/{plural(total_items, 'file')}" if total_items else plural(items, "file")
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
    """Plain lines for logs: a status line every ``heartbeat`` seconds while a phase runs
    (from a timer, so a phase that waits on the server still shows it is alive), and a
    summary at the end of each long phase."""

    def __init__(self, ui: UI, *, heartbeat: float = 30.0) -> None:
        super().__init__(ui)
        self.heartbeat = heartbeat
        self._lock = threading.Lock()
        self._name = ""
        self._items = self._bytes = self._total_items = self._total_bytes = 0
        self._start = self._last = time.monotonic()
        self._running = False
        self._wake = threading.Event()
        self._timer: Optional[threading.Thread] = None

    def phase(self, name: str, total_items: int, total_bytes: int = 0) -> None:
        with self._lock:
            self._name = name
            self._items = self._bytes = 0
            self._total_items, self._total_bytes = total_items, total_bytes
            self._start = self._last = time.monotonic()
            self._running = True
            if self._timer is None and self.heartbeat > 0:
                self._timer = threading.Thread(target=self._tick, name="progress-status",
                                               daemon=True)
                self._timer.start()

    def _tick(self) -> None:
        while not self._wake.wait(self.heartbeat / 4):
            line = None
            with self._lock:
                now = time.monotonic()
                if self._running and now - self._last >= self.heartbeat:
                    self._last = now
                    line = self._line(now)
            if line:
                self.ui.info(line)

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
            self._running = False
        if long_phase:
            self.ui.info(line)
        else:
            self.ui.detail(line)

    def close(self) -> None:
        self._wake.set()
        if self._timer is not None:
            self._timer.join()
            self._timer = None


class RichProgress(QuietProgress):
    """A live display on the terminal (stderr), one bar per phase.

    The bar fits the terminal: the phase name gives way (cut with an ellipsis) before the
    counts do, and on a narrow terminal the bar is shorter and the detail shows the rate
    alone. A finished phase leaves one line; when the next phase has the same name (analyze
    reads signatures in rounds) and nothing was printed in between, it takes that line over
    and counts on, instead of stacking a line per round.
    """

    #: Below this width the bytes detail is cut to the rate.
    NARROW = 100

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
        from rich.table import Column

        self._console = Console(file=ui.err, no_color=not ui.err_color, highlight=False)
        width = self._console.width
        self._narrow = width < self.NARROW
        self._bar = RichBar(
            SpinnerColumn(table_column=Column(no_wrap=True)),
            TextColumn("{task.description}",
                       table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis",
                                           min_width=8)),
            BarColumn(bar_width=max(8, min(40, width - 62))),
            MofNCompleteColumn(table_column=Column(no_wrap=True)),
            TextColumn("files {task.fields[detail]}", table_column=Column(no_wrap=True)),
            TimeRemainingColumn(table_column=Column(no_wrap=True)),
            console=self._console,
            transient=False,
            expand=True,
        )
        self._lock = threading.Lock()
        self._task: Optional[Any] = None
        self._bytes = self._total_bytes = 0
        self._start = time.monotonic()
        self._started = False
        #: (name, items done, items total, bytes, printed lines) of the last finished phase
        self._finished: Optional[Tuple[str, float, Optional[float], int, int]] = None

    def phase(self, name: str, total_items: int, total_bytes: int = 0) -> None:
        with self._lock:
            done_before, total_before, bytes_before = 0.0, 0.0, 0
            last = self._finished
            if last is not None and last[0] == name and last[4] == self.ui.lines_printed:
                # the same phase again, straight after: take its line over and count on
                self._console.file.write("\x1b[1A\x1b[2K")
                done_before, total_before, bytes_before = last[1], last[2] or last[1], last[3]
            self._finished = None
            self._bytes, self._total_bytes = bytes_before, total_bytes
            self._start = time.monotonic()
            total = (total_before + total_items) if total_items else None
            self._task = self._bar.add_task(name, total=total, completed=int(done_before),
                                            detail=self._detail())
            if not self._started:
                self._bar.start()
                self._started = True

    def _detail(self) -> str:
        if not (self._bytes or self._total_bytes):
            return ""
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = f"{format_size(self._bytes / elapsed)}/s"
        if self._narrow:
            return rate
        done = format_size(self._bytes)
        total = f"/{format_size(self._total_bytes)}" if self._total_bytes else ""
        return f"{done}{total} at {rate}"

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
            self._finished = (task.description, task.completed, task.total, self._bytes,
                              self.ui.lines_printed)
            self._bar.remove_task(self._task)
            self._task = None
            self._started = False

    def close(self) -> None:
        with self._lock:
            if self._started:
                self._bar.stop()
                self._started = False
