"""The one retry policy: which failures are tried again, how often, after how long.

Every backend classifies its failures once, into the error tree of :mod:`.errors`
(``TransientError`` is worth retrying: timeouts, broken connections, 408/429/5xx;
everything else is not). This module then decides, the same way everywhere:

* **Idempotent requests** (every WebDAV method but ``MOVE``, every S3 call) are sent again by
  the transport that sent them (the pipeline or httpx, botocore for S3) after a transient
  failure, at most ``--retries`` times. An error that comes back after that is marked
  ``retried``: nothing above sends it again, so the server sees at most ``--retries + 1``
  attempts of a request.
* **A request that is not idempotent** (``MOVE``) is never sent again after a failure that
  may have reached the server (a broken connection, a timeout): it may have been carried
  out. Its error is not marked ``retried``; the operation that sent it (an upload: ``PUT``
  to a temporary name, then ``MOVE``) is retried as a whole by :func:`call`, which starts
  over from a state it knows. A failure that cannot have reached the server (no
  connection) or a status the server answered without acting (503, 429) is retried as for
  an idempotent request.
* **Waits** grow exponentially with jitter (:func:`backoff`), bounded; a server's
  ``Retry-After`` is honoured up to a minute.
* **Every retry is reported** as one event (:func:`.events.retry`) when it is decided, so
  that a user sees a server that keeps failing while the command waits.

Like restic's ``retry`` backend or rclone's pacer, this is applied once per layer: the
transports call :func:`backoff` and :func:`.events.retry` and nothing else decides.
"""

from __future__ import annotations

import random
import time
from typing import Callable, Optional, TypeVar

from . import events
from .errors import BackendError

R = TypeVar("R")

#: First wait, and the longest, in seconds (before jitter).
BASE_DELAY = 0.25
MAX_DELAY = 10.0
#: The most a ``Retry-After`` may make us wait.
MAX_RETRY_AFTER = 60.0


def backoff(attempt: int, retry_after: Optional[str] = None) -> float:
    """The wait before retry ``attempt + 1``: exponential with jitter, or the server's
    ``Retry-After`` seconds (at most a minute)."""
    if retry_after and retry_after.strip().isdigit():
        return min(MAX_RETRY_AFTER, float(retry_after.strip()))
    return jitter(min(MAX_DELAY, BASE_DELAY * 2.0**attempt))


#: The jitter's own generator: drawing from the ``random`` module's shared one would move
#: the sequence of any program (or test) that seeded it, from whatever thread retries.
_JITTER = random.Random()  # noqa: S311 - jitter, not crypto


def jitter(base: float) -> float:
    """A wait between half of ``base`` and ``base``, so that clients that failed together
    do not come back together."""
    return base * (0.5 + _JITTER.random() / 2)


def worth_retrying(error: BackendError) -> bool:
    """Whether an operation that failed with ``error`` is tried again as a whole."""
    return error.retryable and not error.retried


def call(fn: Callable[[], R], *, retries: int, what: str,
         sleep: Callable[[float], None] = time.sleep) -> R:
    """Run an operation; after a failure :func:`worth_retrying`, wait and run it again, at
    most ``retries`` more times (each retry reported as an event)."""
    attempt = 0
    while True:
        try:
            return fn()
        except BackendError as exc:
            if not worth_retrying(exc) or attempt >= retries:
                raise
            delay = backoff(attempt)
            attempt += 1
            events.retry(what, exc.message, attempt, retries, delay)
            sleep(delay)
