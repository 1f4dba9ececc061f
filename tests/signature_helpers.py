"""Helpers for the signature tests: paths of the reference data and synthetic signatures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import zstandard

DATA = Path(__file__).parent / "data"
OE = DATA / "oe-wrynose"
OE_EXPECTED = OE / "expected"
LEGACY = DATA / "legacy-honister"
LEGACY_EXPECTED = LEGACY / "expected"


def siginfo_files() -> List[Path]:
    """Every .siginfo file of the reference caches."""
    files: List[Path] = []
    for cache in (OE / "cache-a", OE / "cache-b", LEGACY / "cache-a"):
        files.extend(sorted(cache.rglob("*.siginfo")))
    return files


def dumpsig_cases(base: Path) -> List[Tuple[Path, Path]]:
    """(signature file, bitbake-dumpsig output) for every reference dump below ``base``."""
    root = base / "expected" / "dumpsig"
    cases = []
    for expected in sorted(root.rglob("*.txt")):
        rel = expected.relative_to(root)
        cases.append((base / str(rel)[: -len(".txt")], expected))
    return cases


def index_pairs() -> List[Dict[str, Any]]:
    """The (PN, task) pairs of the main data set that exist in both caches."""
    index = json.loads((OE_EXPECTED / "index.json").read_text())
    return [p for p in index["pairs"] if p.get("cache-a") and p.get("cache-b")]


def pair_files(pair: Dict[str, Any]) -> Tuple[Path, Path]:
    return OE / "cache-a" / pair["cache-a"], OE / "cache-b" / pair["cache-b"]


def pairs_with(kind: str) -> Iterator[Tuple[Dict[str, Any], Path]]:
    """Pairs whose reference output of ``kind`` (diffsigs, diffsigs-norecurse, ...) exists."""
    for pair in index_pairs():
        name = pair.get(kind)
        if name and (OE_EXPECTED / name).exists():
            yield pair, OE_EXPECTED / name


def pair_id(pair: Dict[str, Any]) -> str:
    return f"{pair['pn']}.{pair['task']}"


def base_sig(**overrides: Any) -> Dict[str, Any]:
    """A small, self-consistent signature dict in bitbake's 2.x shape (sets as sets)."""
    data: Dict[str, Any] = {
        "task": "do_compile",
        "basehash_ignore_vars": {"PATH", "HOME"},
        "taskhash_ignore_tasks": None,
        "taskdeps": {"CC", "do_compile[func]"},
        "basehash": "0" * 64,
        "gendeps": {"CC": set(), "do_compile[func]": set()},
        "varvals": {"do_compile": "    oe_runmake\n", "CC": "gcc", "do_compile[func]": 1},
        "runtaskdeps": ["foo:do_configure"],
        "file_checksum_values": [],
        "runtaskhashes": {"foo:do_configure": "a" * 64},
        "taskhash": "1" * 64,
        "unihash": "1" * 64,
    }
    data.update(overrides)
    return data


def _encode_sets(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return {"_set_object": sorted(value)}
    if isinstance(value, dict):
        return {k: _encode_sets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_sets(v) for v in value]
    return value


def zstd_json(data: Dict[str, Any]) -> bytes:
    """Encode like bitbake >= 2.0: JSON with sets as _set_object, zstd-compressed."""
    text = json.dumps(_encode_sets(data), sort_keys=True, separators=(",", ":"))
    return zstandard.ZstdCompressor().compress(text.encode())


def read_raw(path: Path) -> Dict[str, Any]:
    """bitbake's dict of a real signature file, through the project's own reader."""
    from sstate_mirror.signatures.reader import decode_raw

    raw, _encoding = decode_raw(path.read_bytes(), str(path))
    return raw


def write_siginfo(path: Path, data: Dict[str, Any]) -> Path:
    """Write ``data`` as bitbake >= 2.0 does (zstd JSON, sets as _set_object), making dirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstd_json(data))
    return path
