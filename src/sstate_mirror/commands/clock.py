"""The mirror's clock: ages are measured on it, and a mirror whose clock is far off is refused.

An age is "now" minus an mtime the mirror reports, and the mirror stamps its mtimes with its
own clock (S3's LastModified, a WebDAV server's getlastmodified). Measured with this
machine's clock instead, a runner whose clock is hours ahead makes every file look hours
older: ``clean`` over-deletes, silently. So "now" is taken from the mirror (the ``Date`` of
an answer, which HTTP servers send with every answer), and when the two clocks differ by more
than :data:`MAX_CLOCK_SKEW`, one of them is wrong in a way nobody noticed: the commands that
delete by age refuse to run rather than guess which. A directory mirror has no clock of its
own (its mtimes come from this machine, or from an NFS server the tool cannot ask), so this
machine's clock is used.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ..backends.base import Backend
from ..errors import PermanentError
from ..units import format_age

#: Largest difference between this machine's clock and the mirror's that is taken as
#: ordinary drift (ages are then measured on the mirror's clock). NTP keeps clocks within
#: milliseconds; minutes mean a clock nobody keeps.
MAX_CLOCK_SKEW = 300.0


@dataclass(frozen=True)
class MirrorClock:
    """The mirror's time as an offset from this machine's."""

    offset: float = 0.0
    """Seconds to add to this machine's clock to get the mirror's."""
    measured: bool = False
    """False: the mirror does not say (a directory); this machine's clock is used."""

    def now(self, local: Callable[[], float] = time.time) -> float:
        return local() + self.offset


def mirror_clock(target: Backend, *, max_skew: float = MAX_CLOCK_SKEW,
                 local: Callable[[], float] = time.time) -> MirrorClock:
    """Ask the mirror for its time; refuse (:class:`PermanentError`) beyond ``max_skew``."""
    before = local()
    server = target.server_time()
    after = local()
    if server is None:
        return MirrorClock()
    # an HTTP date is truncated to the second: the server's clock was in [server, server + 1)
    offset = server + 0.5 - (before + after) / 2
    if abs(offset) > max_skew + 0.5 + (after - before) / 2:
        direction = "behind" if offset > 0 else "ahead of"
        # to the nearest minute: a slow answer makes the measure a little short of the truth
        skew = format_age(60 * round(abs(offset) / 60))
        raise PermanentError(
            f"this machine's clock is {skew} {direction} the clock of"
            f" {target.url} (more than the {format_age(max_skew)} allowed): ages measured"
            " across the two cannot be trusted, so nothing is deleted by age",
            url=target.url,
            hint="set both clocks right (NTP) and run again")
    return MirrorClock(offset, True)
