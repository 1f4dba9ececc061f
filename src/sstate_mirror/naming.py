"""The sstate naming model: the only module that knows what an sstate file name means.

An sstate object is named (OE-core ``sstate.bbclass``, Isar's copy of it)::

    [PREFIX/]hh/hh/sstate:PN:ARCHSPEC:PV:PR:PKGARCH:VERSION:HASH_TASK.EXT[.siginfo|.sig]

where ARCHSPEC is ``${PACKAGE_ARCH}${TARGET_VENDOR}-${TARGET_OS}`` and, for software-only
tasks (fetch, unpack, patch, populate_lic), both ARCHSPEC and PKGARCH are empty. PREFIX is
``${NATIVELSBSTRING}`` (``universal``, ``debian-12``, Isar's ``isarnative``) for native
recipes. Older caches use one ``hh/`` level and ``.tgz``.

Names longer than 254 characters have ARCHSPEC, PV and PR cut to equal lengths, so the name is
parsed by position from both ends: PN is the second field, the last four fields are PR,
PKGARCH, VERSION and ``HASH_TASK.EXT``; whatever lies between ARCHSPEC and PR is PV (which may
itself contain ``:``).

Every file on a mirror or in a local cache is classified as one of :class:`Kind`. Files that
are neither sstate objects nor leftovers of writing one are ``UNKNOWN``: they are never
uploaded and never deleted, only reported.

Signature files in a build's stamps directory (``${TMPDIR}/stamps``) have names of their own,
parsed by :func:`parse_stamp_name`: bitbake writes ``${STAMP}.<task>.sigdata.<unihash>`` after
each task (``.sigbasedata.<basehash>`` when no task hash is known), where OE-core's ``STAMP``
is ``${STAMPS_DIR}/${MULTIMACH_TARGET_SYS}/${PN}/${EXTENDPE}${PV}-${PR}`` and Isar's is
``${STAMPS_DIR}/${DISTRO}-${DISTRO_ARCH}/${PN}/${PV}-${PR}``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Tuple

#: Archive extensions, newest first. ``tar.zst`` since OE kirkstone (2022) and in Isar;
#: ``tgz`` before that.
ARCHIVE_EXTENSIONS = ("tar.zst", "tgz")

#: Companion suffixes appended to an archive name.
SIGINFO_SUFFIX = ".siginfo"
SIG_SUFFIX = ".sig"

#: Temporary names this tool writes while uploading (``.sstate-mirror-<hex>.tmp``). They are
#: short on purpose: a long sstate name plus any prefix would exceed NAME_MAX (255).
UPLOAD_TEMP_PREFIX = ".sstate-mirror-"
UPLOAD_TEMP_SUFFIX = ".tmp"

#: The mirror's own data (pins) lives below this directory. bitbake never asks for it (its
#: requests are ``[PREFIX/]hh/hh/sstate:...``); clean never deletes it, upload never sends it.
META_DIR = ".sstate-mirror"
#: One JSON document per pin: ``.sstate-mirror/pins/NAME.json``.
PINS_DIR = f"{META_DIR}/pins"
PIN_SUFFIX = ".json"
#: Where each clean run announces itself while it deletes (``ID.running``, then ``ID.ended``).
CLEANS_DIR = f"{META_DIR}/cleans"

_HASH_RE = r"(?:[0-9a-f]{32,128}|INVALID)"
_TAIL_RE = re.compile(rf"^(?P<hash>{_HASH_RE})_(?P<task>[A-Za-z0-9_+-]+?)\.(?P<rest>.+)$")
_UNIHASH_RE = re.compile(r"[0-9a-f]{64}")
_UPLOAD_TEMP_RE = re.compile(
    rf"^{re.escape(UPLOAD_TEMP_PREFIX)}[0-9a-f]{{8,64}}{re.escape(UPLOAD_TEMP_SUFFIX)}$"
)


class Kind(str, enum.Enum):
    """What a file in an sstate cache or mirror is."""

    ARCHIVE = "archive"
    """The task output bitbake restores (``.tar.zst`` / ``.tgz``)."""
    SIGINFO = "siginfo"
    """Signature data: next to an archive, or alone for tasks that are not sstate tasks."""
    SIG = "sig"
    """Detached GPG signature of an archive (only when sstate signing is on)."""
    TEMP = "temp"
    """Temporary or partial file: an interrupted write, bitbake's ``sigtask.*``, ``.done``."""
    UNKNOWN = "unknown"
    """Anything else (README, index.html, ...): never uploaded, never deleted."""
    META = "meta"
    """The mirror's own data below :data:`META_DIR` (pins): never uploaded, never deleted."""


