"""Before a clean planned on a stored report (an S3 Inventory) deletes: is it still true?

A report is a picture of the mirror at the time its scan began. Since then a build may have
used a group (``touch`` re-dates one of its files), an upload may have sent a file again or
added a missing companion. A plan made on the report would delete those as unused. So every
file of every group the plan deletes from is looked at again (one ``stat`` each: the group's
archive, ``.siginfo`` and ``.sig``, or the file alone when it belongs to no group), and a
group is kept whole when any of its files is newer than the report, or a file the plan
deletes is gone or has another size. What stays is only what the report listed and is still
there as listed.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set

from ..backends.base import Backend, Entry
from ..naming import GROUPED_KINDS, group_key, member_paths
from ..transfer import Progress, run_parallel
from .clean import CleanPlan, Deletion


def spare_changed(plan: CleanPlan, target: Backend, since: float, *, jobs: int,
                  progress: Optional[Progress] = None) -> List[Deletion]:
    """Drop from ``plan`` the deletions the mirror no longer backs (see the module's doc);
    the deletions dropped. Any failed ``stat`` raises: then nothing is deleted."""
    progress = progress or Progress()
    paths: Set[str] = set()
    for d in plan.deletions:
        paths.add(d.artifact.path)
        if d.artifact.kind in GROUPED_KINDS:
            key = d.artifact.group_key
            paths.update(member_paths(key))
    found: Dict[str, Optional[Entry]] = {}
    ordered = sorted(paths)
    progress.phase(f"checking {len(ordered)} files on {target.url} against the inventory",
                   len(ordered))

    def probe(path: str) -> None:
        found[path] = target.stat(path)

    failures = run_parallel(ordered, probe, jobs=jobs, describe=str, progress=progress)
    progress.done()
    if failures:
        raise next(iter(failures.values()))
    changed = {group_key(p) for p, e in found.items() if e is not None and e.mtime > since}
    keep: List[Deletion] = []
    spared: List[Deletion] = []
    for d in plan.deletions:
        now = found.get(d.artifact.path)
        if (now is None or now.size != d.artifact.size
                or group_key(d.artifact.path, d.artifact.kind) in changed):
            spared.append(d)
        else:
            keep.append(d)
    plan.deletions = keep
    still = [d for d in spared if found.get(d.artifact.path) is not None]
    plan.kept += len(still)
    plan.kept_bytes += sum(d.artifact.size for d in still)
    return spared
