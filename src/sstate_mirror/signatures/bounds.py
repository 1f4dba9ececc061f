"""Memory bounds for signature files: their JSON structure, and how many are read at once.

A size cap alone does not bound what parsing costs: four bytes of JSON (``[],``) become a
Python list of 56 bytes and more, and ``[[[[...`` nests as deep as the text is long. So the
structure is counted before :func:`json.loads` sees the text (:func:`check_json_structure`),
and the number of files read and decoded at the same time is bounded for the whole process
(:data:`READS`), whatever ``--jobs`` says, so that the per-file bound times a small number is
the bound of the whole run.

The scan is hand-written because no JSON library offers "refuse past N values or depth D"
before it builds them; it only needs to tell structure from strings, which a regular
expression does.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: A JSON string (escapes included), or one structural character.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')


class StructureError(ValueError):
    """The JSON document holds more values or deeper nesting than allowed."""


def check_json_structure(text: bytes, max_values: int, max_depth: int) -> None:
    """Refuse ``text`` when it holds more than ``max_values`` values or nests deeper than
    ``max_depth``. Cheap: one pass over the structural characters, nothing is built.

    Values are counted by what separates or opens them (``,``, ``:``, ``[``, ``{``), which
    counts every value of the document at least once. Malformed text is left for the JSON
    parser to report.
    """
    values = 0
    depth = 0
    for m in _TOKEN.finditer(text):
        c = text[m.start()]
        if c == 0x22:  # a string: its content is no structure
            continue
        if c in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > max_depth:
                raise StructureError(f"nested deeper than {max_depth} levels")
        elif c in (0x5D, 0x7D):  # ] }
            depth -= 1
            continue
        values += 1
        if values > max_values:
            raise StructureError(f"more than {max_values} values")


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


#: Signature files fetched and decoded at once in the whole process (their compressed bytes
#: are held meanwhile), and, among those, files being decompressed and parsed at once.
FETCH_SLOTS = 16
DECODE_SLOTS = 2
FETCHES = ReadSlots(FETCH_SLOTS)
DECODES = ReadSlots(DECODE_SLOTS)
