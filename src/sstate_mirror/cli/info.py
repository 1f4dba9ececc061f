"""``sstate-mirror info TARGET``."""

from __future__ import annotations

import argparse
import time
from typing import Any, Dict, List, Optional, Sequence

from ..backends import open_backend
from ..commands.hashsync import ServerKnowledge, ask_server
from ..commands.info import AGE_BUCKETS, NO_ARCH, InfoReport, Summary, Tally
from ..commands.listing import select
from ..commands.pins import PinStatus, pin_status, read_pins
from ..errors import EXIT_OK, UsageError
from ..transfer import Progress
from ..units import format_age, format_size
from .common import (
    add_command,
    add_mirror_options,
    backend_options_from_args,
    selection_from_args,
    warn_if_none_selected,
    with_progress,
)
from .hashserve import add_hashserve_options, hashserve_from_args, render_knowledge
from .inventory import add_inventory_options, check_inventory_args, list_mirror
from .ui import UI
from .wording import plural

TOP = 10


def register(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub, parents, "info", run,
        target="mirror or cache: a directory, file://, http(s):// or s3:// URL",
        help="show what a mirror holds: sizes, kinds, archs, tasks, ages, top recipes",
        description="Scan a mirror (or a local sstate cache) and summarise it. -v adds a"
        " line per recipe; --json gives everything as data.",
    )
    p.add_argument("--top", type=int, default=TOP, metavar="N",
                   help=f"how many recipes to list by size (default: {TOP})")
    add_mirror_options(p, jobs=False)
    add_inventory_options(p, clean=False)
    add_hashserve_options(p, "also count the archives whose unihash this hash equivalence"
                             " server knows, and those it does not")


@with_progress
def run(args: argparse.Namespace, ui: UI, progress: Progress) -> int:
    if args.top < 0:
        raise UsageError("--top must not be negative")
    selection = selection_from_args(args)
    hashserve = hashserve_from_args(args)
    check_inventory_args(args)
    knowledge: Optional[ServerKnowledge] = None
    options = backend_options_from_args(args)
    with open_backend(args.target, options) as target:
        target.check()
        ui.info(f"scanning {target.url}")
        now = time.time()
        # the whole listing is summed as it is listed, while the rest is listed
        summary = Summary(now)
        listing, inventory = list_mirror(
            args, ui, target, options, now, progress,
            on_rows=summary.feed if selection.everything else None)
        warn_if_none_selected(ui, args, selection, listing, target.url)
        artifacts = select(listing, selection)
        report = summary.report(artifacts)
        pins = pin_status(read_pins(target, now).pins, listing, now)
        if hashserve is not None:
            with hashserve.connect() as server:
                knowledge = ask_server(artifacts, server)
                address = str(server.address)
        if ui.json_mode:
            data: Dict[str, Any] = {"command": "info", "target": target.url, "now": now}
            if inventory is not None:
                data["inventory"] = {"url": inventory.url, "created": inventory.created}
            data.update(report.to_dict(top=args.top, detail=ui.verbose > 0))
            data["pins"] = [p.to_dict() for p in pins]
            if knowledge is not None:
                data["hashserve"] = {"address": address,
                                     **knowledge.to_dict(detail=ui.verbose > 0)}
            ui.emit_json(data)
            return EXIT_OK
    ui.result(render(report, top=args.top, detail=ui.verbose > 0, pins=pins))
    if knowledge is not None:
        ui.result("\n" + render_knowledge(knowledge, address, detail=ui.verbose > 0))
    return EXIT_OK


def _table(title: str, rows: List[List[str]], head: List[str]) -> List[str]:
    if not rows:
        return []
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [title]
    for r in [head, *rows]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  " + "  ".join(cells).rstrip())
    return [*lines, ""]


def _tally_rows(d: Dict[str, Tally], limit: int = 0) -> List[List[str]]:
    items = sorted(d.items(), key=lambda kv: (-kv[1].bytes, kv[0]))
    if limit:
        items = items[:limit]
    return [[k, str(t.files), format_size(t.bytes)] for k, t in items]


def render(report: InfoReport, *, top: int, detail: bool,
           pins: Sequence[PinStatus] = ()) -> str:
    """The human report (pure, so tests can read it)."""
    lines = [f"{plural(report.total.files, 'file')}, {format_size(report.total.bytes)}"]
    if report.oldest is not None and report.newest is not None:
        lines.append(f"newest file {format_age(report.now - report.newest)} old,"
                     f" oldest {format_age(report.now - report.oldest)} old")
    lines.append(plural(len(report.recipes), "recipe"))
    if report.archives_without_siginfo:
        n = report.archives_without_siginfo
        lines.append(f"{plural(n, 'archive')} {'has' if n == 1 else 'have'} no .siginfo")
    lines.append("")
    head = ["", "files", "size"]
    lines += _table("by kind:", _tally_rows(report.by_kind), head)
    lines += _table("by arch (SSTATE_PKGARCH):", _tally_rows(report.by_arch), head)
    if NO_ARCH in report.by_arch:
        lines[-1:-1] = [f"  {NO_ARCH}: no SSTATE_PKGARCH in the name: the arch-independent"
                        " tasks (fetch, unpack,",
                        "  patch, populate_lic), shared by every arch, and files that are not"
                        " sstate objects"]
    lines += _table("by task:", _tally_rows(report.by_task), head)
    lines += _table("by directory prefix:", _tally_rows(report.by_prefix), head)
    if len(report.by_layout) > 1 or "hh/hh" not in report.by_layout:
        lines += _table("by layout:", _tally_rows(report.by_layout), head)
    lines += _table("by SSTATE_VERSION:", _tally_rows(report.by_version), head)
    age_rows = [[label, str(report.by_age[label].files), format_size(report.by_age[label].bytes)]
                for _, label in AGE_BUCKETS if report.by_age[label].files]
    lines += _table("by age (time since last modification):", age_rows, head)
    lines += _table("pins (what clean keeps whatever its rules; the whole mirror):",
                    [[p.pin.name, str(p.groups), str(p.objects), format_size(p.bytes),
                      str(len(p.missing)), "expired" if p.expired else "live"] for p in pins],
                    ["", "groups", "files", "size", "lacking", "state"])
    lines += _table(f"top {top} recipes by size:",
                    [[r.pn, str(r.files), format_size(r.bytes)]
                     for r in report.top_recipes(top)], head)
    if detail:
        rows = []
        for r in sorted(report.recipes.values(), key=lambda r: r.pn):
            tasks = ",".join(f"{t}:{n}" for t, n in sorted(r.tasks.items())) or "-"
            rows.append([r.pn, str(r.files), format_size(r.bytes), str(r.archives),
                         format_age(report.now - r.newest), tasks])
        lines += _table("recipes:", rows, ["", "files", "size", "archives", "newest",
                                           "archives by task"])
    return "\n".join(lines).rstrip() + "\n"
