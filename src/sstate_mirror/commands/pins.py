"""Pins: sets of task hashes that every ``clean`` keeps, stored in the mirror itself.

A release that is built rarely must not lose its sstate to clean by last use or by size. A
pin names the exact hashes such a build needs (from bitbake's ``locked-sigs.inc``, a cache, a
list) and lives on the mirror, below :data:`~sstate_mirror.naming.PINS_DIR`, so that every
clean, from any machine, honours it. One JSON document per pin, written with the backend's
atomic ``put``: a reader sees the old pin or the new one, never half of one.

A pin protects *groups* (archive, ``.siginfo``, ``.sig``) by hash: the hash in an sstate name
is bitbake's unihash, the one ``locked-sigs.inc`` lists. A pin past its ``expires`` time is
reported and protects nothing any more, so that a forgotten pin does not keep a mirror full
for ever.

Everything read back from a mirror is bounded (:data:`MAX_PIN_BYTES`) and checked field by
field before use: a pin file is data from a server, not trusted code or structure.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Set, Tuple, cast

from ..backends.base import Backend
from ..errors import BackendError, NotFoundError, PermanentError, UsageError
from ..naming import (
    GROUPED_KINDS,
    PIN_NAME_RE,
    PINS_DIR,
    Artifact,
    Group,
    Kind,
    pin_name_of,
    pin_path,
)

#: Version of the pin document; a newer one is refused rather than half understood.
PIN_FORMAT = 1
#: Largest pin document read from a mirror: about 100 bytes per task, so a release of
#: 150,000 tasks (several machines of a large image) fits; parsed, it takes about 4 times that.
MAX_PIN_BYTES = 16 * 1024 * 1024
#: Largest sum of all pin documents one command reads (they are held together).
MAX_PINS_TOTAL_BYTES = 64 * 1024 * 1024
#: Most pins one mirror may hold before reading them is refused as hostile.
MAX_PINS = 1_000

#: (PN, task) for reports; either may be '' where the source did not say.
Label = Tuple[str, str]


@dataclass
class Pin:
    """One named set of hashes, as stored on the mirror."""

    name: str
    created: float
    objects: Dict[str, Label]
    """hash -> (PN, task) of every pinned task."""
    sources: List[str] = field(default_factory=list)
    """What the hashes were taken from (file names, URLs without credentials)."""
    expires: Optional[float] = None

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def to_bytes(self) -> bytes:
        doc = {
            "format": PIN_FORMAT,
            "name": self.name,
            "created": self.created,
            "expires": self.expires,
            "sources": self.sources,
            "objects": [[h, pn, task] for h, (pn, task) in sorted(self.objects.items())],
        }
        return json.dumps(doc, indent=0, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def from_bytes(cls, data: bytes, name: str) -> Pin:
        """Parse and check a stored pin; :class:`PermanentError` for anything malformed."""
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise PermanentError(f"pin {name!r} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise PermanentError(f"pin {name!r} is not a JSON object")
        if doc.get("format") != PIN_FORMAT:
            raise PermanentError(
                f"pin {name!r} has format {doc.get('format')!r}; this version reads"
                f" {PIN_FORMAT}", hint="upgrade sstate-mirror")
        created, expires = doc.get("created"), doc.get("expires")
        sources, rows = doc.get("sources"), doc.get("objects")
        if (not _number(created) or not (expires is None or _number(expires))
                or not isinstance(sources, list) or not isinstance(rows, list)
                or not all(isinstance(s, str) for s in sources)):
            raise PermanentError(f"pin {name!r} is malformed")
        objects: Dict[str, Label] = {}
        for row in rows:
            if (not isinstance(row, list) or len(row) != 3
                    or not all(isinstance(x, str) for x in row) or not _is_hash(row[0])):
                raise PermanentError(f"pin {name!r} has a malformed entry: {str(row)[:80]}")
            objects[row[0]] = (row[1], row[2])
        return cls(name=name, created=float(cast(float, created)), objects=objects,
                   sources=sources, expires=None if expires is None else float(expires))


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_hash(text: str) -> bool:
    return 32 <= len(text) <= 128 and all(c in "0123456789abcdef" for c in text)


def check_pin_name(name: str) -> str:
    """The name, or a usage error saying what a pin name may be."""
    if not PIN_NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid pin name {name!r}: letters, digits and . _ + - (at most 128, starting"
            " with a letter or digit)")
    return name


# --- reading and writing pins on a mirror -------------------------------------------------


@dataclass
class PinSet:
    """The pins of a mirror, and which hashes the live (unexpired) ones protect."""

    pins: List[Pin] = field(default_factory=list)
    now: float = 0.0
    keep: Dict[str, str] = field(default_factory=dict)
    """hash -> name of the (first) live pin or keep-set that protects it."""

    @classmethod
    def of(cls, pins: Iterable[Pin], now: float) -> PinSet:
        pin_set = cls(sorted(pins, key=lambda p: p.name), now)
        for pin in pin_set.pins:
            if not pin.expired(now):
                for h in pin.objects:
                    pin_set.keep.setdefault(h, pin.name)
        return pin_set

    def add_keep(self, name: str, objects: Mapping[str, Label]) -> None:
        """A one-off keep-set (``clean --keep``): protects like a pin, stored nowhere."""
        for h in objects:
            self.keep.setdefault(h, name)

    @property
    def expired(self) -> List[Pin]:
        return [p for p in self.pins if p.expired(self.now)]

    def protecting(self, group: Group) -> Optional[str]:
        """The pin that keeps this group, or None."""
        name = group.name
        if name is None or not self.keep:
            return None
        return self.keep.get(name.hash)


def list_pin_paths(backend: Backend) -> List[str]:
    """Paths of the pins stored on the mirror (one small listing of the pins directory)."""
    try:
        entries = [e.path for e in backend.list(PINS_DIR)]
    except NotFoundError:
        return []
    paths = [p for p in entries if pin_name_of(p) is not None]
    if len(paths) > MAX_PINS:
        raise PermanentError(f"{backend.url} holds {len(paths)} pins; at most {MAX_PINS}"
                             " are read", url=backend.url)
    return sorted(paths)


def read_pin(backend: Backend, name: str) -> Pin:
    """One pin; :class:`NotFoundError` when the mirror has no pin of that name."""
    return Pin.from_bytes(backend.read(pin_path(check_pin_name(name)), MAX_PIN_BYTES), name)


def read_pins(backend: Backend, now: float) -> PinSet:
    """Every pin of the mirror. A pin that cannot be read fails the call: a clean that went
    on without it could delete what it protects.

    The pins directory is listed on its own (one small request), never taken from a full
    listing: some WebDAV servers (nginx) leave dot-directories out of listings.
    """
    paths = list_pin_paths(backend)
    pins: List[Pin] = []
    budget = MAX_PINS_TOTAL_BYTES
    for path in paths:
        name = pin_name_of(path)
        assert name is not None
        try:
            if budget <= 0:
                raise PermanentError(f"the pins of {backend.url} exceed"
                                     f" {MAX_PINS_TOTAL_BYTES} bytes in all", url=backend.url)
            data = backend.read(path, min(budget, MAX_PIN_BYTES))
            budget -= len(data)
            pins.append(Pin.from_bytes(data, name))
        except NotFoundError:
            continue  # unpinned between the listing and the read
        except BackendError as exc:
            raise type(exc)(f"cannot read pin {name!r} on {backend.url}: {exc}",
                            url=backend.url, hint="a clean never runs without its pins;"
                            " fix or remove the pin with 'sstate-mirror unpin'") from None
    return PinSet.of(pins, now)


def write_pin(backend: Backend, pin: Pin) -> None:
    data = pin.to_bytes()
    backend.put(pin_path(pin.name), io.BytesIO(data), len(data))


def delete_pin(backend: Backend, name: str) -> bool:
    """Remove a pin; False when there was none of that name."""
    path = pin_path(check_pin_name(name))
    if backend.stat(path) is None:
        return False
    failures = backend.delete([path])
    if failures:
        raise failures[path]
    return True


# --- what a pin covers on a mirror --------------------------------------------------------


@dataclass
class PinStatus:
    """A pin against a mirror listing: what it protects there and what the mirror lacks."""

    pin: Pin
    expired: bool
    groups: int = 0
    objects: int = 0
    bytes: int = 0
    missing: List[Tuple[str, str, str]] = field(default_factory=list)
    """(hash, PN, task) of pinned tasks whose archive the mirror lacks, for sstate tasks."""
    absent: int = 0
    """Pinned hashes of which the mirror has no file at all (archive or signature)."""

    def to_dict(self) -> Dict[str, Any]:
        return {
            "name": self.pin.name, "created": self.pin.created, "expires": self.pin.expires,
            "expired": self.expired, "sources": self.pin.sources,
            "hashes": len(self.pin.objects), "groups": self.groups, "objects": self.objects,
            "bytes": self.bytes, "absent": self.absent,
            "missing_archives": [{"hash": h, "pn": pn, "task": t}
                                 for h, pn, t in self.missing],
        }


def pin_status(pins: Iterable[Pin], artifacts: Iterable[Artifact], now: float
               ) -> List[PinStatus]:
    """Each pin's groups, objects and bytes on the mirror, and the archives it lacks.

    A pinned task "lacks its archive" when the mirror has no archive of that hash and the
    task is one that has archives (a task of which the mirror holds an archive of any hash,
    or which the source named as such): ``do_compile`` never has one, so it is not counted.
    """
    pins = list(pins)
    if not pins:
        return []  # no pass over a listing of millions of files for nothing
    named = {h for pin in pins for h in pin.objects}
    by_hash: Dict[str, List[Artifact]] = {}  # only the pinned hashes: a mirror holds millions
    archive_hashes: Set[str] = set()
    sstate_tasks: Set[str] = set()
    for art in artifacts:
        if art.name is None or art.kind not in GROUPED_KINDS:
            continue
        if art.kind is Kind.ARCHIVE:
            sstate_tasks.add(art.task)
        if art.hash not in named:
            continue
        by_hash.setdefault(art.hash, []).append(art)
        if art.kind is Kind.ARCHIVE:
            archive_hashes.add(art.hash)
    out = []
    for pin in pins:
        status = PinStatus(pin, pin.expired(now))
        for h, (pn, task) in sorted(pin.objects.items(), key=lambda kv: (kv[1], kv[0])):
            members = by_hash.get(h, [])
            if members:
                status.groups += len({m.group_key for m in members})
                status.objects += len(members)
                status.bytes += sum(m.size for m in members)
            else:
                status.absent += 1
            bare = task[3:] if task.startswith("do_") else task
            if h not in archive_hashes and bare in sstate_tasks:
                status.missing.append((h, pn, task))
        out.append(status)
    return out
