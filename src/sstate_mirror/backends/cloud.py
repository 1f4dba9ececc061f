"""What the Google Cloud Storage and Azure Blob backends share: one request under the
project's retry policy, and timestamps as UTC POSIX times.

Both official clients retry on their own, each with its own policy (google-api-core by a
deadline, azure-core by a count); both are switched off, and every request these backends
send goes through :func:`request`, which retries with
:func:`sstate_mirror.transfer.call_with_retries`: the same backoff as every other store, and
``--retries N`` means at most N + 1 attempts of a request on the wire.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Optional, TypeVar

from ..errors import BackendError
from ..transfer import call_with_retries

__all__ = ["posix_time", "request"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def request(fn: Callable[[], T], translate: Callable[[BaseException], BackendError], *,
            retries: int, what: str) -> T:
    """``fn()`` (one request), its failures translated, transient ones retried.

    Only for requests that are safe to send again (reads, listings, deletes, metadata
    updates, uploads from a source that is read anew each time). An error that comes out has
    used every retry, so it is marked ``retried`` and the transfer layer does not repeat it.
    """
    def attempt() -> T:
        try:
            return fn()
        except BackendError:
            raise
        except Exception as exc:
            raise translate(exc) from exc

    try:
        return call_with_retries(attempt, retries=retries, what=what)
    except BackendError as error:
        error.retried = error.retryable
        raise


def posix_time(value: Optional[dt.datetime]) -> float:
    """A store's datetime as a POSIX timestamp; a naive one is UTC, never local time."""
    if value is None:
        return 0.0
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()
