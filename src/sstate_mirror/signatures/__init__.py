"""Signature files (``.siginfo``, stamps' ``.sigdata.<hash>``): read safely, dump, compare.

No bitbake import: everything here is written from the format facts in FORMATS.md §3-4.

* :mod:`.reader` — bytes -> :class:`Signature` (zstd-JSON or restricted pickle, size caps)
* :mod:`.hashes` — recompute basehash / taskhash and compare with the recorded ones
* :mod:`.dump` — the lines ``bitbake-dumpsig`` prints
* :mod:`.changes` — what changed between two signatures, as data
* :mod:`.compare` — the lines ``bitbake-diffsigs`` prints, with a recursion hook
* :mod:`.finder` — find a dependency's signature by ``pn:do_task`` and hash (for recursion)
"""

from __future__ import annotations

from .changes import Change, ChangeKind, compare_structured
from .compare import (
    RecurseCallback,
    compare_sigfiles,
    compare_signatures,
    diff_text,
    render_changes,
)
from .dump import dump_signature, dump_text
from .finder import (
    DirectoryFinder,
    IndexedFinder,
    Recursor,
    SignatureFinder,
    cache_root_of,
    split_key,
)
from .hashes import HashCheck, check_hashes, compute_basehash, compute_taskhash
from .model import Encoding, Signature
from .reader import DEFAULT_LIMITS, Limits, read_signature, read_signature_file

__all__ = [
    "DEFAULT_LIMITS",
    "Change",
    "ChangeKind",
    "DirectoryFinder",
    "Encoding",
    "HashCheck",
    "IndexedFinder",
    "Limits",
    "RecurseCallback",
    "Recursor",
    "Signature",
    "SignatureFinder",
    "cache_root_of",
    "check_hashes",
    "compare_sigfiles",
    "compare_signatures",
    "compare_structured",
    "compute_basehash",
    "compute_taskhash",
    "diff_text",
    "dump_signature",
    "dump_text",
    "read_signature",
    "read_signature_file",
    "render_changes",
    "split_key",
]
