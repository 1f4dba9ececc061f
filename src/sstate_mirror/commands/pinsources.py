"""Where the hashes of a pin (or a one-off keep-set) come from.

* bitbake's ``locked-sigs.inc`` (``bitbake -S lockedsigs TARGET``):
  ``SIGGEN_LOCKEDSIGS_<type>`` lists ``PN:TASK:UNIHASH`` for every task the target needs;
  ``SIGGEN_UNIHASHMAP`` entries (``PN:TASK:TASKHASH:UNIHASH``, where the two differ) add
  their unihash. The unihash is the hash in sstate names.
* a plain list: one hash, sstate file name or mirror path per line (``#`` starts a comment);
* a cache or mirror: every sstate object in it;
* a build's ``tmp/stamps`` tree: the hashes of its ``.sigdata``/``.siginfo`` stamp files.

Parsing is strict: a line of a list that names no hash is an error, not skipped, so that a
typo never pins less than the user meant. Text is bounded before it is parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Dict

from ..errors import UsageError
from ..naming import GROUPED_KINDS, Artifact, hash_of, parse_name, parse_stamp_name
from .pins import Label

#: Largest text source read: a locked-sigs.inc of 100,000 tasks is about 10 MiB.
MAX_SOURCE_BYTES = 64 * 1024 * 1024

_ASSIGN_RE = re.compile(
    r'^\s*(?:export\s+)?(?P<var>SIGGEN_LOCKEDSIGS_[A-Za-z0-9_.+-]+|SIGGEN_UNIHASHMAP)'
    r'\s*(?:\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*"(?P<value>[^"]*)"\s*$')
#: Settings of the locked-signatures machinery itself, not lists of tasks.
_NOT_LISTS = ("SIGGEN_LOCKEDSIGS_TYPES", "SIGGEN_LOCKEDSIGS_TASKSIG_CHECK",
              "SIGGEN_LOCKEDSIGS_SSTATE_EXISTS_CHECK", "SIGGEN_LOCKEDSIGS_EXCLUDE")


def is_locked_sigs(text: str) -> bool:
    return "SIGGEN_LOCKEDSIGS_" in text


def parse_locked_sigs(text: str, origin: str) -> Dict[str, Label]:
    """hash -> (PN, task) of every task a ``locked-sigs.inc`` lists."""
    objects: Dict[str, Label] = {}
    joined = re.sub(r"\\\r?\n", " ", text)  # bitbake's line continuations
    for line in joined.splitlines():
        m = _ASSIGN_RE.match(line)
        if m is None or m.group("var").startswith(_NOT_LISTS):
            continue
        unihash_map = m.group("var") == "SIGGEN_UNIHASHMAP"
        for token in m.group("value").split():
            fields = token.split(":")
            if unihash_map and len(fields) >= 4:
                pn, task, h = ":".join(fields[:-3]), fields[-3], fields[-1]
            elif not unihash_map and len(fields) >= 3:
                pn, task, h = ":".join(fields[:-2]), fields[-2], fields[-1]
            else:
                raise UsageError(f"{origin}: entry {token!r} is not PN:TASK:HASH")
            if hash_of(h) != h:
                raise UsageError(f"{origin}: entry {token!r} has no valid hash")
            objects.setdefault(h, (pn, task))
    if not objects:
        raise UsageError(f"{origin} lists no task hashes",
                         hint="make it with 'bitbake -S lockedsigs TARGET'")
    return objects


def parse_hash_list(text: str, origin: str) -> Dict[str, Label]:
    """hash -> (PN, task) of a list of hashes, sstate file names or mirror paths."""
    objects: Dict[str, Label] = {}
    for number, line in enumerate(text.splitlines(), 1):
        for token in line.split("#", 1)[0].split():
            h = hash_of(token)
            if h is None:
                raise UsageError(f"{origin}, line {number}: {token[:100]!r} is neither a task"
                                 " hash nor an sstate file name")
            parsed = parse_name(token.rsplit("/", 1)[-1])
            label = (parsed.pn, "do_" + parsed.task) if parsed is not None else ("", "")
            objects.setdefault(h, label)
    if not objects:
        raise UsageError(f"{origin} names no task hash")
    return objects


def parse_text(text: str, origin: str) -> Dict[str, Label]:
    """A text source: ``locked-sigs.inc`` where it is one, else a plain list."""
    if is_locked_sigs(text):
        return parse_locked_sigs(text, origin)
    return parse_hash_list(text, origin)


def objects_of_artifacts(artifacts: Iterable[Artifact]) -> Dict[str, Label]:
    """hash -> (PN, task) of every sstate object of a cache or mirror listing."""
    objects: Dict[str, Label] = {}
    for art in artifacts:
        if (art.name is not None and art.kind in GROUPED_KINDS
                and art.hash != "INVALID"):
            objects.setdefault(art.hash, (art.pn, "do_" + art.task))
    return objects


def objects_of_stamps(paths: Iterable[str]) -> Dict[str, Label]:
    """hash -> (PN, task) of the signature files of a ``tmp/stamps`` tree (relative paths)."""
    objects: Dict[str, Label] = {}
    for path in paths:
        stamp = parse_stamp_name(path)
        if stamp is not None and stamp.hash != "INVALID":
            objects.setdefault(stamp.hash, (stamp.pn, stamp.task))
    return objects
