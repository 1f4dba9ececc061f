"""Finding dependencies' signature files in caches and through a backend listing."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import List, Tuple

import pytest

from signature_helpers import LEGACY, OE, pair_files
from sstate_mirror.backends.local import LocalBackend
from sstate_mirror.errors import SignatureError, SstateMirrorError
from sstate_mirror.naming import make_artifact, parse_name
from sstate_mirror.signatures.finder import (
    DirectoryFinder,
    IndexedFinder,
    cache_root_of,
    split_key,
)

ALPHA_INSTALL_A = "6915e38ca26b3986ce7e0906ba19ede79012b08d3988aee27be252bc8fceb664"
ALPHA_FETCH = "9ae4fcb5d97afa59f75ce2a1aaa7596605e46e90db880697dc58108ed61580fc"


def test_split_key_forms() -> None:
    assert split_key("alpha-native:do_install") == ("alpha-native", "do_install")
    assert split_key("mc:other:zeta:do_fetch") == ("zeta", "do_fetch")
    assert split_key("/x/recipes/gamma-native_1.0.bb:do_fetch") == (
        "/x/recipes/gamma-native_1.0.bb", "do_fetch")
    assert split_key("virtual:native:/x/g_1.0.bb:do_fetch") == ("/x/g_1.0.bb", "do_fetch")
    assert split_key("nocolon") is None


def test_cache_root_of_native_prefix_and_plain_files() -> None:
    cache = OE / "cache-a"
    native = next(cache.glob("debian-12/*/*/*.siginfo"))
    plain = next(cache.glob("[0-9a-f][0-9a-f]/*/*.siginfo"))
    assert cache_root_of(native) == str(cache.resolve())
    assert cache_root_of(plain) == str(cache.resolve())


def test_cache_root_of_other_layouts(tmp_path: Path) -> None:
    src = next((OE / "cache-a").glob("debian-12/*/*/*.siginfo"))
    name = src.name
    h = name.split(":")[-1][:4]
    one_level = tmp_path / "old" / h[:2] / name
    flat = tmp_path / "flat" / name
    only_native = tmp_path / "natives" / "universal" / h[:2] / h[2:4] / name
    for target in (one_level, flat, only_native):
        target.parent.mkdir(parents=True)
        shutil.copy(src, target)
    assert cache_root_of(one_level) == str(tmp_path / "old")
    assert cache_root_of(flat) == str(tmp_path / "flat")
    # no hash directories next to 'universal': it is the only tree there is to search
    assert cache_root_of(only_native) == str(tmp_path / "natives" / "universal")
    assert cache_root_of(tmp_path / "not-sstate.txt") == str(tmp_path)


def test_directory_finder_finds_by_pn_task_and_hash() -> None:
    finder = DirectoryFinder([OE / "cache-a", OE / "cache-b"])
    sig = finder.find("alpha-native:do_install", ALPHA_INSTALL_A)
    assert sig is not None and sig.taskhash == ALPHA_INSTALL_A
    assert finder.find("alpha-native:do_fetch", ALPHA_FETCH) is not None  # no prefix dir
    assert finder.find("beta-native:do_install", ALPHA_INSTALL_A) is None  # other PN
    assert finder.find("alpha-native:do_compile", ALPHA_INSTALL_A) is None  # other task
    assert finder.find("alpha-native:do_install", "0" * 64) is None


def test_directory_finder_legacy_recipe_file_ids() -> None:
    finder = DirectoryFinder([LEGACY / "cache-a"])
    h = "90e8861c4d2f8269ada2cfbe908c00277581c728569a4ae5eea58258f3e779bc"
    key = "/home/builder/legacy/meta-sstatetest/recipes-test/eta/eta-native_1.0.bb:do_fetch"
    paths = finder.paths(key, h)
    assert len(paths) == 2 and "sstate:eta-native:" in paths[0]  # both PNs share the hash
    sig = finder.find(key, h)
    assert sig is not None and sig.is_legacy


def test_directory_finder_does_not_walk_deep(tmp_path: Path) -> None:
    src = next((OE / "cache-a").glob("debian-12/*/*/*.siginfo"))
    deep = tmp_path / "a" / "b" / "c" / "d" / src.name
    deep.parent.mkdir(parents=True)
    shutil.copy(src, deep)
    name = parse_name(src.name)
    assert name is not None
    key, h = f"{name.pn}:do_{name.task}", name.hash
    assert DirectoryFinder([tmp_path]).find(key, h) is None
    assert DirectoryFinder([tmp_path / "a"]).find(key, h) is not None


def _broken_cache(tmp_path: Path) -> Tuple[Path, str, str]:
    name = f"sstate:bad::1.0:r0::14:{'ab' * 32}_fetch.tar.zst.siginfo"
    path = tmp_path / "ab" / "ab" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    return tmp_path, "bad:do_fetch", "ab" * 32


def test_unreadable_file_is_reported_or_raised(tmp_path: Path) -> None:
    root, key, h = _broken_cache(tmp_path)
    with pytest.raises(SignatureError, match="not a signature file"):
        DirectoryFinder([root]).find(key, h)
    seen: List[Tuple[str, SstateMirrorError]] = []
    finder = DirectoryFinder([root], on_error=lambda p, e: seen.append((p, e)))
    assert finder.find(key, h) is None
    assert len(seen) == 1 and seen[0][0].endswith(".siginfo")


def test_indexed_finder_over_a_backend_listing() -> None:
    """How ``analyze`` looks dependencies up on a mirror: index a listing, fetch on demand."""
    backend = LocalBackend(str(OE / "cache-a"))
    fetched: List[str] = []

    def fetch(path: str) -> bytes:
        fetched.append(path)
        return backend.read(path, 64 << 20)

    artifacts = [make_artifact(e.path, e.size, e.mtime) for e in backend.list()]
    finder = IndexedFinder(artifacts, fetch)
    sig = finder.find("alpha-native:do_install", ALPHA_INSTALL_A)
    assert sig is not None and sig.source.startswith("debian-12/")
    assert finder.find("alpha-native:do_install", ALPHA_INSTALL_A) is sig
    assert len(fetched) == 1


def test_indexed_finder_without_fetch_says_so() -> None:
    a, _ = pair_files({"cache-a": next(
        str(p.relative_to(OE / "cache-a")) for p in (OE / "cache-a").rglob("*_install*.siginfo")),
        "cache-b": ""})
    art = make_artifact(str(a), 0, 0.0)
    assert art.name is not None
    with pytest.raises(SignatureError, match="no way to fetch"):
        IndexedFinder([art]).find(f"{art.name.pn}:do_install", art.name.hash)
