"""Credentials for HTTP mirrors: bearer tokens, basic or digest as the server asks, netrc.

Nothing here ever puts a secret in a ``repr`` or a message.
"""

from __future__ import annotations

import netrc
import os
from typing import Generator, Optional, Tuple

import httpx

from .. import events


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <token>`` on every request."""

    def __init__(self, token: str) -> None:
        self.header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response,
                                                              None]:
        request.headers["Authorization"] = self.header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(***)"


class ChallengeAuth(httpx.Auth):
    """Basic or digest, as the server's first challenge asks.

    Nothing is sent before the server asks, so a password never travels in a scheme the
    server did not offer (basic to a digest server would expose it on plain HTTP).
    """

    def __init__(self, user: str, password: str) -> None:
        self._basic = httpx.BasicAuth(user, password)
        self._digest = httpx.DigestAuth(user, password)
        self._chosen: Optional[httpx.Auth] = None

    @property
    def scheme(self) -> str:
        """``basic`` or ``digest`` once the server has asked, ``none`` before."""
        if self._chosen is None:
            return "none"
        return "digest" if self._chosen is self._digest else "basic"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response,
                                                              None]:
        chosen = self._chosen
        if chosen is None:
            response = yield request
            if response.status_code != 401:
                return
            schemes = {
                h.strip().split(" ", 1)[0].lower()
                for h in response.headers.get_list("WWW-Authenticate")
                if h.strip()
            }
            for value in response.headers.get_list("WWW-Authenticate"):
                schemes.update(part.strip().split(" ", 1)[0].lower()
                               for part in value.split(",") if part.strip())
            if "digest" in schemes:
                chosen = self._digest
            elif "basic" in schemes:
                chosen = self._basic
            else:
                return
            self._chosen = chosen
            response.read()
        yield from chosen.auth_flow(request)

    def __repr__(self) -> str:
        return "ChallengeAuth(***)"


def netrc_lookup(host: str) -> Optional[Tuple[str, str]]:
    """(login, password) for ``host`` from ``$NETRC`` or ``~/.netrc``, as curl reads it."""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not os.path.isfile(path):
        return None
    try:
        found = netrc.netrc(path).authenticators(host)
    except (netrc.NetrcParseError, OSError) as exc:
        # the parser's message may quote a token from the file: say where, not what
        line = getattr(exc, "lineno", None)
        events.warning("cannot read %s%s; ignoring it", path, f" (line {line})" if line else "")
        return None
    if not found:
        return None
    login, _account, password = found
    if not login or password is None:
        return None
    return login, password
