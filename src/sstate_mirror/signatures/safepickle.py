"""A pickle reader that can only build plain data.

Legacy (bitbake <= 1.52) signature files are pickles, and a pickle is a program: its GLOBAL
and STACK_GLOBAL opcodes import any callable and REDUCE calls it. A file from a mirror is
untrusted input, so this unpickler refuses every global and every persistent id. Without a
callable, no opcode can run code: what is left builds dicts, lists, tuples, sets, strings,
bytes, numbers, booleans and None only — exactly what bitbake wrote.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, NoReturn


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something other than plain data."""


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` with every route to a callable closed."""

    def find_class(self, module: str, name: str) -> NoReturn:
        # GLOBAL, STACK_GLOBAL, INST, OBJ and the EXT* opcodes all end up here.
        raise UnsafePickleError(f"refusing to load global {module}.{name}")

    def persistent_load(self, pid: Any) -> NoReturn:
        raise UnsafePickleError("refusing a persistent id")


def loads_plain(data: bytes) -> Any:
    """Unpickle ``data`` allowing plain containers and scalars only.

    Raises :class:`UnsafePickleError` for a global or persistent id, and whatever the
    unpickler raises for malformed input (the caller maps both to its own error).
    """
    return RestrictedUnpickler(io.BytesIO(data)).load()
