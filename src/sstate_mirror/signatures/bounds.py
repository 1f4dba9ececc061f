"""Memory bounds for signature files: their JSON structure, and how many are read at once.

A size cap alone does not bound what parsing costs: four bytes of JSON (``[],``) become a
Python list of 56 bytes and more, and ``[[[[...`` nests as deep as the text is long. So the
structure is counted before :func:`json.loads` sees the text (:func:`check_json_structure`),
and the files read at the same time (:data:`FETCHES`) and the threads that decode them
(:data:`DECODER`) are bounded for the whole process, whatever ``--jobs`` says, so that the
per-file bound times a small number is the bound of the whole run.

The scan is hand-written because no JSON library offers "refuse past N values or depth D"
before it builds them; it only needs to tell structure from strings, which a regular
expression does.
"""

from __future__ import annotations

import concurrent.futures
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Optional, TypeVar

T = TypeVar("T")

#: A JSON string, escapes included: its content is no structure.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: Every byte but the structural characters, for ``bytes.translate`` to delete.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b"[]{},:")


class StructureError(ValueError):
    """The JSON document holds more values or deeper nesting than allowed."""


def check_json_structure(text: bytes, max_values: int, max_depth: int) -> None:
    """Refuse ``text`` when it holds more than ``max_values`` values or nests deeper than
    ``max_depth``. Cheap: one pass over the structural characters, nothing is built.

    Values are counted by what separates or opens them (``,``, ``:``, ``[``, ``{``), which
    counts every value of the document at least once; strings are removed first and the
    counting is done by ``bytes`` methods, so the scan costs little next to parsing.
    Malformed text is left for the JSON parser to report.
    """
    structure = _STRING.sub(b"", text).translate(None, _NOT_STRUCTURE)
    values = sum(structure.count(c) for c in (b",", b":", b"[", b"{"))
    if values > max_values:
        raise StructureError(f"more than {max_values} values")
    depth = 0
    for c in structure.translate(None, b",:"):  # at most max_values brackets
        if c in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                raise StructureError(f"nested deeper than {max_depth} levels")
        else:
            depth -= 1


class ReadSlots:
    """At most ``slots`` holders at once in this process, however many threads there are.

    Each holder may use up to a per-file bound (:class:`~.reader.Limits`), so the process
    never holds more than ``slots`` times that. Waiting for a decode slot costs little:
    decompressing and parsing are CPU-bound and hold the GIL anyway.
    """

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._semaphore = threading.BoundedSemaphore(slots)

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._semaphore:
            yield


class DecodeThreads:
    """Run decoding on a few dedicated threads of the process, whichever thread asks.

    A semaphore would bound how many files are decoded at once, but not the memory: the C
    allocator gives each thread an arena of its own and keeps what that thread freed for it,
    so 32 threads that each once parsed a large file hold 32 times its peak. Decoding on
    ``threads`` threads only keeps the process at ``threads`` times the per-file bound.
    """

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    max_workers=self.threads, thread_name_prefix="signature-decode")
            pool = self._pool
        return pool.submit(fn, *args).result()


#: Signature files fetched and decoded at once in the whole process (their compressed bytes
#: are held meanwhile), and threads that decompress and parse them.
FETCH_SLOTS = 16
DECODE_THREADS = 2
FETCHES = ReadSlots(FETCH_SLOTS)
DECODER = DecodeThreads(DECODE_THREADS)
