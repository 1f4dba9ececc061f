"""A pickle reader that can only build plain data, in bounded memory.

Legacy (bitbake <= 1.52) signature files are pickles, and a pickle is a program: its GLOBAL
and STACK_GLOBAL opcodes import any callable and REDUCE calls it. A file from a mirror is
untrusted input, so this unpickler resolves exactly two globals, ``set`` and ``frozenset``
(``builtins`` or Python 2's ``__builtin__``: protocol 2 and 3 pickles store a set as a call of
the global ``set`` on a list, protocol 4 and 5 have opcodes for it), and refuses every other
global and every persistent id. Calling ``set`` on a list builds a set; no other callable can
be reached, so no opcode can run code: what is left builds dicts, lists, tuples, sets,
strings, bytes, numbers, booleans and None only — exactly what bitbake wrote.

Why a scan before the standard unpickler: the C unpickler sizes its memo table by the largest
index a ``BINPUT``/``LONG_BINPUT`` names, so 9 bytes (``\\x80\\x04}r`` + a 4-byte index +
``.``) make it allocate gigabytes before anything is refused. :func:`scan` walks the opcodes
first with :mod:`pickletools`' opcode table (the standard description of the format), reading
only argument lengths and memo indices, in memory proportional to nothing: it bounds the
number of opcodes (each builds at most one object), the memo indices, and the lengths of the
data arguments, and refuses the opcodes bitbake never writes (text opcodes of protocol 0,
object construction, extensions, out-of-band buffers). Only a pickle that passes is given to
the C unpickler.
"""

from __future__ import annotations

import io
import pickle
import pickletools
from typing import Any, Dict, NoReturn, Tuple

#: The globals a signature pickle may name: (module, name) -> the object they resolve to.
_ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    (module, name): obj
    for module in ("builtins", "__builtin__")
    for name, obj in (("set", set), ("frozenset", frozenset))
}

#: Opcodes bitbake's pickles never hold. Text opcodes of protocol 0 (their arguments are
#: parsed from decimal text: ``LONG`` of a million digits is a quadratic conversion), object
#: construction (INST, OBJ, NEWOBJ*, BUILD), persistent ids, the extension registry and
#: out-of-band buffers. ``LONG4`` (an integer of up to 4 GiB of bytes) too: no signature
#: value is an integer wider than ``LONG1`` allows.
_REFUSED = frozenset({
    "INT", "LONG", "FLOAT", "STRING", "UNICODE", "GET", "PUT", "INST", "OBJ",
    "PERSID", "BINPERSID", "NEWOBJ", "NEWOBJ_EX", "BUILD", "EXT1", "EXT2", "EXT4",
    "NEXT_BUFFER", "READONLY_BUFFER", "LONG4",
})

#: Longest ``module\nname\n`` line pair of a GLOBAL opcode.
_MAX_GLOBAL_LINE = 256

_OPCODES = {op.code.encode("latin-1"): op for op in pickletools.opcodes}
_LENGTH_BYTES = {
    pickletools.TAKEN_FROM_ARGUMENT1: 1,
    pickletools.TAKEN_FROM_ARGUMENT4: 4,
    pickletools.TAKEN_FROM_ARGUMENT4U: 4,
    pickletools.TAKEN_FROM_ARGUMENT8U: 8,
}


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle asked for something other than plain data, or more than it may have."""


class PickleLimitError(UnsafePickleError):
    """The pickle holds more opcodes than allowed: too large, not judged malformed."""


def scan(data: bytes, max_opcodes: int) -> int:
    """Check ``data`` opcode by opcode before anything is built; return the opcode count.

    Raises :class:`UnsafePickleError` for a refused opcode, a memo index beyond
    ``max_opcodes`` or more than ``max_opcodes`` opcodes; ``pickle.UnpicklingError`` for
    malformed data (unknown opcode, an argument that runs past the end, no STOP).
    """
    pos = 0
    end = len(data)
    count = 0
    while pos < end:
        count += 1
        if count > max_opcodes:
            raise PickleLimitError(f"more than {max_opcodes} pickle opcodes")
        op = _OPCODES.get(data[pos : pos + 1])
        if op is None:
            raise pickle.UnpicklingError(
                f"unknown pickle opcode {data[pos:pos + 1]!r} at byte {pos}")
        if op.name in _REFUSED:
            what = "a persistent id" if "PERSID" in op.name else f"pickle opcode {op.name}"
            raise UnsafePickleError(f"refusing {what} at byte {pos}")
        pos += 1
        arg = op.arg
        if op.name == "STOP":
            return count
        if arg is None:
            continue
        if arg.n >= 0:
            if op.name in ("BINPUT", "LONG_BINPUT"):
                index = int.from_bytes(data[pos : pos + arg.n], "little")
                if index > max_opcodes:
                    raise UnsafePickleError(f"pickle memo index {index} is out of bounds")
            if op.name == "FRAME":
                frame = int.from_bytes(data[pos : pos + arg.n], "little")
                if frame > end - pos - arg.n:
                    raise pickle.UnpicklingError("pickle frame runs past the end of the data")
            pos += arg.n
        elif arg.n == pickletools.UP_TO_NEWLINE:  # GLOBAL: two lines
            for _ in range(2):
                newline = data.find(b"\n", pos, pos + _MAX_GLOBAL_LINE)
                if newline < 0:
                    raise pickle.UnpicklingError(f"malformed pickle GLOBAL at byte {pos}")
                pos = newline + 1
        else:
            width = _LENGTH_BYTES[arg.n]
            if pos + width > end:
                break
            length = int.from_bytes(data[pos : pos + width], "little",
                                    signed=arg.n == pickletools.TAKEN_FROM_ARGUMENT4)
            if length < 0:
                raise pickle.UnpicklingError(f"negative length in pickle opcode {op.name}")
            pos += width + length
        if pos > end:
            break
    raise pickle.UnpicklingError("pickle data ends without a STOP opcode")


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves ``set``/``frozenset`` and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        # GLOBAL, STACK_GLOBAL, INST, OBJ and the EXT* opcodes all end up here.
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise UnsafePickleError(f"refusing to load global {module}.{name}")
        return allowed

    def persistent_load(self, pid: Any) -> NoReturn:
        raise UnsafePickleError("refusing a persistent id")


def loads_plain(data: bytes, max_opcodes: int = 200_000) -> Any:
    """Unpickle ``data`` allowing plain containers and scalars only, after :func:`scan`.

    Raises :class:`UnsafePickleError` for anything :func:`scan` or the unpickler refuses,
    and whatever the unpickler raises for malformed input (the caller maps both to its own
    error).
    """
    scan(data, max_opcodes)
    return RestrictedUnpickler(io.BytesIO(data)).load()
