"""The project's own error tree.

Every failure a user can act on is one of these, so the CLI can print one clear line and pick
the exit code without knowing which library failed underneath::

    SstateMirrorError
     ├── UsageError               bad command line or option value          (exit 2)
     ├── SignatureError           a signature file cannot be read safely    (exit 2)
     └── BackendError             the mirror or the local cache failed      (exit 3)
          ├── BackendUnavailable   scheme not supported / dependency missing
          ├── NotFoundError        the object or the mirror root is missing
          ├── AuthError            credentials missing, rejected or not allowed
          ├── PermanentError       retrying will not help (bad request, conflict, ...)
          └── TransientError       worth retrying (timeouts, resets, 5xx, 429)

Backends translate their library's exceptions into this tree in one place each, raised
``from`` the original so a ``-v`` traceback still shows the root cause. Messages never
contain credentials: backends build them from redacted URLs only.
"""

from __future__ import annotations

from typing import Optional

#: The exit codes, in one place: every command returns these names, never a number of its
#: own (docs/troubleshooting.md documents them; ``--help`` lists :data:`EXIT_MEANINGS`).
EXIT_OK = 0
EXIT_FAILED = 1
"""The job ran but something failed (a transfer, a delete), or a check found problems."""
EXIT_USAGE = 2
"""Bad command line or unreadable input; nothing was touched."""
EXIT_BACKEND = 3
"""The mirror or the cache could not be used at all."""
EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C, SIGINT, SIGTERM)."""

#: Each code with the words ``sstate-mirror --help`` gives it.
EXIT_MEANINGS = ((EXIT_OK, "success"), (EXIT_FAILED, "partial failure or findings"),
                 (EXIT_USAGE, "usage error"), (EXIT_BACKEND, "mirror unusable"),
                 (EXIT_INTERRUPTED, "interrupted"))


class SstateMirrorError(Exception):
    """Base of every error this tool reports without a traceback."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(SstateMirrorError):
    """The command line asks for something impossible; nothing was touched."""

    exit_code = EXIT_USAGE


class SignatureError(SstateMirrorError):
    """A .siginfo/.sigdata file is malformed, too large or unsafe to read."""

    exit_code = EXIT_USAGE


class BackendError(SstateMirrorError):
    """A storage operation failed. ``url`` names the mirror (redacted), ``path`` the object."""

    exit_code = EXIT_BACKEND
    retryable = False
    #: The backend already retried the failing request as often as ``--retries`` allows, so
    #: the transfer layer must not retry the whole operation again (that would multiply the
    #: attempts a server sees: ``--retries 2`` meant 9 requests instead of 3).
    retried = False

    def __init__(
        self,
        message: str,
        *,
        url: Optional[str] = None,
        path: Optional[str] = None,
        hint: Optional[str] = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.url = url
        self.path = path


class BackendUnavailable(BackendError):
    """The URL scheme is not supported, or an optional dependency is missing."""


class NotFoundError(BackendError):
    """The object (or the mirror root itself) does not exist."""


class AuthError(BackendError):
    """Credentials are missing, wrong, or lack permission for the operation."""


class PermanentError(BackendError):
    """A failure that a retry will not fix."""


class TransientError(BackendError):
    """A failure worth retrying: timeout, reset connection, throttling, server error."""

    retryable = True


class Interrupted(SstateMirrorError):
    """The user pressed Ctrl-C; in-flight work was finished or rolled back."""

    exit_code = EXIT_INTERRUPTED