#: The kinds a group is made of (an archive and its companions): those :func:`group_key`
#: joins; every other kind is a group of its own.
GROUPED_KINDS = frozenset({Kind.ARCHIVE, Kind.SIGINFO, Kind.SIG})


class SstateName(NamedTuple):
    """The fields of one sstate file name (a basename, no directories).

    A named tuple rather than a frozen dataclass: a mirror listing builds one per file, and
    tuple construction is several times cheaper.
    """

    pn: str
    archspec: str
    pv: str
    pr: str
    pkgarch: str
    version: str
    hash: str
    task: str
    ext: str
    kind: Kind

    @property
    def arch(self) -> str:
        """``SSTATE_PKGARCH``: the architecture an archive is shared across ('' = any)."""
        return self.pkgarch

    @property
    def unihash(self) -> Optional[str]:
        """The hash as a hash equivalence server knows it, or None.

        With hash equivalence (OE-core's default since 2026) the name carries the task's
        *unihash*; the server accepts only 64 lowercase hex digits, so a shorter or legacy
        hash (``INVALID``, md5-era names) is none the server can know.
        """
        return self.hash if _UNIHASH_RE.fullmatch(self.hash) else None

    @property
    def is_software_only(self) -> bool:
        """True for the arch-less spec of fetch/unpack/patch/populate_lic tasks."""
        return self.archspec == "" and self.pkgarch == ""


def parse_name(basename: str) -> Optional[SstateName]:
    """Parse an sstate file basename, or return None when it is not one.

    Leftovers of writing an sstate file (``<archive>.XXXXXXXX``, ``.done``) parse with
    ``kind == Kind.TEMP`` so that they can be attributed to a recipe in reports.
    """
    if not basename.startswith("sstate:"):
        return None
    fields = basename.split(":")
    if len(fields) < 8:
        return None
    tail = _TAIL_RE.match(fields[-1])
    if tail is None:
        return None
    kind = _kind_from_rest(tail.group("rest"))
    if kind is None:
        return None
    ext = _extension(tail.group("rest"))
    return SstateName(*head_fields(fields), tail.group("hash"), tail.group("task"), ext, kind)


def head_fields(fields: List[str]) -> Tuple[str, str, str, str, str, str]:
    """PN, ARCHSPEC, PV, PR, PKGARCH and VERSION of a name split at ``:`` (eight fields or
    more; the last one, ``HASH_TASK.EXT``, is not read): by position from both ends, since
    PV may hold ``:``."""
    return (fields[1], fields[2], ":".join(fields[3:-4]), fields[-4], fields[-3], fields[-2])


def _extension(rest: str) -> str:
    for ext in ARCHIVE_EXTENSIONS:
        if rest == ext or rest.startswith(ext + "."):
            return ext
    return rest.split(".", 1)[0]


def _kind_from_rest(rest: str) -> Optional[Kind]:
    """Classify what follows ``HASH_TASK.`` in a name; None when it is no sstate name."""
    for ext in ARCHIVE_EXTENSIONS:
        if rest == ext:
            return Kind.ARCHIVE
        if rest == ext + SIGINFO_SUFFIX:
            return Kind.SIGINFO
        if rest == ext + SIG_SUFFIX:
            return Kind.SIG
        if rest.startswith(ext + "."):
            # <archive>.XXXXXXXX (mktemp), <archive>.done, <archive>.siginfo.XXXX, ...
            return Kind.TEMP
    return None


