"""Run many small storage operations in parallel and report what happened as data.

Commands hand a list of work items and a function to :func:`run_parallel`; it returns the
failures (item -> error) instead of raising on the first one, so one bad object never hides
the outcome of the others. Progress is reported through a :class:`Progress` callback object;
only the CLI decides how to draw it.

Each operation runs under the one retry policy (:mod:`sstate_mirror.retry`): a transient
failure that the backend did not already retry is retried here around the whole operation
(a half-sent upload whose stream cannot be rewound is restarted from a freshly opened
source; an upload whose ``MOVE`` broke off starts again with its ``PUT``). Retries are
reported through :mod:`sstate_mirror.events`, not through :class:`Progress`.

On Ctrl-C, pending items are cancelled, in-flight ones are allowed to finish (an atomic put
either completes or removes its temporary file), and :class:`TransferInterrupted` (a
``KeyboardInterrupt``) propagates with what was done, so that the command can still report
it before exiting with 130.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Dict, List, Optional, Set, TypeVar

from . import retry
from .errors import BackendError, PermanentError, SstateMirrorError

T = TypeVar("T")
R = TypeVar("R")


class Progress:
    """Callbacks for long operations; this base class ignores them all."""

    def phase(self, name: str, total_items: int, total_bytes: int = 0) -> None:
        """A new phase starts (e.g. "listing", "uploading companions")."""

    def advance(self, items: int = 1, nbytes: int = 0) -> None:
        """Items (and bytes) of the current phase are done."""

    def done(self) -> None:
        """The current phase is finished."""

    def close(self) -> None:
        """The command is finished: release the display."""

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TransferInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`run_parallel`, after the in-flight items finished.

    ``done`` holds the indexes of the items that completed, ``failures`` those that failed;
    every other item was not started.
    """

    def __init__(self, done: Set[int], failures: Dict[int, BackendError]) -> None:
        super().__init__("interrupted")
        self.done = done
        self.failures = failures


def as_backend_error(exc: BaseException, what: str) -> BackendError:
    """Any exception from a worker as a reportable error (bugs included, not swallowed)."""
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, SstateMirrorError):
        return PermanentError(str(exc))
    return PermanentError(f"{what}: unexpected {type(exc).__name__}: {exc}")


def call_with_retries(fn: Callable[[], R], *, retries: int, what: str) -> R:
    """Call ``fn`` under the one retry policy (:func:`sstate_mirror.retry.call`)."""
    return retry.call(fn, retries=retries, what=what)


def run_parallel(
    items: Sequence[T],
    fn: Callable[[T], None],
    *,
    jobs: int,
    describe: Callable[[T], str] = str,
    weight: Callable[[T], int] = lambda _item: 0,
    progress: Optional[Progress] = None,
    retries: int = 0,
) -> Dict[int, BackendError]:
    """Apply ``fn`` to every item with ``jobs`` threads; return failures by item index.

    ``weight`` gives the bytes an item accounts for in progress reports.
    """
    progress = progress or Progress()
    failures: Dict[int, BackendError] = {}
    if not items:
        return failures

    def work(index: int) -> None:
        item = items[index]
        call_with_retries(lambda: fn(item), retries=retries, what=describe(item))

    executor = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(items))),
                                  thread_name_prefix="sstate-mirror")
    pending: Dict[Future[None], int] = {}
    done_items: Set[int] = set()
    next_index = 0

    def collect(fut: Future[None], index: int) -> None:
        exc = fut.exception()
        if exc is not None:
            failures[index] = as_backend_error(exc, describe(items[index]))
        else:
            done_items.add(index)
        progress.advance(1, weight(items[index]) if exc is None else 0)

    try:
        # Submit lazily (at most 2*jobs queued) so that Ctrl-C leaves little to cancel.
        while next_index < len(items) or pending:
            while next_index < len(items) and len(pending) < 2 * jobs:
                pending[executor.submit(work, next_index)] = next_index
                next_index += 1
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in done:
                collect(fut, pending.pop(fut))
    except KeyboardInterrupt:
        for fut in pending:
            fut.cancel()
        executor.shutdown(wait=True)  # in-flight items finish (or roll back) first
        for fut, index in pending.items():
            if not fut.cancelled():
                collect(fut, index)
        raise TransferInterrupted(done_items, failures) from None
    except BaseException:
        for fut in pending:
            fut.cancel()
        executor.shutdown(wait=True)
        raise
    executor.shutdown(wait=True)
    return failures


def batched(items: Sequence[T], size: int) -> List[List[T]]:
    """Consecutive chunks of at most ``size`` items."""
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
