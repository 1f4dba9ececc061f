"""``--hashserve``: the options naming a hash equivalence server, and reporting what it did.

The address comes from ``--hashserve`` or ``SSTATE_MIRROR_HASHSERVE`` (for CI), the user from
``--hashserve-user`` or ``SSTATE_MIRROR_HASHSERVE_USER``, the token only from the environment
(``--hashserve-token-env`` names the variable): a token on the command line would show in
``ps`` and in CI logs.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

from ..commands.clean import CleanPlan, CleanResult
from ..commands.hashsync import (
    ServerKnowledge,
    execute_server_clean,
    new_mark,
    plan_server_clean,
    surviving_archives,
)
from ..errors import EXIT_FAILED, EXIT_OK, UsageError
from ..hashserv import (
    HashServerClient,
    HashServerError,
    HashServerPermissionError,
    connect,
    parse_address,
)
from ..naming import Artifact
from .ui import UI

ADDRESS_ENV = "SSTATE_MIRROR_HASHSERVE"
USER_ENV = "SSTATE_MIRROR_HASHSERVE_USER"
TOKEN_ENV = "SSTATE_MIRROR_HASHSERVE_TOKEN"  # noqa: S105 (a variable name)


def add_hashserve_options(parser: argparse.ArgumentParser, purpose: str) -> None:
    g = parser.add_argument_group("hash equivalence server")
    g.add_argument("--hashserve", metavar="ADDRESS",
                   help=f"{purpose}. ADDRESS as BB_HASHSERVE takes it: HOST:PORT,"
                        f" [IPv6]:PORT, unix://PATH, ws://HOST:PORT or wss://HOST (also"
                        f" {ADDRESS_ENV})")
    g.add_argument("--hashserve-user", metavar="USER",
                   help=f"log in to the hash server as USER (also {USER_ENV})")
    g.add_argument("--hashserve-token-env", metavar="VAR", default=TOKEN_ENV,
                   help=f"environment variable holding USER's token (default: {TOKEN_ENV})")


@dataclass(frozen=True)
class HashServeSettings:
    address: str
    user: Optional[str]
    token: Optional[str]
    timeout: float

    def connect(self) -> HashServerClient:
        return connect(self.address, user=self.user, token=self.token, timeout=self.timeout)


def hashserve_from_args(args: argparse.Namespace) -> Optional[HashServeSettings]:
    """The server to use, checked before anything is contacted; None without one."""
    address = getattr(args, "hashserve", None) or os.environ.get(ADDRESS_ENV) or None
    if address is None:
        return None
    parse_address(address)
    user = getattr(args, "hashserve_user", None) or os.environ.get(USER_ENV) or None
    token_env = getattr(args, "hashserve_token_env", TOKEN_ENV)
    token = os.environ.get(token_env) or None
    if user and token is None:
        raise UsageError(f"--hashserve-user {user!r} needs its token in ${token_env}")
    return HashServeSettings(address=address, user=user, token=token,
                             timeout=getattr(args, "timeout", 60.0))


def check_admin(settings: HashServeSettings, ui: UI) -> None:
    """Before the mirror is touched: can this user garbage-collect the server at all?"""
    with settings.connect() as server:
        try:
            status = server.gc_status()
        except HashServerPermissionError as exc:
            raise HashServerPermissionError(
                f"{exc}; nothing was cleaned",
                hint="clean --hashserve needs a user with the @db-admin permission"
                     " (--hashserve-user, its token in the environment) on the writable"
                     " server, not a read-only one: see docs/hashserv.md#permissions",
            ) from exc
        ui.detail(f"hash server {server.address}: {status.keep + status.remove} unihash rows"
                  + (f", a collection under mark {status.mark!r} in progress"
                     if status.mark else ""))


def clean_server(settings: HashServeSettings, ui: UI, listed: Sequence[Artifact],
                 plan: CleanPlan, result: Optional[CleanResult],
                 report: Dict[str, Any]) -> int:
    """After the mirror's clean: keep on the server exactly the unihashes of what is left.

    Returns the exit status of this step: 1 when it refused to sweep, 3 when the server
    failed (reported here, so that the mirror's own result is still printed and in --json).
    """
    dry_run = result is None
    if result is not None and result.interrupted:
        ui.warn("hash server not cleaned: the mirror's clean was interrupted")
        return EXIT_OK
    server_plan = plan_server_clean(surviving_archives(listed, plan, result),
                                    new_mark(time.time()))
    report["hashserve"] = {"plan": server_plan.to_dict()}
    if server_plan.refusal is not None:
        ui.error(f"hash server not cleaned: {server_plan.refusal}")
        return EXIT_FAILED
    try:
        with settings.connect() as server:
            done = execute_server_clean(server_plan, server, dry_run=dry_run)
            where = str(server.address)
    except HashServerError as exc:
        report["hashserve"]["error"] = str(exc)
        ui.report_exception(exc)
        ui.error("hash server not swept")
        return exc.exit_code
    report["hashserve"]["result"] = done.to_dict()
    kept = len(server_plan.unihashes)
    if done.refusal is not None:
        ui.error(f"hash server {where} not swept: {done.refusal}")
        return EXIT_FAILED
    if dry_run:
        ui.info(f"dry run: hash server {where} holds {done.rows_before} unihash rows; it"
                f" knows {done.known} of the {kept} unihashes of the archives left; how"
                " many rows a sweep removes is known only once they are marked")
    else:
        ui.info(f"hash server {where}: {kept} unihashes of archives kept"
                f" ({done.marked_rows} rows marked), {done.swept_rows} rows swept,"
                f" {done.unused_outhashes_removed} unused output hashes removed")
    return EXIT_OK


def render_knowledge(knowledge: ServerKnowledge, address: str, *, detail: bool) -> str:
    """Human lines for ``info``/``verify --hashserve``."""
    t = knowledge.total
    lines = [f"hash server {address}: {t.known} archives have a unihash it knows,"
             f" {t.unknown} have one it does not (builds will not find those)"]
    if knowledge.without_unihash:
        lines.append(f"  {knowledge.without_unihash} archives are named by no unihash"
                     " (legacy hashes)")
    if detail:
        width = max((len(pn) for pn in knowledge.by_recipe), default=0)
        for pn, tally in sorted(knowledge.by_recipe.items()):
            lines.append(f"  {pn.ljust(width)}  known {tally.known}  unknown {tally.unknown}")
    return "\n".join(lines) + "\n"


__all__ = ["HashServeSettings", "HashServerError", "add_hashserve_options", "check_admin",
           "clean_server", "hashserve_from_args", "render_knowledge"]
