"""The typed model of one signature file (``.siginfo`` or a stamp's ``.sigdata.<hash>``).

bitbake writes these files from a plain dict. The model keeps each field's value as the file
holds it — a ``frozenset`` for a JSON ``{"_set_object": ...}``, a ``set`` from a legacy pickle,
a ``list`` where the producer wrote one — because bitbake's own tools print those values with
Python's ``repr`` and an identical output needs the identical container kind. Only the key
names are normalised (``basewhitelist`` -> ``basehash_ignore_vars``, ``taskwhitelist`` ->
``taskhash_ignore_tasks``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import AbstractSet, Dict, List, Optional, Tuple, Union

#: A collection of names: ``frozenset`` (zstd-JSON), ``set`` (legacy pickle) or ``list``.
NameCollection = Union[AbstractSet[str], List[str]]

#: A variable value as bitbake stores it: the expanded string, ``None`` for an unset
#: variable, or a flag value such as ``1`` for ``do_x[func]``.
VarValue = Union[str, int, float, bool, None]


class Encoding(str, enum.Enum):
    """How the file was stored; decides how bitbake of that generation printed it."""

    ZSTD_JSON = "zstd-json"
    """bitbake >= 2.0 (kirkstone, 2022): zstd-compressed JSON."""
    PICKLE = "pickle"
    """bitbake <= 1.52 (honister, 2021): a Python pickle."""


@dataclass
class Signature:
    """The content of one signature file, with the key renames of old files applied.

    ``runtaskdeps``, ``file_checksum_values``, ``runtaskhashes``, ``taskhash`` and ``unihash``
    are ``None`` in a basehash-only file (bitbake's ``.sigbasedata``), which carries no
    runtime data. ``source`` names where the file came from, for messages only.
    """

    task: Optional[str]
    basehash_ignore_vars: NameCollection
    taskhash_ignore_tasks: Optional[str]
    taskdeps: NameCollection
    basehash: str
    gendeps: Dict[str, NameCollection]
    varvals: Dict[str, VarValue]
    runtaskdeps: Optional[List[str]] = None
    file_checksum_values: Optional[List[Tuple[str, Optional[str]]]] = None
    runtaskhashes: Optional[Dict[str, str]] = None
    taskhash: Optional[str] = None
    unihash: Optional[str] = None
    taint: Optional[str] = None
    encoding: Encoding = Encoding.ZSTD_JSON
    source: str = field(default="<bytes>", compare=False)

    @property
    def is_legacy(self) -> bool:
        """True for a pickle written by bitbake 1.52 or older."""
        return self.encoding is Encoding.PICKLE

    @property
    def has_runtime_data(self) -> bool:
        """True when the file records the task's dependencies' hashes (a ``.siginfo``)."""
        return self.runtaskdeps is not None

    def to_json(self) -> Dict[str, object]:
        """A JSON-ready dict: sets become sorted lists, tuples become lists."""
        def names(value: NameCollection) -> List[str]:
            return sorted(value) if not isinstance(value, list) else list(value)

        out: Dict[str, object] = {
            "task": self.task,
            "basehash_ignore_vars": names(self.basehash_ignore_vars),
            "taskhash_ignore_tasks": self.taskhash_ignore_tasks,
            "taskdeps": names(self.taskdeps),
            "basehash": self.basehash,
            "gendeps": {k: names(v) for k, v in self.gendeps.items()},
            "varvals": dict(self.varvals),
        }
        if self.runtaskdeps is not None:
            out["runtaskdeps"] = list(self.runtaskdeps)
        if self.file_checksum_values is not None:
            out["file_checksum_values"] = [list(pair) for pair in self.file_checksum_values]
        if self.runtaskhashes is not None:
            out["runtaskhashes"] = dict(self.runtaskhashes)
        for key in ("taskhash", "unihash", "taint"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["encoding"] = self.encoding.value
        return out
