"""Parsing and printing of ages and sizes given on the command line.

Ages are a whole number with one unit of ``w``, ``d``, ``h``, ``min`` (or ``m``) or ``s`` (as
isar-sstate takes them, plus ``min``). Anything else — ``1.5d``, ``-3d``, ``3``, ``abc`` — is
refused: a retention setting that is silently misread deletes the wrong artifacts. For the
same reason the options that *delete* by age (``--max-age``, ``--max-sig-age``) refuse the
bare ``m``: ``--max-age 30m`` reads as 30 minutes where 30 months was an easy thing to mean,
and would empty a mirror of everything older than half an hour. There, minutes are spelled
``min``.

Sizes are a number with an optional binary unit: ``K``, ``M``, ``G``, ``T`` (also ``KiB`` …,
and ``KB`` … which are read as binary units too, as ``du`` and ``ls -h`` do); no unit means
bytes.
"""

from __future__ import annotations

import datetime as dt
import re

from .errors import UsageError

_AGE_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE_RE = re.compile(r"^([0-9]+)(min|[wdhms])$")
_MONTHS_OR_YEARS = re.compile(r"^[0-9]+\s*(M|(?i:mo|mon|months?|y|yr|years?))$")
_MAX_AGE_SECONDS = 100 * 365 * 86400

_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([KMGTP]?)(?:i?B)?$", re.IGNORECASE)

_AGE_HELP = ("use a whole number and one unit of w (weeks), d (days), h (hours), min"
             " (minutes), s (seconds), e.g. 30d")


def parse_age(text: str, option: str = "age", *, deletes: bool = False) -> int:
    """``"2w"`` -> 1209600 seconds; raise :class:`UsageError` for anything malformed.

    ``deletes``: the option deletes what is older (``--max-age``): the ambiguous ``m`` is
    refused there, with the spellings that say what was meant.
    """
    value = text.strip()
    if _MONTHS_OR_YEARS.match(value):
        raise UsageError(f"{option} {text!r}: months and years are not units of age ({_AGE_HELP};"
                         " a month is about 4w or 30d, a year 52w)")
    m = _AGE_RE.match(value)
    if m is None:
        raise UsageError(f"{option} {text!r} is not an age: {_AGE_HELP}")
    if deletes and m.group(2) == "m":
        n = m.group(1)
        raise UsageError(
            f"{option} {text!r} is ambiguous: {n} minutes or {n} months? Write {n}min for"
            f" minutes; months are not a unit (about {int(n) * 30}d)")
    seconds = int(m.group(1)) * _AGE_UNITS[m.group(2)]
    if seconds > _MAX_AGE_SECONDS:
        raise UsageError(f"{option} {text!r} is more than a hundred years")
    return seconds


def parse_size(text: str, option: str = "size") -> int:
    """``"10G"`` -> 10737418240 bytes; binary units; :class:`UsageError` when malformed."""
    m = _SIZE_RE.match(text.strip())
    if m is None:
        raise UsageError(
            f"{option} {text!r} is not a size: use a number with an optional unit"
            " K, M, G or T (binary: 1K = 1024 bytes), e.g. 500G"
        )
    value = float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()]
    return int(value)


def format_size(n: float) -> str:
    """Human size with binary units: ``1.5 GiB``; bytes below 1 KiB."""
    if n < 1024:
        return f"{int(n)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024.0
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def format_age(seconds: float) -> str:
    """Compact age: ``45s``, ``12m``, ``5h``, ``3d``, ``10w``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    if s < 14 * 86400:
        return f"{s // 86400}d"
    return f"{s // (7 * 86400)}w"


def parse_time_or_age(text: str, now: float, option: str = "time") -> float:
    """A point in time: an age back from ``now`` (``2d``) or an ISO 8601 date or time.

    A time without a zone is UTC (``2026-12-01``, ``2026-12-01T06:00``), as log times are
    compared in UTC.
    """
    text = text.strip()
    if _AGE_RE.match(text):
        return now - parse_age(text, option)
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is neither an age (e.g. 2d) nor a date or time"
            " (e.g. 2026-12-01 or 2026-12-01T06:00:00Z)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.timestamp()
