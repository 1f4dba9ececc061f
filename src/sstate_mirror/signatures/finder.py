"""Find the signature of a dependency by ``pn:do_task`` and hash, for recursive comparison.

bitbake-diffsigs explains a changed dependency hash by comparing that dependency's two
signature files, found by name in the sstate cache. Here the lookup is a small protocol,
:class:`SignatureFinder`, so the same recursion works over a local directory, several
directories, or any mirror backend: :class:`IndexedFinder` indexes a listing of sstate
artifacts (file names parsed by :mod:`sstate_mirror.naming` only) and fetches a file's bytes
through a callable; :class:`DirectoryFinder` feeds it from local directory trees.
:class:`Recursor` turns a finder into the callback :func:`.compare.compare_signatures` takes.
"""

from __future__ import annotations

import os
import re
from typing import (
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Protocol,
    Sequence,
    Set,
    Tuple,
    Union,
)

from ..errors import SignatureError, SstateMirrorError
from ..naming import Artifact, Kind, layout_of, make_artifact, parse_name
from .compare import compare_signatures
from .model import Signature
from .reader import DEFAULT_LIMITS, Limits, read_signature

#: Told about a signature file that was found but could not be used: path, error.
ErrorCallback = Callable[[str, SstateMirrorError], None]

_HASH_DIR = re.compile(r"^[0-9a-f]{2}$")

#: Directory levels below a cache root that hold files: ``[PREFIX/]hh/hh/``.
_MAX_DEPTH = 3


class SignatureFinder(Protocol):
    """Anything that can look up a task's signature by its (uni)hash."""

    def find(self, key: str, hash: str) -> Optional[Signature]:
        """The signature of task ``key`` (``pn:do_task``) with ``hash``, or None."""
        ...  # pragma: no cover - protocol


def split_key(key: str) -> Optional[Tuple[str, str]]:
    """``pn:do_task`` -> (pn, do_task). Multiconfig (``mc:NAME:pn:do_task``) and legacy
    recipe-file ids (``[virtual:native:]/path/pn_1.0.bb:do_task``) give their last part;
    for a recipe file that is the file name, which only hints at the PN."""
    if ":" not in key:
        return None
    rest, task = key.rsplit(":", 1)
    who = rest.rsplit(":", 1)[-1]
    return (who, task) if who and task else None


def _legacy_pn_hint(who: str) -> Optional[str]:
    """``/path/gamma-native_1.0.bb`` -> ``gamma-native``; None for a real PN."""
    if "/" not in who and not who.endswith(".bb"):
        return None
    base = who.rsplit("/", 1)[-1]
    if base.endswith(".bb"):
        base = base[:-3]
    return base.split("_", 1)[0]


class IndexedFinder:
    """Finds ``.siginfo`` files in a listing of sstate artifacts from any storage.

    ``fetch(path)`` returns a file's bytes (at most ``limits.max_compressed + 1`` are needed).
    Files that cannot be fetched or read are reported to ``on_error`` and treated as not
    found; without ``on_error`` the error is raised.
    """

    def __init__(
        self,
        artifacts: Iterable[Artifact] = (),
        fetch: Optional[Callable[[str], bytes]] = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
        on_error: Optional[ErrorCallback] = None,
    ) -> None:
        self._by_task_hash: Dict[Tuple[str, str], List[Tuple[str, str]]] = {}
        self._fetch = fetch
        self.limits = limits
        self.on_error = on_error
        self._cache: Dict[str, Optional[Signature]] = {}
        self.add(artifacts)

    def add(self, artifacts: Iterable[Artifact]) -> None:
        """Index more artifacts (only ``.siginfo`` files are kept)."""
        for art in artifacts:
            if art.kind is not Kind.SIGINFO or art.name is None:
                continue
            key = ("do_" + art.name.task, art.name.hash)
            self._by_task_hash.setdefault(key, []).append((art.name.pn, art.path))

    def paths(self, key: str, hash: str) -> List[str]:
        """Candidate paths for ``key`` with ``hash``, the best first."""
        split = split_key(key)
        if split is None:
            return []
        who, task = split
        entries = self._by_task_hash.get((task, hash), [])
        hint = _legacy_pn_hint(who)
        if hint is None:
            return [path for pn, path in entries if pn == who]
        # Legacy ids name the recipe file, not the PN: any PN will do, the hinted one first.
        return [p for pn, p in entries if pn == hint] + [p for pn, p in entries if pn != hint]

    def read(self, path: str) -> bytes:
        if self._fetch is None:
            raise SignatureError(f"{path}: no way to fetch signature files was given")
        return self._fetch(path)

    def find(self, key: str, hash: str) -> Optional[Signature]:
        for path in self.paths(key, hash):
            if path not in self._cache:
                self._cache[path] = self._load(path)
            sig = self._cache[path]
            if sig is not None:
                return sig
        return None

    def _load(self, path: str) -> Optional[Signature]:
        try:
            return read_signature(self.read(path), source=path, limits=self.limits)
        except SstateMirrorError as exc:
            if self.on_error is None:
                raise
            self.on_error(path, exc)
            return None


