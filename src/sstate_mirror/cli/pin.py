"""``sstate-mirror pin TARGET NAME --from SOURCE``, ``unpin TARGET NAME`` and ``pins TARGET``."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence

from ..backends import Backend, BackendOptions, open_backend
from ..backends.base import redact_url
from ..commands.listing import list_artifacts
from ..commands.pins import (
    Label,
    Pin,
    PinStatus,
    check_pin_name,
    delete_pin,
    pin_status,
    read_pin,
    read_pins,
    write_pin,
)
from ..commands.pinsources import (
    MAX_SOURCE_BYTES,
    objects_of_artifacts,
    objects_of_stamps,
    parse_text,
)
from ..errors import EXIT_FAILED, EXIT_OK, NotFoundError, UsageError
from ..units import format_size, parse_age
from .common import add_backend_options, add_command, backend_options_from_args
from .progress import make_progress
from .ui import UI
from .wording import plural

_SOURCE_HELP = ("a bitbake locked-sigs.inc ('bitbake -S lockedsigs TARGET'), a list of hashes"
                " or sstate file names ('-' reads stdin), an sstate cache directory or mirror"
                " URL (every object in it), or a build's tmp/stamps directory")


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, parents, "pin", run_pin,
        help="keep what a release needs: no clean deletes the groups a pin names",
        description="Store a pin on the mirror: a named set of task hashes whose artifact"
        " groups every clean keeps, under every rule (--max-age, --max-sig-age, --max-size,"
        " --max-versions), from any machine. A pin of the same name is replaced. The pin is"
        " stored below .sstate-mirror/pins/ on the mirror, where bitbake never looks."
        " Afterwards the command reports what the pin covers and which archives of pinned"
        " sstate tasks the mirror lacks (what that release would rebuild).")
    p.add_argument("name", metavar="NAME", help="the pin's name (e.g. release-5.0.3)")
    p.add_argument("--from", dest="sources", action="append", required=True,
                   metavar="SOURCE", help=f"what to pin, repeatable: {_SOURCE_HELP}")
    p.add_argument("--expires", metavar="DATE|AGE",
                   help="the pin stops protecting at DATE (2027-06-30, UTC) or AGE from now"
                        " (52w); expired pins are reported until unpinned")
    p.add_argument("-n", "--dry-run", action="store_true",
                   help="read the sources and report what the pin would cover; store nothing")
    add_backend_options(p)

    u = add_command(
        sub, parents, "unpin", run_unpin,
        help="remove pins, so that clean may delete what they kept",
        description="Remove pins from the mirror. Nothing else is deleted: the next clean"
        " decides about the groups the pins kept.")
    u.add_argument("names", nargs="+", metavar="NAME", help="the pins to remove")
    u.add_argument("--missing-ok", action="store_true",
                   help="a pin that does not exist is not an error")
    add_backend_options(u)

    ls = add_command(
        sub, parents, "pins", run_pins,
        help="list the mirror's pins: what each keeps and what the mirror lacks",
        description="List the pins stored on a mirror: when and from what each was made,"
        " when it expires, the groups, files and bytes it keeps on the mirror, and how many"
        " archives of its sstate tasks the mirror lacks (-v names them). Exit status 1 when"
        " a pin has expired.")
    ls.add_argument("names", nargs="*", metavar="NAME", help="only these pins")
    add_backend_options(ls)


def parse_expiry(text: str, now: float) -> float:
    """``--expires``: an ISO date or time (UTC unless it says otherwise) or an AGE from now."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            return now + parse_age(text, "--expires")
        except UsageError:
            raise UsageError(f"--expires {text!r} is neither a date (2027-06-30) nor an age"
                             " (52w)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    stamp = when.timestamp()
    if stamp <= now:
        raise UsageError(f"--expires {text!r} is in the past")
    return stamp


def load_source(spec: str, options: BackendOptions, ui: UI) -> Dict[str, Label]:
    """hash -> (PN, task) named by one ``--from``/``--keep`` SOURCE."""
    if spec == "":
        raise UsageError("an empty SOURCE: give a file, directory or mirror URL")
    if spec == "-":
        return parse_text(_bounded_text(sys.stdin.buffer.read(MAX_SOURCE_BYTES + 1), "stdin"),
                          "stdin")
    try:
        with open(spec, "rb") as f:
            return parse_text(_bounded_text(f.read(MAX_SOURCE_BYTES + 1), spec), spec)
    except IsADirectoryError:
        pass
    except FileNotFoundError:
        if "://" not in spec:
            raise UsageError(f"{spec}: no such file or directory") from None
    except OSError as exc:
        raise UsageError(f"cannot read {spec}: {exc.strerror or exc}") from None
    with open_backend(spec, options) as backend:
        backend.check()
        entries = list_artifacts(backend)
    objects = objects_of_artifacts(entries)
    if not objects:
        objects = objects_of_stamps(a.path for a in entries)
        if objects:
            ui.detail(f"{backend.url}: {plural(len(objects), 'hash', 'hashes')} from stamp"
                      " signature files")
    if not objects:
        raise UsageError(f"{backend.url} holds no sstate objects and no stamp signatures")
    return objects


def _bounded_text(data: bytes, origin: str) -> str:
    if len(data) > MAX_SOURCE_BYTES:
        raise UsageError(f"{origin} is larger than {format_size(MAX_SOURCE_BYTES)}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{origin} is not text (UTF-8)") from None


def load_sources(specs: Sequence[str], options: BackendOptions, ui: UI) -> Dict[str, Label]:
    objects: Dict[str, Label] = {}
    for spec in specs:
        for h, label in load_source(spec, options, ui).items():
            objects.setdefault(h, label)
    return objects


def _describe(status: PinStatus) -> str:
    pin = status.pin
    made = datetime.fromtimestamp(pin.created, timezone.utc).strftime("%Y-%m-%d %H:%M")
    text = (f"{pin.name}: {plural(len(pin.objects), 'hash', 'hashes')},"
            f" {plural(status.groups, 'group')} kept ({plural(status.objects, 'file')},"
            f" {format_size(status.bytes)}); made {made} UTC")
    if pin.expires is not None:
        until = datetime.fromtimestamp(pin.expires, timezone.utc).strftime("%Y-%m-%d")
        text += f"; EXPIRED {until}" if status.expired else f"; expires {until}"
    if status.missing:
        n = len(status.missing)
        text += f"; the mirror lacks {n} archive{'' if n == 1 else 's'} of its sstate tasks"
    return text


def _show(ui: UI, statuses: List[PinStatus]) -> None:
    say = ui.info if ui.json_mode else (lambda line: ui.result(line + "\n"))
    for status in statuses:
        say(_describe(status))
        ui.detail(f"  from {', '.join(status.pin.sources) or '(unknown)'}")
        for h, pn, task in status.missing:
            ui.detail(f"  missing: {pn}:{task}:{h}")


def run_pin(args: argparse.Namespace, ui: UI) -> int:
    name = check_pin_name(args.name)
    now = time.time()
    expires = parse_expiry(args.expires, now) if args.expires is not None else None
    backend_options = backend_options_from_args(args)
    objects = load_sources(args.sources, backend_options, ui)
    pin = Pin(name=name, created=now, objects=objects, expires=expires,
              sources=[_source_label(s) for s in args.sources])
    with open_backend(args.target, backend_options) as target, make_progress(ui) as progress:
        target.check()
        old = _existing(target, name)
        if not args.dry_run:
            write_pin(target, pin)
            verb = (f"replaced pin {name} (it had {plural(len(old.objects), 'hash', 'hashes')})"
                    if old else f"pinned {name}")
            ui.info(f"{verb}: {plural(len(objects), 'hash', 'hashes')} on {target.url}")
        # listed after the pin is stored: every clean from now on keeps what is reported here
        status = pin_status([pin], list_artifacts(target, progress=progress), now)[0]
    _show(ui, [status])
    if args.dry_run:
        ui.info(f"dry run: pin {name} not stored")
    if ui.json_mode:
        ui.emit_json({"command": "pin", "target": target.url, "dry_run": args.dry_run,
                      "replaced": old is not None, "pin": status.to_dict()})
    return EXIT_OK


def _source_label(spec: str) -> str:
    return "stdin" if spec == "-" else redact_url(spec) if "://" in spec else spec


def _existing(target: Backend, name: str) -> Optional[Pin]:
    try:
        return read_pin(target, name)
    except NotFoundError:
        return None


def run_unpin(args: argparse.Namespace, ui: UI) -> int:
    names = [check_pin_name(n) for n in args.names]
    with open_backend(args.target, backend_options_from_args(args)) as target:
        target.check()
        removed: List[str] = []
        absent: List[str] = []
        for name in names:
            (removed if delete_pin(target, name) else absent).append(name)
    for name in removed:
        ui.info(f"unpinned {name}")
    for name in absent:
        (ui.info if args.missing_ok else ui.error)(f"{target.url} has no pin {name!r}")
    if ui.json_mode:
        ui.emit_json({"command": "unpin", "target": target.url, "removed": removed,
                      "absent": absent})
    return EXIT_FAILED if absent and not args.missing_ok else EXIT_OK


def run_pins(args: argparse.Namespace, ui: UI) -> int:
    wanted = {check_pin_name(n) for n in args.names}
    with open_backend(args.target, backend_options_from_args(args)) as target, \
            make_progress(ui) as progress:
        target.check()
        now = time.time()
        artifacts = list_artifacts(target, progress=progress)
        stored = read_pins(target, now)
        pins = [p for p in stored.pins if not wanted or p.name in wanted]
        statuses = pin_status(pins, artifacts, now)
    unknown = sorted(wanted - {p.name for p in pins})
    for name in unknown:
        ui.error(f"{target.url} has no pin {name!r}")
    if not statuses and not unknown:
        ui.info(f"{target.url} has no pins")
    _show(ui, statuses)
    if ui.json_mode:
        ui.emit_json({"command": "pins", "target": target.url, "now": now,
                      "pins": [s.to_dict() for s in statuses], "unknown": unknown})
    return EXIT_FAILED if unknown or any(s.expired for s in statuses) else EXIT_OK