def classify(path: str) -> Kind:
    """Classify a mirror-relative path (``/``-separated) by its basename."""
    base = path.rsplit("/", 1)[-1]
    parsed = parse_name(base)
    if parsed is not None:
        return parsed.kind
    if path.startswith(META_DIR + "/") and not _UPLOAD_TEMP_RE.match(base):
        return Kind.META
    if base.startswith("sigtask.") or _UPLOAD_TEMP_RE.match(base):
        return Kind.TEMP
    if base.startswith(".sstate:") and parse_name(base[1:]) is not None:
        # rsync and similar tools write ".<name>.XXXXXX" next to the final name
        return Kind.TEMP
    return Kind.UNKNOWN


#: The hash equivalence server's SQLite database and its journal files. bitbake-setup places
#: it in ``SSTATE_DIR`` (``BB_HASHSERVE_DB_DIR``): it is a live database of one build host,
#: never part of a mirror.
_HASHSERV_DB_RE = re.compile(r"^hashserv\.db(?:-(?:wal|shm|journal))?$")


def is_hashserv_database(path: str) -> bool:
    """True for ``hashserv.db`` and its ``-wal``/``-shm``/``-journal`` companions."""
    return _HASHSERV_DB_RE.match(path.rsplit("/", 1)[-1]) is not None


def group_key(path: str, kind: Optional[Kind] = None) -> str:
    """The path of the archive a file belongs with (itself for an archive).

    ``a/b/X.tar.zst.siginfo`` and ``a/b/X.tar.zst.sig`` both belong with ``a/b/X.tar.zst``.
    Files that belong with no archive (temp, unknown) are their own key. Pass ``kind`` when
    it is known, to spare parsing the name again.
    """
    if kind is None:
        kind = classify(path)
    if kind is Kind.SIGINFO:
        return path[: -len(SIGINFO_SUFFIX)]
    if kind is Kind.SIG:
        return path[: -len(SIG_SUFFIX)]
    return path


def member_paths(key: str) -> Tuple[str, str, str]:
    """Every path whose :func:`group_key` can be ``key``: the archive's and its companions'."""
    return (key, key + SIGINFO_SUFFIX, key + SIG_SUFFIX)


@dataclass(frozen=True)
class Artifact:
    """One file of a cache or mirror, as every other part of the tool talks about it.

    ``mtime`` is a POSIX timestamp (seconds since the epoch, UTC) of the last modification
    the storage reports, which after a ``touch`` means the last recorded use. ``atime`` is set
    only where the store records reads that mean use (see :class:`~sstate_mirror.backends.
    base.Entry`).
    """

    path: str
    size: int
    mtime: float
    kind: Kind
    name: Optional[SstateName] = field(default=None, compare=False)
    atime: Optional[float] = field(default=None, compare=False)

    @property
    def basename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def pn(self) -> str:
        return self.name.pn if self.name else ""

    @property
    def arch(self) -> str:
        return self.name.arch if self.name else ""

    @property
    def task(self) -> str:
        return self.name.task if self.name else ""

    @property
    def hash(self) -> str:
        return self.name.hash if self.name else ""

    @property
    def group_key(self) -> str:
        return group_key(self.path, self.kind)

    def age(self, now: float) -> float:
        """Seconds since ``mtime``; never negative (clock skew reads as 'just now')."""
        return max(0.0, now - self.mtime)


def make_artifact(path: str, size: int, mtime: float, atime: Optional[float] = None) -> Artifact:
    """Build an :class:`Artifact` for a listed file."""
    base = path.rsplit("/", 1)[-1]
    parsed = parse_name(base)
    kind = parsed.kind if parsed is not None else classify(path)
    if parsed is None and kind is Kind.TEMP and base.startswith(".sstate:"):
        parsed = parse_name(base[1:])
    return Artifact(path=path, size=size, mtime=mtime, kind=kind, name=parsed, atime=atime)


