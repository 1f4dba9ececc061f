"""What every command module shares: its parser's shape, the options several commands take,
turning them into the values commands take, and opening SOURCE and TARGET.

A command module keeps only what is its own (its options, its plan and its report); the
positional SOURCE/TARGET, the selection, jobs and connection options, the progress display
and the checks of SOURCE come from here, so that every command treats them alike.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import re
import shlex
from typing import Any, Callable, Iterator, Optional, Pattern, Sequence, Tuple

from ..backends import Backend, BackendOptions, open_backend, scheme_of, supported_locations
from ..commands.listing import Selection
from ..commands.upload import SourceListing, list_source
from ..errors import NotFoundError, UsageError
from ..naming import Artifact, Kind, nested_cache_roots
from ..transfer import Progress
from .progress import make_progress
from .ui import UI
from .wording import plural

#: Help of the SOURCE argument of the commands that read a build's cache.
SOURCE_HELP = "local sstate cache (SSTATE_DIR)"
#: Help of the TARGET argument of the commands that work on a mirror.
TARGET_HELP = f"mirror: {supported_locations()} URL"

RunFunction = Callable[[argparse.Namespace, UI], int]


def add_command(sub: Any, parents: Sequence[argparse.ArgumentParser], name: str,
                run: RunFunction, *, help: str, description: str,
                source: Optional[str] = None, target: Optional[str] = TARGET_HELP,
                epilog: Optional[str] = None) -> argparse.ArgumentParser:
    """The parser of one command, with its SOURCE (when ``source`` is its help) and TARGET."""
    p: argparse.ArgumentParser = sub.add_parser(
        name, parents=list(parents), help=help, description=description, epilog=epilog)
    if source is not None:
        p.add_argument("source", metavar="SOURCE", help=source)
    if target is not None:
        p.add_argument("target", metavar="TARGET", help=target)
    p.set_defaults(run=run)
    return p


def add_mirror_options(parser: argparse.ArgumentParser, *, selection: bool = True,
                       jobs: bool = True) -> None:
    """The options of a command that reads a mirror: selection, parallelism, connection."""
    if selection:
        add_selection_options(parser)
    if jobs:
        add_jobs_option(parser)
    add_backend_options(parser)


def with_progress(body: Callable[[argparse.Namespace, UI, Progress], int]) -> RunFunction:
    """A command's ``run``: ``body`` with the progress display that suits the output."""
    @functools.wraps(body)
    def run(args: argparse.Namespace, ui: UI) -> int:
        with make_progress(ui) as progress:
            return body(args, ui, progress)
    return run


def check_arguments(args: argparse.Namespace) -> None:
    """What every command checks before it reads or writes anything: SOURCE and TARGET name a
    supported location (not empty, no typo'd scheme), ``--filter`` is a valid regex."""
    for attr, what in (("source", "SOURCE"), ("target", "TARGET")):
        value = getattr(args, attr, None)
        if isinstance(value, str):
            scheme_of(value, what)
    compile_filter(getattr(args, "filter", None))


def selection_words(args: argparse.Namespace) -> str:
    """The options that narrowed what a command looks at, as typed (``--filter '^zz'``)."""
    words = []
    for option in ("task", "filter", "arch"):
        value = getattr(args, option, None)
        if isinstance(value, list):
            value = ",".join(value) or None
        if value is not None:
            words.append(f"--{option} {shlex.quote(value)}")
    return " ".join(words)


def warn_nothing_selected(ui: UI, args: argparse.Namespace, what: str, where: str) -> None:
    """The warning of a command whose selection left nothing: it names the filter."""
    narrowed = selection_words(args)
    ui.warn(f"{narrowed} selected no {what} in {where}" if narrowed
            else f"no {what} in {where}")


def warn_if_none_selected(ui: UI, args: argparse.Namespace, selection: Selection,
                          artifacts: Sequence[Artifact], where: str) -> None:
    """For commands that are no gate: say when --filter/--arch matched no artifact."""
    if selection_words(args) and not any(a.name is not None and selection.matches(a)
                                         for a in artifacts):
        warn_nothing_selected(ui, args, "artifacts", where)


def selection_from_args(args: argparse.Namespace) -> Selection:
    """``--filter`` and ``--arch`` as a :class:`Selection` (the regex checked here)."""
    return Selection(pn_filter=compile_filter(getattr(args, "filter", None)),
                     arch=getattr(args, "arch", None))


