"""Signature files (``.siginfo``, stamps' ``.sigdata.<hash>``): read safely, dump, compare.

No bitbake import: everything here is written from the format facts in FORMATS.md §3-4.

* :mod:`.reader` — bytes -> :class:`Signature` (zstd-JSON or restricted pickle, size caps)
* :mod:`.hashes` — recompute basehash / taskhash and compare with the recorded ones
* :mod:`.dump` — the lines ``bitbake-dumpsig`` prints
* :mod:`.compare` — the lines ``bitbake-diffsigs`` prints, with a recursion hook
* :mod:`.finder` — find a dependency's signature by ``pn:do_task`` and hash (for recursion)
"""

from __future__ import annotations

from .hashes import HashCheck, check_hashes, compute_basehash, compute_taskhash
from .model import Encoding, Signature
from .reader import DEFAULT_LIMITS, Limits, read_signature, read_signature_file

__all__ = [
    "DEFAULT_LIMITS",
    "Encoding",
    "HashCheck",
    "Limits",
    "Signature",
    "check_hashes",
    "compute_basehash",
    "compute_taskhash",
    "read_signature",
    "read_signature_file",
]
