"""Which mirror files to mark as used: at most one per group, and only where the mark is stale.

Use-based retention (``clean --max-age`` by last use) needs the mirror to learn that a build
used a group. Marking is a request or two per file on a remote store, and the upload after
every CI build is the command people run most; so the plan spends requests only where they
change what ``clean`` will decide:

* **Stale only.** ``clean`` takes a group's newest member time (and, on a directory mirror,
  the ``.siginfo``'s access time, bitbake's own mark) as its last use. A group whose last use
  on the mirror is within ``refresh_after`` of now needs no new mark: ``clean --max-age`` is
  then exact to within that interval, and a group another build marked minutes ago costs
  nothing. The times come from the listing the caller already has.
* **One mark per group.** Raising any one member's time raises the group's last use, so one
  member is marked: on a store whose touch copies the object (``touch_cost == "size"``: S3,
  Apache's ``COPY``) the smallest; where a touch costs the same for any file the ``.siginfo``
  (the member bitbake itself marks on a ``file://`` mirror), else the smallest.

Pure: no I/O and no clock; ``upload``, ``touch`` and anything that learns use another way (an
access log) call :func:`plan_marks` with a set of used group keys and the mirror's groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import List, Optional

from ..naming import Artifact, Group

#: Default of ``--refresh-interval``: ``clean --max-age`` stays exact to within a day, and a
#: mirror that CI builds use every day sees each used group marked about once a day.
DEFAULT_REFRESH_INTERVAL = 86400


@dataclass
class MarkPlan:
    """The outcome of :func:`plan_marks`."""

    marks: List[str] = field(default_factory=list)
    """Mirror paths to touch, one per stale used group, sorted."""
    fresh: int = 0
    """Used groups whose last use on the mirror is recent enough: nothing to do."""
    absent: int = 0
    """Used groups of which the mirror holds nothing (there is nothing to mark)."""


def mark_member(group: Group, touch_cost: str) -> Optional[Artifact]:
    """The member of ``group`` to touch on a store whose touch costs ``touch_cost``.

    ``"size"``: the smallest member (a server-side copy moves its bytes); otherwise the
    ``.siginfo`` when there is one, so that one file carries every mark of the group.
    Ties go to the path that sorts first, so the choice is stable from run to run.
    """
    members = group.members()
    if not members:
        return None
    if touch_cost != "size" and group.siginfo is not None:
        return group.siginfo
    return min(members, key=lambda a: (a.size, a.path))


def is_stale(group: Group, now: float, refresh_after: float) -> bool:
    """True when the group's last use on the mirror is at least ``refresh_after`` ago.

    ``refresh_after`` 0 (or less) makes every group stale: mark on every use. Otherwise a
    last use in the future (clock skew between the mirror and this machine) reads as fresh.
    """
    return refresh_after <= 0 or now - group.last_used >= refresh_after


def plan_marks(
    used: Iterable[str],
    mirror: Mapping[str, Group],
    *,
    now: float,
    refresh_after: float,
    touch_cost: str,
) -> MarkPlan:
    """Plan the marks for the groups ``used`` (group keys, see :func:`naming.group_key`).

    ``mirror`` maps group keys to the groups as the mirror holds them (at least the used
    ones; members with their mirror times). ``refresh_after`` is in seconds (0 marks every
    used group, once).
    """
    plan = MarkPlan()
    for key in sorted(set(used)):
        group = mirror.get(key)
        member = mark_member(group, touch_cost) if group is not None else None
        if group is None or member is None:
            plan.absent += 1
        elif is_stale(group, now, refresh_after):
            plan.marks.append(member.path)
        else:
            plan.fresh += 1
    plan.marks.sort()
    return plan