@contextlib.contextmanager
def open_source_and_target(args: argparse.Namespace,
                           options: BackendOptions) -> Iterator[Tuple[Backend, Backend]]:
    """SOURCE (checked: it must exist) and TARGET (not yet contacted), closed afterwards."""
    with open_backend(args.source, options) as source, \
            open_backend(args.target, options) as target:
        check_source(source)
        yield source, target


def add_output_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """``-v``, ``-q``, ``--json``, ``--color``: accepted before and after the command name."""
    d = argparse.SUPPRESS if suppress else None
    parser.add_argument("-v", "--verbose", action="count", default=d if suppress else 0,
                        help="more detail (repeat for more)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        default=d if suppress else False, help="only errors and results")
    parser.add_argument("--json", action="store_true", default=d if suppress else False,
                        help="print one JSON document on stdout (human text goes to stderr)")
    parser.add_argument("--color", choices=("auto", "always", "never"),
                        default=d if suppress else "auto",
                        help="colour output (default: auto; NO_COLOR is honoured)")


def add_backend_options(parser: argparse.ArgumentParser) -> None:
    """Connection settings for remote mirrors; each backend uses the ones it knows."""
    g = parser.add_argument_group("mirror connection")
    g.add_argument("--endpoint-url", metavar="URL",
                   help="S3: endpoint of an S3-compatible server (also AWS_ENDPOINT_URL_S3,"
                        " AWS_ENDPOINT_URL); gs://, az://: an emulator or private endpoint"
                        " (also STORAGE_EMULATOR_HOST; an Azure connection string's"
                        " BlobEndpoint)")
    g.add_argument("--region", help="S3: region (default from the AWS configuration)")
    g.add_argument("--profile", help="S3: named profile from the AWS configuration")
    g.add_argument("--s3-addressing-style", choices=("auto", "path", "virtual"),
                   dest="addressing_style",
                   help="S3: bucket in the path or in the host name (default: path with"
                        " --endpoint-url, else auto)")
    g.add_argument("--user", help="HTTP: user name (also SSTATE_MIRROR_USER; default: ~/.netrc)")
    g.add_argument("--password-env", metavar="VAR", default="SSTATE_MIRROR_PASSWORD",
                   help="HTTP: environment variable holding the password"
                        " (default: SSTATE_MIRROR_PASSWORD)")
    g.add_argument("--token-env", metavar="VAR", default="SSTATE_MIRROR_TOKEN",
                   help="HTTP: environment variable holding a bearer token"
                        " (default: SSTATE_MIRROR_TOKEN)")
    g.add_argument("--auth", choices=("auto", "basic", "digest"), default="auto",
                   help="HTTP: authentication scheme (default: auto)")
    g.add_argument("--no-netrc", action="store_true", help="HTTP: do not read ~/.netrc")
    g.add_argument("--ca-cert", metavar="FILE", help="HTTPS: CA bundle to verify the server")
    g.add_argument("--insecure", action="store_true",
                   help="HTTPS: do not verify the server certificate (not recommended)")
    g.add_argument("--no-pipelining", action="store_true",
                   help="HTTP: one request at a time per connection, for a proxy that"
                        " mishandles HTTP/1.1 pipelining")
    g.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="wait for an answer (or its next bytes) at most this long, per"
                        " try (default: 60)")
    g.add_argument("--connect-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="wait for a connection at most this long, per try (default: 60)")
    g.add_argument("--retries", type=int, default=5, metavar="N",
                   help="retries of a request that failed transiently (timeout, reset,"
                        " 429, 5xx): at most N + 1 attempts, with backoff (default: 5)")


def add_use_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--used-within", metavar="AGE", default="1d",
                        help="an artifact counts as used by this build when bitbake wrote or"
                             " refreshed its local copy within AGE (default: 1d)")
    parser.add_argument("--refresh-interval", metavar="AGE", default="1d",
                        help="mark a used artifact on the mirror only when its last recorded"
                             " use there is older than AGE, so that 'clean --max-age' is exact"
                             " to within AGE; 0s marks every time (default: 1d)")


def add_jobs_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                        help="parallel transfers (default: what suits the mirror)")


def add_selection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--filter", metavar="PN-REGEX",
                        help="only recipes whose PN matches this regular expression"
                             " (matched from the start of PN, as re.match does)")
    parser.add_argument("--arch", metavar="ARCH",
                        help="only artifacts of this SSTATE_PKGARCH (e.g. core2-64, x86_64,"
                             " arm64, allarch)")