@dataclass
class Group:
    """An archive with its companions; any member may be missing."""

    key: str
    archive: Optional[Artifact] = None
    siginfo: Optional[Artifact] = None
    sig: Optional[Artifact] = None

    def members(self) -> List[Artifact]:
        """Present members, companions first (the order they must be uploaded in)."""
        return [a for a in (self.siginfo, self.sig, self.archive) if a is not None]

    @property
    def size(self) -> int:
        return sum(a.size for a in self.members())

    @property
    def last_used(self) -> float:
        """When the group was last written or marked as used.

        The newest mtime of its members, or the ``.siginfo``'s access time where the store
        records it (bitbake's own "last used" mark on ``file://`` mirrors).
        """
        times = [m.mtime for m in self.members()]
        if self.siginfo is not None and self.siginfo.atime is not None:
            times.append(self.siginfo.atime)
        return max(times) if times else 0.0

    @property
    def name(self) -> Optional[SstateName]:
        for member in (self.archive, self.siginfo, self.sig):
            if member is not None and member.name is not None:
                return member.name
        return None


def group_artifacts(artifacts: Iterable[Artifact]) -> Dict[str, Group]:
    """Group archives, siginfo and sig files by the archive they belong with.

    Temporary and unknown files are not part of any group and are left out.
    """
    groups: Dict[str, Group] = {}
    for art in artifacts:
        if art.kind not in GROUPED_KINDS:
            continue
        key = art.group_key
        group = groups.get(key)
        if group is None:
            group = groups[key] = Group(key)
        if art.kind is Kind.ARCHIVE:
            group.archive = art
        elif art.kind is Kind.SIGINFO:
            group.siginfo = art
        else:
            group.sig = art
    return groups


_HASH_DIRECTORY = re.compile(r"[0-9a-fA-F]{2}")


def is_hash_directory(name: str) -> bool:
    """Whether a directory name is a hash fan-out level of the ``hh/hh`` (or ``hh``) layout:
    two hex digits, the start of the hashes of the files below it. Listings use it to
    split a mirror into even parts (the names are uniformly spread)."""
    return _HASH_DIRECTORY.fullmatch(name) is not None


def layout_of(path: str, name: SstateName) -> str:
    """Which directory layout a path uses: ``hh/hh``, ``hh`` or ``flat`` (anything else).

    Only ``hh/hh`` (and ``hh`` for caches older than 2020) are where bitbake looks.
    """
    parts = path.split("/")[:-1]
    h = name.hash
    if len(parts) >= 2 and parts[-2] == h[:2] and parts[-1] == h[2:4]:
        return "hh/hh"
    if parts and parts[-1] == h[:2]:
        return "hh"
    return "flat"


def directory_prefix(path: str, name: SstateName, layout: Optional[str] = None) -> str:
    """The directories above the hash levels: ``universal``, ``debian-12``, ``isarnative``, ''.

    For native recipes this is bitbake's ``NATIVELSBSTRING``: a build looks for an archive
    only below its own. ``layout`` (from :func:`layout_of`) spares computing it again.
    """
    parts = path.split("/")[:-1]
    depth = {"hh/hh": 2, "hh": 1}.get(layout or layout_of(path, name), 0)
    return "/".join(parts[: len(parts) - depth])



def _is_native(pn: str) -> bool:
    """Recipes bitbake files under ``${NATIVELSBSTRING}/`` (native, cross, crosssdk)."""
    return pn.endswith("-native") or "-cross" in pn


def nested_cache_roots(artifacts: Iterable[Artifact]) -> List[str]:
    """The directories holding caches of their own, when nothing lies at the top.

    A cache has its non-native artifacts at its top (``hh/hh/`` right below it) and native
    ones below a ``NATIVELSBSTRING`` directory. A directory with no sstate file at its top
    but with directories that hold non-native artifacts at theirs is one level too high
    (``oe-wrynose/`` holding ``cache-a/`` and ``cache-b/``): this returns those directories,
    or ``[]`` when something lies at the top or nothing looks like a cache below.
    """
    roots = set()
    for art in artifacts:
        if art.name is None or art.kind not in (Kind.ARCHIVE, Kind.SIGINFO):
            continue
        layout = layout_of(art.path, art.name)
        if layout == "flat":  # not where a cache puts it: says nothing about where one starts
            continue
        prefix = directory_prefix(art.path, art.name, layout)
        if prefix == "":
            if not _is_native(art.name.pn):
                return []
            continue
        if not _is_native(art.name.pn):
            roots.add(prefix)
    return sorted(roots)
