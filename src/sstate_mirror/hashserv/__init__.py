"""Talking to bitbake's hash equivalence server, without bitbake.

``connect(address, user=…, token=…)`` gives a :class:`HashServerClient`; commands use it only
through the small :class:`~sstate_mirror.commands.hashsync.HashIndex` interface, so a plan
never depends on the wire. See :mod:`.client` for the protocol and :mod:`.wire` for how reads
are bounded.
"""

from __future__ import annotations

from .address import Address, parse_address
from .client import DEFAULT_METHOD, GcStatus, HashServerClient, connect
from .errors import HashServerError, HashServerPermissionError

__all__ = [
    "DEFAULT_METHOD",
    "Address",
    "GcStatus",
    "HashServerClient",
    "HashServerError",
    "HashServerPermissionError",
    "connect",
    "parse_address",
]
