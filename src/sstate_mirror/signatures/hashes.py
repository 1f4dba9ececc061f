"""Recompute a signature's basehash and taskhash from its own content.

A file whose recorded hashes cannot be recomputed from its content was edited, corrupted, or
written by a signature handler this tool does not know. bitbake >= 2.0 and 1.52 both hash
with sha256 the same way; only the form of the dependency names differs (``pn:do_task``
since 2.0, ``/path/to/recipe.bb:do_task`` before), and the hash does not depend on the names
of runtime dependencies, only on their hashes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

from .model import Signature


def _text(value: object) -> str:
    return value if isinstance(value, str) else str(value)


def compute_basehash(sig: Signature) -> Optional[str]:
    """sha256 over the task's own code, then each variable it depends on (sorted by name)
    followed by its value (unset variables contribute their name only).

    None when the file does not say which task it describes or lacks a value it lists.
    """
    if sig.task is None or sig.task not in sig.varvals:
        return None
    value = sig.varvals[sig.task]
    data = "" if value is None else _text(value)
    for dep in sorted(sig.taskdeps):
        if dep not in sig.varvals:
            return None
        data += dep
        dep_value = sig.varvals[dep]
        if dep_value is not None:
            data += _text(dep_value)
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def compute_taskhash(sig: Signature) -> str:
    """sha256 over the basehash, the dependencies' hashes in ``runtaskdeps`` order, each
    non-empty file checksum (prefixed by the file name when it holds ``./``), and the taint
    (a ``nostamp:`` marker removed)."""
    data = sig.basehash
    hashes = sig.runtaskhashes or {}
    for dep in sig.runtaskdeps or []:
        data += hashes[dep]
    for name, checksum in sig.file_checksum_values or []:
        if checksum:
            if "./" in name:
                data += name
            data += checksum
    if sig.taint is not None:
        data += sig.taint[8:] if "nostamp:" in sig.taint else sig.taint
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class HashCheck:
    """Recomputed hashes next to the recorded ones."""

    computed_basehash: Optional[str]
    recorded_basehash: str
    computed_taskhash: Optional[str]
    recorded_taskhash: Optional[str]

    @property
    def basehash_ok(self) -> bool:
        return self.computed_basehash == self.recorded_basehash

    @property
    def taskhash_ok(self) -> Optional[bool]:
        """None when the file records no taskhash (a basehash-only file)."""
        if self.recorded_taskhash is None:
            return None
        return self.computed_taskhash == self.recorded_taskhash

    @property
    def ok(self) -> bool:
        return self.basehash_ok and self.taskhash_ok is not False


def check_hashes(sig: Signature) -> HashCheck:
    """Recompute both hashes and pair them with what the file records."""
    taskhash = compute_taskhash(sig) if sig.has_runtime_data else None
    return HashCheck(compute_basehash(sig), sig.basehash, taskhash, sig.taskhash)