def backend_options_from_args(args: argparse.Namespace) -> BackendOptions:
    """Collect connection options; secrets come from the environment, never from argv."""
    timeout = getattr(args, "timeout", 60.0)
    if not (math.isfinite(timeout) and timeout > 0):  # NaN compares false with everything
        raise UsageError("--timeout must be a positive number of seconds")
    connect_timeout = getattr(args, "connect_timeout", 60.0)
    if not (math.isfinite(connect_timeout) and connect_timeout > 0):
        raise UsageError("--connect-timeout must be a positive number of seconds")
    if getattr(args, "retries", 5) < 0:
        raise UsageError("--retries must not be negative")
    user = getattr(args, "user", None) or os.environ.get("SSTATE_MIRROR_USER") or None
    password_env = getattr(args, "password_env", "SSTATE_MIRROR_PASSWORD")
    token_env = getattr(args, "token_env", "SSTATE_MIRROR_TOKEN")
    auth = getattr(args, "auth", "auto")
    return BackendOptions(
        endpoint_url=getattr(args, "endpoint_url", None),
        region=getattr(args, "region", None),
        profile=getattr(args, "profile", None),
        addressing_style=getattr(args, "addressing_style", None),
        user=user,
        password=os.environ.get(password_env) or None,
        token=os.environ.get(token_env) or None,
        auth_method=None if auth == "auto" else auth,
        use_netrc=not getattr(args, "no_netrc", False),
        ca_cert=getattr(args, "ca_cert", None),
        verify_tls=not getattr(args, "insecure", False),
        pipelining=not getattr(args, "no_pipelining", False),
        timeout=timeout,
        connect_timeout=connect_timeout,
        retries=getattr(args, "retries", 5),
    )


def check_source(source: Backend) -> None:
    """Check SOURCE, the build's local cache; a missing one is named as such, not as a mirror."""
    try:
        source.check()
    except NotFoundError as exc:
        raise NotFoundError(
            f"sstate cache {source.url} does not exist", url=exc.url,
            hint="SOURCE is the build's SSTATE_DIR, e.g. build/sstate-cache",
        ) from None


def read_source(args: argparse.Namespace, ui: UI, source: Backend, selection: Selection,
                progress: Progress) -> SourceListing:
    """SOURCE listed and judged (an sstate cache; a selection that matches something) before
    TARGET is contacted, let alone created: what ``upload`` and ``touch`` start with."""
    listing = list_source(source, progress)
    check_source_files(source, args.source, listing.artifacts)
    warn_if_none_selected(ui, args, selection, listing.artifacts, source.url)
    return listing


def settle_unless_dry_run(args: argparse.Namespace, target: Backend) -> None:
    """Ask TARGET once what it offers (its ``properties`` settle), after its check and before
    planning; a dry run asks nothing, as commands that only read."""
    if not args.dry_run:
        target.settle()


def check_source_files(source: Backend, given: str, artifacts: Sequence[Artifact]) -> None:
    """Stop before anything is written when SOURCE is not a cache: it holds no sstate file at
    all, or it holds caches one level below (their files would land where bitbake never
    looks). ``given`` is SOURCE as typed, to build the path the hint suggests."""
    if not any(a.kind in (Kind.ARCHIVE, Kind.SIGINFO) for a in artifacts):
        raise UsageError(f"SOURCE {given!r} holds no sstate files",
                         hint="SOURCE is the build's SSTATE_DIR (e.g. build/sstate-cache),"
                              " after a build")
    roots = nested_cache_roots(artifacts)
    if roots:
        raise UsageError(
            f"SOURCE {given!r} is not an sstate cache: no sstate files at its top, but"
            f" {plural(len(roots), 'cache')} below it: " + ", ".join(r + "/" for r in roots),
            hint="give one of them as SOURCE, e.g. "
                 + given.rstrip("/") + "/" + roots[0])


def compile_filter(expr: Optional[str]) -> Optional[Pattern[str]]:
    if expr is None:
        return None
    try:
        return re.compile(expr)
    except re.error as exc:
        raise UsageError(f"--filter {expr!r} is not a valid regular expression: {exc}") from exc


def jobs_from_args(args: argparse.Namespace, default: int) -> int:
    jobs = getattr(args, "jobs", None)
    if jobs is None:
        return default
    if jobs < 1 or jobs > 256:
        raise UsageError("--jobs must be between 1 and 256")
    return int(jobs)
