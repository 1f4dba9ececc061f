"""The lines ``bitbake-dumpsig FILE`` prints for one signature.

Two generations are reproduced: bitbake >= 2.0 for zstd-JSON files (every collection printed
sorted) and bitbake 1.52 for legacy pickles (old key names, containers printed in the order
the file holds them). Sets print in sorted order (see :mod:`.pyrepr`), which is the only
difference from bitbake's own output.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from .hashes import compute_basehash, compute_taskhash
from .model import Signature
from .pyrepr import stable_repr, stable_str


def _checksum_key(pair: Tuple[str, Optional[str]]) -> Tuple[str, int, str]:
    # bitbake sorts [name, checksum] pairs; a missing checksum (None) would make Python's
    # sort fail there, so it sorts first among equal names here instead.
    name, checksum = pair
    return (name, 0 if checksum is None else 1, checksum or "")


def _checksums_text(pairs: Sequence[Tuple[str, Optional[str]]], legacy: bool) -> str:
    """JSON files hold ``[name, checksum]`` lists, pickles hold tuples: print them so."""
    if legacy:
        return stable_repr(list(pairs))
    return stable_repr([list(p) for p in sorted(pairs, key=_checksum_key)])


def _taint_text(taint: str) -> str:
    return taint.replace("nostamp:", "nostamp(uuid4):") if taint.startswith("nostamp:") else taint


def dump_signature(sig: Signature) -> List[str]:
    """The lines bitbake-dumpsig prints for ``sig`` (without line ends)."""
    if sig.is_legacy:
        return _dump_legacy(sig)
    out = [
        f"basehash_ignore_vars: {stable_repr(sorted(sig.basehash_ignore_vars))}",
        f"taskhash_ignore_tasks: {stable_repr(sorted(sig.taskhash_ignore_tasks or []))}",
        f"Task dependencies: {stable_repr(sorted(sig.taskdeps))}",
        f"basehash: {sig.basehash}",
    ]
    for var in sorted(sig.gendeps):
        out.append(f"List of dependencies for variable {var} is "
                   f"{stable_repr(sorted(sig.gendeps[var]))}")
    for var in sorted(sig.varvals):
        out.append(f"Variable {var} value is {stable_str(sig.varvals[var])}")
    _runtime_lines(sig, out, sort=True)
    return out


def _dump_legacy(sig: Signature) -> List[str]:
    """bitbake 1.52: old key names, sets and dicts printed as the pickle holds them."""
    out = [
        f"basewhitelist: {stable_str(sig.basehash_ignore_vars)}",
        f"taskwhitelist: {sig.taskhash_ignore_tasks}",
        f"Task dependencies: {stable_repr(sorted(sig.taskdeps))}",
        f"basehash: {sig.basehash}",
    ]
    for var, deps in sig.gendeps.items():
        out.append(f"List of dependencies for variable {var} is {stable_str(deps)}")
    for var, value in sig.varvals.items():
        out.append(f"Variable {var} value is {stable_str(value)}")
    _runtime_lines(sig, out, sort=False)
    return out


def _runtime_lines(sig: Signature, out: List[str], *, sort: bool) -> None:
    def order(items: Any) -> List[Any]:
        return sorted(items) if sort else list(items)

    if sig.runtaskdeps is not None:
        out.append(f"Tasks this task depends on: {stable_repr(order(sig.runtaskdeps))}")
    if sig.file_checksum_values is not None:
        out.append("This task depends on the checksums of files: "
                   + _checksums_text(sig.file_checksum_values, legacy=not sort))
    if sig.runtaskhashes is not None:
        for dep in order(sig.runtaskhashes):
            out.append(f"Hash for dependent task {dep} is {sig.runtaskhashes[dep]}")
    if sig.taint is not None:
        out.append(f"Tainted (by forced/invalidated task): {_taint_text(sig.taint)}")
    if sig.task is not None:
        out.append(f"Computed base hash is {compute_basehash(sig)} and from file {sig.basehash}")
    else:
        out.append("Unable to compute base hash")
    out.append(f"Computed task hash is {compute_taskhash(sig)}")


def dump_text(sig: Signature) -> str:
    """What bitbake-dumpsig writes to stdout: the lines joined, with a final newline."""
    lines = dump_signature(sig)
    return "\n".join(lines) + "\n" if lines else ""
