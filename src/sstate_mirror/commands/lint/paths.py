"""Finding machine-specific absolute paths in a string, as a pure function.

A signature value is shell or Python code, a URL list or a plain word list, so "is this an
absolute path?" is decided by what stands before a ``/``:

* the start of the value, white space, a quote or an operator (``= : , ; ( [ | & < > !``)
  starts a path: ``/usr/bin``, ``--prefix=/opt/x``, ``PATH=/a:/b``;
* ``file://`` starts a path: ``file:///home/u/x.patch`` names ``/home/u/x.patch``;
* a short option starts a path: ``-I/home/u/inc``, ``-L/opt/lib``;
* anything else does not: ``${S}/foo`` and ``$(pwd)/foo`` are relative to a variable, ``a/b`` is
  relative, ``**/x`` is a glob, ``https://host/home/x`` is a URL, and a string literal appended
  to something (``d.getVar('COREBASE') + "/LICENSE"``) is a path below that something.

A *directory* of interest (the build or the sources directory) is found wherever its text
starts a path as above, or follows a variable (``${D}/home/u/build`` still carries the build
directory into the hash), and ends at a component boundary: ``/home/u/build`` matches
``/home/u/build`` and ``/home/u/build/tmp`` but not ``/home/u/build2``, ``/opt/home/u/build``,
``rel/home/u/build`` or a URL's path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import FrozenSet, Iterable, List, Optional, Sequence, Set

#: Top-level directories that hold the same thing on every machine (FHS), so an absolute path
#: below them does not make a signature machine-specific. ``--pedantic`` reports every other
#: absolute path (``/home``, ``/opt``, ``/mnt``, ``/work``, ``/build``, ``/root``, ...).
SYSTEM_DIRS: FrozenSet[str] = frozenset({
    "bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "run", "sbin",
    "srv", "sys", "tmp", "usr", "var",
})

#: Characters a path component is made of (and a token may contain after its first ``/``).
_COMPONENT = re.compile(r"[\w.+~@%-]")
_TOKEN = re.compile(r"/[\w.+~@%$/{}-]{0,4095}")  # PATH_MAX: a longer "path" is cut there
_SHORT_OPTION = re.compile(r"-{1,2}[A-Za-z][A-Za-z]*")

#: At most this many paths are taken from one value: a real value holds a handful, and a
#: crafted one with millions must not cost minutes or gigabytes (grouping keeps only the
#: first of each pattern per file anyway).
MAX_HITS = 1000

BUILD_DIR = "build-dir"
SOURCES_DIR = "sources-dir"
ABSOLUTE = "absolute"

#: How each kind is described in reports.
KIND_LABELS = {
    BUILD_DIR: "the build directory",
    SOURCES_DIR: "the sources directory",
    ABSOLUTE: "an absolute path",
}


@dataclass(frozen=True)
class Dir:
    """A directory whose appearance in a signature makes it machine-specific."""

    kind: str
    path: str


@dataclass(frozen=True)
class PathHit:
    """One machine-specific path found in a string."""

    kind: str
    """:data:`BUILD_DIR`, :data:`SOURCES_DIR` or :data:`ABSOLUTE`."""
    root: str
    """The directory it lies in (for :data:`ABSOLUTE`: the path itself)."""
    path: str
    """The whole path as it stands in the string."""
    start: int
    end: int


def normalize_dir(path: str) -> str:
    """An absolute directory without trailing slashes or ``.``/``..`` parts."""
    return os.path.normpath(os.path.abspath(path))


def _run_start(text: str, index: int) -> int:
    """Where the run of path-component characters that ends at ``index`` begins."""
    i = index
    while i > 0 and _COMPONENT.match(text[i - 1]):
        i -= 1
    return i


def starts_path(text: str, index: int) -> bool:
    """Whether the ``/`` at ``index`` begins an absolute path (see the module docstring)."""
    if index == 0:
        return True
    before = text[index - 1]
    if before == "/":
        return text.endswith("file://", 0, index)
    if before in "})*?":
        return False
    if before in "'\"" and _suffix_string(text, index - 1):
        return False
    if _COMPONENT.match(before):
        run_start = _run_start(text, index)
        run = text[run_start:index]
        if not _SHORT_OPTION.fullmatch(run):
            return False
        return run_start == 0 or text[run_start - 1] not in "/})$"
    return True


def _suffix_string(text: str, quote: int) -> bool:
    """Whether the string literal opening at ``quote`` is appended to something else:
    ``x + "/fixmepath"`` (Python) or ``"${D}"/etc`` (shell) name a path below another one."""
    i = quote
    while i > 0 and text[i - 1] in " \t":
        i -= 1
    return i > 0 and text[i - 1] in "+}"


def _mid_path(text: str, index: int) -> bool:
    """Whether position ``index`` lies inside a longer path (``/opt`` + ``/home/u``)."""
    if index == 0:
        return False
    before = text[index - 1]
    if before == "/":
        # "file:///home/u" and "x //home/u" start a path; "/a//home/u" does not
        j = index - 1
        while j > 0 and text[j - 1] == "/":
            j -= 1
        return j > 0 and text[j - 1] != ":" and bool(_COMPONENT.match(text[j - 1]))
    if not _COMPONENT.match(before):
        return False
    # "a/home/u" is a relative path; "-I/home/u" is an option followed by a path
    run_start = _run_start(text, index)
    return not (_SHORT_OPTION.fullmatch(text[run_start:index])
                and (run_start == 0 or text[run_start - 1] not in "/})$"))


def _boundary_after(text: str, end: int) -> bool:
    return end == len(text) or not _COMPONENT.match(text[end])


def _token_end(text: str, start: int) -> int:
    m = _TOKEN.match(text, start)
    end = m.end() if m else start + 1
    while end > start + 1 and text[end - 1] in ".,":
        end -= 1
    return end


def find_dirs(text: str, dirs: Sequence[Dir], limit: int = MAX_HITS) -> List[PathHit]:
    """The occurrences of ``dirs`` in ``text`` (at most ``limit``), the most specific
    directory winning where they nest (a build directory inside the sources checkout is
    reported as the build directory)."""
    hits: List[PathHit] = []
    taken: Set[int] = set()  # nested directories can only meet at the same start
    for d in sorted(dirs, key=lambda d: -len(d.path)):
        start = 0
        while len(hits) < limit:
            i = text.find(d.path, start)
            if i < 0:
                break
            start = i + 1
            end = i + len(d.path)
            if i in taken or not _boundary_after(text, end) or _mid_path(text, i):
                continue
            token_end = max(end, _token_end(text, i))
            taken.add(i)
            hits.append(PathHit(d.kind, d.path, text[i:token_end], i, token_end))
    hits.sort(key=lambda h: h.start)
    return hits


def is_system_path(path: str) -> bool:
    """True for a path below one of :data:`SYSTEM_DIRS` (and for ``/`` itself)."""
    first = path.lstrip("/").split("/", 1)[0]
    return first == "" or first in SYSTEM_DIRS


def find_absolute(text: str, limit: int = MAX_HITS) -> List[PathHit]:
    """The absolute paths in ``text`` that are not well-known system paths (at most
    ``limit``)."""
    hits: List[PathHit] = []
    for m in re.finditer(r"/", text):
        i = m.start()
        if i + 1 >= len(text) or text[i + 1] == "/" or not starts_path(text, i):
            continue
        end = _token_end(text, i)
        path = text[i:end]
        first = path[1:].split("/", 1)[0]
        if not re.search(r"[A-Za-z0-9]", first) or first.startswith(("$", "{")):
            continue  # "/.+/" in a regular expression, "/${X}" (a variable's value)
        if is_system_path(path):
            continue
        hits.append(PathHit(ABSOLUTE, path, path, i, end))
        if len(hits) >= limit:
            break
    return hits


def find_paths(text: str, dirs: Sequence[Dir], pedantic: bool) -> List[PathHit]:
    """The directories of interest in ``text``, plus (``pedantic``) any other absolute path.

    A path starts where a directory's occurrence starts, so "already reported as the build
    directory" is a question about start positions.
    """
    hits = find_dirs(text, dirs)
    if pedantic:
        starts = {h.start for h in hits}
        hits += [h for h in find_absolute(text) if h.start not in starts]
        hits.sort(key=lambda h: h.start)
    return hits


def context_of(text: str, start: int, end: int, width: int = 120) -> str:
    """The line of ``text`` holding ``text[start:end]``, trimmed to about ``width`` characters
    around it (``…`` marks a cut), so a finding shows where the path stands."""
    window = 4 * width  # a line is looked for near the path only: values can be huge
    line_start = max(text.rfind("\n", max(0, start - window), start) + 1, start - window)
    line_end = text.find("\n", end, end + window)
    if line_end < 0:
        line_end = min(len(text), end + window)
    line = text[line_start:line_end]
    a, b = start - line_start, end - line_start
    lead = len(line) - len(line.lstrip())
    line, a, b = line.strip(), a - lead, b - lead
    if len(line) <= width:
        return line
    room = max(0, width - (b - a))
    left = max(0, a - room // 2)
    if b - a > width:  # the path alone is too long: its beginning says enough
        left, b = a, a + width
    right = min(len(line), max(b, left + width))
    left = max(0, min(left, right - width))
    return ("…" if left > 0 else "") + line[left:right] + ("…" if right < len(line) else "")


def dirs_from(build_dirs: Iterable[str], sources_dirs: Iterable[str],
              realpath: Optional[bool] = True) -> List[Dir]:
    """The directories to look for, normalised; with ``realpath`` also their resolved form
    where a symbolic link makes it differ (bitbake records the path it was started in)."""
    out: List[Dir] = []
    seen = set()
    for kind, paths in ((BUILD_DIR, build_dirs), (SOURCES_DIR, sources_dirs)):
        for p in paths:
            forms = [normalize_dir(p)]
            if realpath:
                forms.append(os.path.realpath(forms[0]))
            for form in forms:
                if form not in seen:
                    seen.add(form)
                    out.append(Dir(kind, form))
    return out
