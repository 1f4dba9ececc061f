"""``--inventory`` and ``--inventory-max-age`` of ``info`` and ``clean``.

The option makes a command list an S3 mirror from its S3 Inventory report instead of
ListObjectsV2 (docs/s3.md, "Inventories"). ``clean`` refuses a report older than
``--inventory-max-age``: what was written or used after it is not in it.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Callable, Optional, Tuple

from ..backends import Backend, BackendOptions, Inventory, check_inventory_location, open_inventory
from ..catalog import Catalog
from ..commands.listing import list_artifacts
from ..errors import UsageError
from ..transfer import Progress
from ..units import format_age, parse_age
from .ui import UI

#: How old an inventory ``clean`` accepts by default: a daily report, and a day's delay.
DEFAULT_MAX_AGE = "2d"


def add_inventory_options(parser: argparse.ArgumentParser, *, clean: bool) -> None:
    parser.add_argument(
        "--inventory", metavar="S3URL",
        help="list an s3:// mirror from its S3 Inventory report (CSV; Parquet with the"
             " inventory extra) instead of listing the"
             " bucket: s3://DEST-BUCKET/PREFIX/SOURCE-BUCKET/CONFIG-ID (the newest report)"
             " or the URL of one manifest.json")
    if clean:
        parser.add_argument(
            "--inventory-max-age", metavar="AGE", default=DEFAULT_MAX_AGE,
            help="refuse an --inventory report whose scan began longer ago than AGE"
                 f" (default: {DEFAULT_MAX_AGE}); before deleting, each group to delete is"
                 " checked again on the mirror")


def check_inventory_args(args: argparse.Namespace) -> None:
    """Refuse a fumbled ``--inventory`` or ``--inventory-max-age`` before anything is opened."""
    if getattr(args, "inventory", None) is not None:
        check_inventory_location(args.inventory, args.target)
    max_age = getattr(args, "inventory_max_age", None)
    if max_age is not None:
        parse_age(max_age, "--inventory-max-age")


def inventory_from_args(args: argparse.Namespace, ui: UI, target: Backend,
                        options: BackendOptions, now: float) -> Optional[Inventory]:
    """The report ``--inventory`` names (None without it), refused when too old for clean."""
    if getattr(args, "inventory", None) is None:
        return None
    max_age = getattr(args, "inventory_max_age", None)
    limit = parse_age(max_age, "--inventory-max-age") if max_age is not None else None
    inventory = open_inventory(args.inventory, target, options)
    age = max(0.0, now - inventory.created)
    began = dt.datetime.fromtimestamp(inventory.created, dt.timezone.utc)
    when = began.strftime("%Y-%m-%d %H:%M UTC")
    if limit is not None and age > limit:
        inventory.close()
        raise UsageError(
            f"--inventory {inventory.url} began {format_age(age)} ago ({when}), more than"
            f" --inventory-max-age {max_age}: files used or uploaded since are not in it",
            hint="wait for the next report, raise --inventory-max-age, or drop --inventory")
    ui.info(f"listing from the inventory {inventory.url} (scan began {when},"
            f" {format_age(age)} ago)")
    return inventory


def list_mirror(args: argparse.Namespace, ui: UI, target: Backend, options: BackendOptions,
                now: float, progress: Progress,
                on_rows: Optional[Callable[[Catalog], None]] = None
                ) -> Tuple[Catalog, Optional[Inventory]]:
    """The mirror's files: from ``--inventory`` when given (with the report), else listed
    (``on_rows``: see :func:`~sstate_mirror.commands.listing.list_artifacts`)."""
    inventory = inventory_from_args(args, ui, target, options, now)
    if inventory is None:
        return list_artifacts(target, progress=progress, on_rows=on_rows), None
    try:
        return list_artifacts(inventory, progress=progress, on_rows=on_rows), inventory
    finally:
        inventory.close()