def pin_path(name: str) -> str:
    """Where the pin called ``name`` is stored on a mirror."""
    return f"{PINS_DIR}/{name}{PIN_SUFFIX}"


def pin_name_of(path: str) -> Optional[str]:
    """The pin a mirror path stores, or None when it is no pin."""
    prefix = PINS_DIR + "/"
    if not (path.startswith(prefix) and path.endswith(PIN_SUFFIX)):
        return None
    name = path[len(prefix):-len(PIN_SUFFIX)]
    return name if PIN_NAME_RE.fullmatch(name) else None


#: Pin names: short, safe as a file name on every store, and readable in a CI log.
PIN_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")

_BARE_HASH_RE = re.compile(r"[0-9a-f]{32,128}")


def hash_of(token: str) -> Optional[str]:
    """The task hash a token names: a bare hash, or an sstate file name or path (any member
    of a group names the group's hash); None for anything else (``INVALID`` included)."""
    token = token.strip()
    if _BARE_HASH_RE.fullmatch(token):
        return token
    parsed = parse_name(token.rsplit("/", 1)[-1])
    if parsed is None or parsed.hash == "INVALID":
        return None
    return parsed.hash


# --- signature files in a build's stamps directory ------------------------------------------

#: The kinds of signature file bitbake leaves next to its stamps.
STAMP_SIGNATURE_KINDS = ("sigdata", "sigbasedata", "siginfo")

_STAMP_RE = re.compile(
    rf"^(?P<version>.+?)\.(?P<task>do_[A-Za-z0-9_+-]+)\."
    rf"(?:(?P<kind>sigdata|sigbasedata)\.(?P<hash>{_HASH_RE})"
    rf"|(?P<hash2>{_HASH_RE})\.siginfo)$"
)


@dataclass(frozen=True)
class StampName:
    """The fields of a stamp signature file's path (relative to the stamps directory).

    ``pn`` is the recipe directory (for Isar machine-specific recipes ``${PN}-${MACHINE}``,
    for shared work directories the ``work-shared`` stamp's own name): the signature's own
    ``PN`` value, where it records one, is the better name. ``task`` keeps bitbake's ``do_``
    prefix and any ``_setscene`` suffix, as in the file name.
    """

    sys: str
    pn: str
    version: str
    task: str
    hash: str
    kind: str

    @property
    def base_task(self) -> str:
        """The task without ``do_`` and ``_setscene`` (the form sstate names use)."""
        task = self.task[3:] if self.task.startswith("do_") else self.task
        return task[: -len("_setscene")] if task.endswith("_setscene") else task


def parse_stamp_name(path: str) -> Optional[StampName]:
    """Parse ``<SYS>/<PN>/<PV>-<PR>.<task>.sigdata.<hash>`` (or ``.sigbasedata.<hash>``, or
    ``<task>.<hash>.siginfo``); None for stamps and anything else that is no signature file.

    ``path`` is relative to the stamps directory and ``/``-separated. A file directly in
    ``<SYS>/`` (``work-shared/gcc-13.2-r0.do_patch.sigdata.<hash>``) gets its name's version
    part as ``pn`` too, since bitbake puts nothing else there.
    """
    parts = path.strip("/").split("/")
    m = _STAMP_RE.match(parts[-1])
    if m is None:
        return None
    dirs = parts[:-1]
    version = m.group("version")
    if len(dirs) >= 2:
        sys_, pn = dirs[-2], dirs[-1]
    elif len(dirs) == 1:
        sys_, pn = dirs[0], version
    else:
        sys_, pn = "", version
    kind = m.group("kind") or "siginfo"
    hash_ = m.group("hash") or m.group("hash2")
    return StampName(sys=sys_, pn=pn, version=version, task=m.group("task"), hash=hash_,
                     kind=kind)