class DirectoryFinder(IndexedFinder):
    """Finds ``.siginfo`` files below local sstate cache roots (indexed on first use).

    Only the levels where sstate files live are walked (``[PREFIX/]hh/hh/``), so pointing it
    at a big directory by mistake costs little. Symbolic links are followed, as bitbake's own
    ``SSTATE_DIR`` is full of links into ``file://`` mirrors.
    """

    def __init__(self, roots: Sequence[Union[str, os.PathLike[str]]], *,
                 limits: Limits = DEFAULT_LIMITS, on_error: Optional[ErrorCallback] = None
                 ) -> None:
        super().__init__(limits=limits, on_error=on_error)
        self.roots: List[str] = []
        for root in roots:
            path = os.path.abspath(os.fspath(root))
            if path not in self.roots:
                self.roots.append(path)
        self._indexed = False

    def _index(self) -> None:
        if self._indexed:
            return
        self._indexed = True
        for root in self.roots:
            self.add(_walk_cache(root))

    def paths(self, key: str, hash: str) -> List[str]:
        self._index()
        return super().paths(key, hash)

    def read(self, path: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read(self.limits.max_compressed + 1)
        except OSError as exc:
            raise SignatureError(f"{path}: cannot read signature file: {exc.strerror or exc}"
                                 ) from exc


def _walk_cache(root: str) -> Iterable[Artifact]:
    """Signature files at most three levels below ``root``, as artifacts with absolute paths."""
    seen: Set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        rel = os.path.relpath(dirpath, root)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        if depth >= _MAX_DEPTH:
            dirnames[:] = []
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        for name in filenames:
            if not name.endswith(".siginfo") or parse_name(name) is None:
                continue
            yield make_artifact(os.path.join(dirpath, name), 0, 0.0)


def cache_root_of(path: Union[str, os.PathLike[str]]) -> str:
    """The sstate cache root holding the file at ``path``.

    A cache stores ``ROOT/[PREFIX/]hh/hh/NAME`` (older caches one ``hh`` level). PREFIX
    (``universal``, ``debian-12``, ``isarnative``, ...) holds native recipes only, while their
    fetch/unpack/patch signatures sit in ``ROOT/hh/hh``: when the directory above the hash
    levels sits next to hash directories, that directory is a prefix and its parent the root.
    """
    full = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(full)
    name = parse_name(os.path.basename(full))
    if name is None:
        return directory
    layout = layout_of(full.replace(os.sep, "/"), name)
    levels = {"hh/hh": 2, "hh": 1}.get(layout, 0)
    root = directory
    for _ in range(levels):
        root = os.path.dirname(root)
    parent = os.path.dirname(root)
    if levels and parent != root and not _HASH_DIR.match(os.path.basename(root)):
        try:
            siblings = os.listdir(parent)
        except OSError:
            siblings = []
        if any(_HASH_DIR.match(s) and os.path.isdir(os.path.join(parent, s)) for s in siblings):
            return parent
    return root


class Recursor:
    """bitbake-diffsigs' recursion callback over a :class:`SignatureFinder`.

    For a dependency whose hash changed it finds both signatures and compares them
    (recursing further), indenting the result by four spaces per level; when a side cannot
    be found it says so in one unindented line, in bitbake's words. Results are remembered
    per (key, old, new), and a dependency cycle (possible only in crafted files) ends the
    recursion instead of looping. A chain deeper than ``max_depth`` (real ones are a few
    dozen levels; only crafted caches go deeper) stops with a line saying so, rather than
    exhausting Python's stack.
    """

    INDENT = "    "

    def __init__(self, finder: SignatureFinder, color: bool = False, max_depth: int = 100
                 ) -> None:
        self.finder = finder
        self.color = color
        self.max_depth = max_depth
        self._memo: Dict[Tuple[str, str, str], List[str]] = {}
        self._active: Set[Tuple[str, str, str]] = set()

    def __call__(self, key: str, hash1: str, hash2: str) -> List[str]:
        memo_key = (key, hash1, hash2)
        if memo_key in self._memo:
            return list(self._memo[memo_key])
        if memo_key in self._active:
            return []
        if len(self._active) >= self.max_depth:
            return [f"Not following {key} further: dependency chain deeper than"
                    f" {self.max_depth} levels"]
        self._active.add(memo_key)
        try:
            lines = self._explain(key, hash1, hash2)
        finally:
            self._active.discard(memo_key)
        self._memo[memo_key] = lines
        return list(lines)

    def _explain(self, key: str, hash1: str, hash2: str) -> List[str]:
        old = self.finder.find(key, hash1)
        new = self.finder.find(key, hash2)
        if old is None and new is None:
            return [f"Unable to find matching sigdata for {key} with hashes {hash1} or {hash2}"]
        if old is None:
            return [f"Unable to find matching sigdata for {key} with hash {hash1}"]
        if new is None:
            return [f"Unable to find matching sigdata for {key} with hash {hash2}"]
        out: List[str] = []
        for change in compare_signatures(old, new, self, self.color):
            out.extend(self.INDENT + line for line in change.splitlines())
        return out
