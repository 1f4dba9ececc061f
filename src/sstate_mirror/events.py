"""One channel for what the user should hear while a command runs: retries, waits, warnings.

Backends and the transfer layer do not print (only the CLI does) and must not decide how a
line looks, whether ``-q`` hides it, or how credentials are masked. They call :func:`retry`,
:func:`warning`, :func:`notice` or :func:`debug` here; whoever listens (the CLI, through
:func:`listening`) decides what to show. Without a listener, events go to the standard
``logging`` module (logger ``sstate_mirror``), so the library stays usable from Python.

Messages take ``%``-style arguments, as ``logging`` does, so that a debug line costs nothing
when nobody wants it. Events from threads are delivered on those threads: listeners must
be thread-safe (printing one line is).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, List

#: What an event is about, from the most to the least important.
WARNING = "warning"
RETRY = "retry"
NOTICE = "notice"
DEBUG = "debug"

_LEVELS = {WARNING: logging.WARNING, RETRY: logging.INFO, NOTICE: logging.INFO,
           DEBUG: logging.DEBUG}

_fallback = logging.getLogger("sstate_mirror")


@dataclass(frozen=True)
class Event:
    kind: str
    """:data:`WARNING`, :data:`RETRY`, :data:`NOTICE` or :data:`DEBUG`."""
    text: str
    """One line, not yet redacted (the listener redacts)."""


Listener = Callable[[Event], None]

_listeners: List[Listener] = []
_lock = threading.Lock()


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Deliver every event to ``listener`` (instead of ``logging``) within the block."""
    with _lock:
        _listeners.append(listener)
    try:
        yield
    finally:
        with _lock:
            _listeners.remove(listener)


class _Bridge(logging.Handler):
    """Records of the ``sstate_mirror`` loggers as events (for code that still logs)."""

    def emit(self, record: logging.LogRecord) -> None:
        kind = (WARNING if record.levelno >= logging.WARNING else
                NOTICE if record.levelno >= logging.INFO else DEBUG)
        try:
            text = record.getMessage()
        except (TypeError, ValueError):
            text = str(record.msg)
        for listener in list(_listeners):
            listener(Event(kind, " ".join(text.splitlines())))


@contextmanager
def capture_logging() -> Iterator[None]:
    """Within the block, the ``sstate_mirror`` loggers speak through the listeners, not
    through Python's last-resort handler (which ignores ``-q`` and redaction)."""
    bridge = _Bridge(logging.DEBUG)
    saved = (_fallback.level, _fallback.propagate)
    _fallback.addHandler(bridge)
    _fallback.setLevel(logging.DEBUG)
    _fallback.propagate = False
    try:
        yield
    finally:
        _fallback.removeHandler(bridge)
        _fallback.setLevel(saved[0])
        _fallback.propagate = saved[1]


def wanted(kind: str) -> bool:
    """Whether anyone could show an event of this kind (spares building a debug line)."""
    return bool(_listeners) or _fallback.isEnabledFor(_LEVELS[kind])


def emit(kind: str, message: str, *args: object) -> None:
    listeners = list(_listeners)
    if not listeners:
        _fallback.log(_LEVELS[kind], message, *args)
        return
    text = message % args if args else message
    event = Event(kind, " ".join(text.splitlines()))
    for listener in listeners:
        listener(event)


def warning(message: str, *args: object) -> None:
    """Something the user should know although the command goes on (TLS off, a fallback)."""
    emit(WARNING, message, *args)


def notice(message: str, *args: object) -> None:
    """A change of course worth a line at ``-v`` (a listing that goes on another way)."""
    emit(NOTICE, message, *args)


def debug(message: str, *args: object) -> None:
    """Detail for ``-vv``."""
    if wanted(DEBUG):
        emit(DEBUG, message, *args)


def retry(what: str, reason: str, attempt: int, retries: int, delay: float) -> None:
    """A failed try that will be made again after ``delay`` seconds: one line, as it
    happens (a server that keeps failing is visible while the command waits)."""
    emit(RETRY, "%s: %s; retry %d/%d in %.1fs", what, reason, attempt, retries, delay)
