"""Signature files made to exhaust memory are refused in bounded memory, alone and in parallel.

Each bomb is a small file that a naive reader turns into gigabytes. Every test runs the real
command in a process of its own and checks its peak resident memory (``tests/memory.py``),
never a duration. The limits are in ``sstate_mirror.signatures.reader.Limits`` and
``sstate_mirror.signatures.bounds`` and listed in docs/reliability.md.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable, Dict, Iterable

import pytest
import zstandard

from memory import cli, run_measured

#: Well under the 200 MiB the project promises for any bomb (Python alone is ~25 MiB).
PEAK_MIB = 100

MiB = 1 << 20


def _zstd(pieces: Iterable[bytes]) -> bytes:
    cobj = zstandard.ZstdCompressor(level=3).compressobj()
    out = [cobj.compress(p) for p in pieces]
    out.append(cobj.flush())
    return b"".join(out)


def _repeat(head: bytes, unit: bytes, count: int, tail: bytes) -> Iterable[bytes]:
    yield head
    block = unit * 65536
    for _ in range(count // 65536):
        yield block
    yield unit * (count % 65536)
    yield tail


#: name -> (file content, what the one-line error says)
BOMBS: Dict[str, Callable[[], bytes]] = {
    # the legacy file: EMPTY_DICT, LONG_BINPUT <index>, STOP
    "pickle-memo-32M": lambda: b"\x80\x04}r" + (0x02000000).to_bytes(4, "little") + b".",
    "pickle-memo-4G": lambda: b"\x80\x04}r" + (0xFFFFFFFF).to_bytes(4, "little") + b".",
    # 2 MiB of EMPTY_LIST opcodes: 2 million lists
    "pickle-many-lists": lambda: b"\x80\x04" + b"]" * (2 * MiB - 16) + b".",
    # nested empty lists, 64 MiB after decompression (the 5.6 KiB file)
    "json-nested-64M": lambda: _zstd(_repeat(b"", b"[", 32 * MiB, b"]" * 0)),
    # within the byte and value caps, deeper than any signature
    "json-nested-100k": lambda: _zstd(_repeat(b"", b"[", 100_000, b"]" * 100_000)),
    # within the byte cap, 1.3 million empty objects
    "json-many-objects": lambda: _zstd(_repeat(b'{"varvals": [', b"{},", 1_300_000, b"{}]}")),
    # 60 MiB of empty lists: far past the byte cap
    "json-many-lists-60M": lambda: _zstd(_repeat(b"[", b"[],", 20 * MiB, b"[]]")),
}

MESSAGES = {
    "pickle-memo-32M": "memo index",
    "pickle-memo-4G": "memo index",
    "pickle-many-lists": "more than 200000 pickle opcodes",
    "json-nested-64M": "limit of",
    "json-nested-100k": "nested deeper than 32",
    "json-many-objects": "more than 200000 values",
    "json-many-lists-60M": "limit of",
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_signature_bomb_is_refused_in_bounded_memory(bomb: str, tmp_path: Path) -> None:
    path = tmp_path / "bomb.siginfo"
    path.write_bytes(BOMBS[bomb]())
    assert path.stat().st_size < 2 * MiB
    m = run_measured(cli("dumpsig", str(path)))
    assert m.returncode == 2, m.stderr
    assert MESSAGES[bomb] in m.stderr
    assert len(m.stderr.splitlines()) <= 2 and "Traceback" not in m.stderr
    assert m.peak_mib < PEAK_MIB, f"{bomb}: peak {m.peak_mib:.0f} MiB"


def test_many_bombs_read_in_parallel_stay_bounded_in_total(
        tmp_path: Path, oe_cache_a: Path) -> None:
    """Every ``.siginfo`` of a mirror is the costliest file the caps let through (4 MiB of
    JSON, just under the value cap), read with 32 jobs: the process stays bounded because at
    most two files are decoded at once."""
    mirror = tmp_path / "mirror"
    shutil.copytree(oe_cache_a, mirror)
    entries = b", ".join(b'"%07d": {}' % i for i in range(60_000))  # 180,000 values
    costly = _zstd([b'{"varvals": {', entries, b"}}"])
    sigs = sorted(mirror.rglob("*.siginfo"))
    assert len(sigs) >= 32
    for sig in sigs:
        sig.write_bytes(costly)
    m = run_measured(cli("verify", "--all", "-j", "32", "--json", str(mirror)))
    assert m.returncode == 1, m.stderr
    assert m.stdout.count('"siginfo-unreadable"') == len(sigs)
    assert m.peak_mib < 1.5 * PEAK_MIB, f"peak {m.peak_mib:.0f} MiB"
