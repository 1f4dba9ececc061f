"""Errors of talking to a hash equivalence server."""

from __future__ import annotations

from ..errors import EXIT_BACKEND, SstateMirrorError


class HashServerError(SstateMirrorError):
    """The hash equivalence server could not be used: unreachable, refusing, or misbehaving.

    Exit code 3 like a mirror that cannot be used. Messages name the server by its printable
    address and never carry the token.
    """

    exit_code = EXIT_BACKEND


class HashServerPermissionError(HashServerError):
    """The server refused an operation: no permission, or it is read-only."""
