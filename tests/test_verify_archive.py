"""Reading archives to their end: real pzstd/gzip archives pass, every damage is found."""

from __future__ import annotations

import contextlib
import io
import tarfile
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sstate_mirror.archive_check import (
    ArchiveDefect,
    ArchiveLimits,
    LimitExceeded,
    check_archive,
)

DATA = Path(__file__).parent / "data"
OE_ARCHIVES = sorted((DATA / "oe-wrynose").rglob("*.tar.zst"))
TGZ_ARCHIVES = sorted((DATA / "legacy-honister" / "cache-a").rglob("*.tgz"))


def _ext(path: Path) -> str:
    return "tgz" if path.name.endswith(".tgz") else "tar.zst"


def _check(data: bytes, ext: str = "tar.zst", **kw: object):
    return check_archive(io.BytesIO(data), ext, **kw)  # type: ignore[arg-type]


def _largest(paths: list[Path]) -> bytes:
    return max((p.read_bytes() for p in paths), key=len)


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("path", OE_ARCHIVES + TGZ_ARCHIVES, ids=lambda p: p.name[-60:])
def test_real_archives_pass(path: Path) -> None:
    data = path.read_bytes()
    result = _check(data, _ext(path))
    assert result.compressed_bytes == len(data)
    assert result.decompressed_bytes > 0


def test_fixture_archives_are_multi_frame_with_skippable_frames() -> None:
    """The point of walking frames: pzstd output starts with a skippable frame."""
    data = _largest(OE_ARCHIVES)
    assert data[:4] == bytes.fromhex("502a4d18")
    assert data.count(bytes.fromhex("28b52ffd")) >= 1


@pytest.mark.parametrize("path", [max(OE_ARCHIVES, key=lambda p: p.stat().st_size),
                                  max(TGZ_ARCHIVES, key=lambda p: p.stat().st_size)],
                         ids=["zst", "tgz"])
def test_every_cut_is_truncated(path: Path) -> None:
    data = path.read_bytes()
    step = max(1, len(data) // 61)
    for cut in [1, 3, 4, 7, 8, 12, 13, *range(16, len(data), step), len(data) - 1]:
        with pytest.raises(ArchiveDefect) as info:
            _check(data[:cut], _ext(path))
        assert info.value.truncated, (cut, str(info.value))


def test_flipped_bytes_are_corrupt() -> None:
    data = _largest(OE_ARCHIVES)
    for pos in range(12, len(data), max(1, len(data) // 40)):
        damaged = bytearray(data)
        damaged[pos] ^= 0xFF
        with pytest.raises(ArchiveDefect):
            _check(bytes(damaged))


def test_flipped_byte_in_middle_of_tgz_is_corrupt() -> None:
    data = _largest(TGZ_ARCHIVES)
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0x55
    with pytest.raises(ArchiveDefect) as info:
        _check(bytes(damaged), "tgz")
    assert not info.value.truncated


@pytest.mark.parametrize("data, fragment", [
    (b"this is not zstd at all" * 10, "not a zstd stream"),
    (zstandard.ZstdCompressor().compress(b"plain text, not a tar archive\n" * 40),
     "not a valid tar stream"),
    (zstandard.ZstdCompressor().compress(b""), "not a valid tar stream"),
])
def test_not_zstd_or_not_tar(data: bytes, fragment: str) -> None:
    with pytest.raises(ArchiveDefect) as info:
        _check(data)
    assert fragment in str(info.value)


def test_garbage_after_the_last_frame() -> None:
    data = _largest(OE_ARCHIVES)
    with pytest.raises(ArchiveDefect, match="after"):
        _check(data + b"\x00\x01garbage!")


def test_data_after_the_tar_end_marker() -> None:
    tar = _tar({"a": b"hello"}) + b"\x01" * 512
    with pytest.raises(ArchiveDefect, match="after the end of the tar archive"):
        _check(zstandard.ZstdCompressor().compress(tar))


def test_broken_second_header_is_found() -> None:
    """tarfile stops quietly at a bad header after the first member; verify does not."""
    tar = bytearray(_tar({"a": b"x" * 100, "b": b"y" * 100}))
    tar[1024 + 10] ^= 0xFF  # inside the second header: its checksum no longer matches
    with pytest.raises(ArchiveDefect, match="invalid tar header"):
        _check(zstandard.ZstdCompressor().compress(bytes(tar)))


def test_tar_cut_inside_member_data_in_a_complete_frame() -> None:
    tar = _tar({"a": b"z" * 5000})
    with pytest.raises(ArchiveDefect) as info:
        _check(zstandard.ZstdCompressor().compress(tar[:3000]))
    assert info.value.truncated


def test_tar_without_end_marker() -> None:
    tar = _tar({"a": b"z" * 512})[:1024]
    with pytest.raises(ArchiveDefect, match="end-of-archive") as info:
        _check(zstandard.ZstdCompressor().compress(tar))
    assert info.value.truncated


def test_empty_tar_is_valid() -> None:
    """OE writes an empty tar (zeros only) for a task without output."""
    result = _check(zstandard.ZstdCompressor().compress(b"\0" * 10240))
    assert result.members == 0


def test_multi_member_gzip_and_multi_frame_zstd() -> None:
    import gzip

    tar = _tar({"a": b"1" * 3000, "b": b"2" * 7000})
    half = len(tar) // 2
    assert _check(gzip.compress(tar[:half]) + gzip.compress(tar[half:]), "tgz").members == 2
    cctx = zstandard.ZstdCompressor()
    skippable = bytes.fromhex("502a4d18") + (4).to_bytes(4, "little") + b"\x00" * 4
    frames = skippable + cctx.compress(tar[:half]) + skippable + cctx.compress(tar[half:])
    assert _check(frames).members == 2


def _pzstd_like(data: bytes, frame: int) -> tuple[bytes, list[int]]:
    """What pzstd writes: per chunk, a skippable frame holding the size of the zstd frame that
    follows, then that frame. Also returns where each skippable frame starts."""
    cctx = zstandard.ZstdCompressor()
    out = b""
    starts = []
    for i in range(0, len(data), frame):
        compressed = cctx.compress(data[i : i + frame])
        starts.append(len(out))
        out += bytes.fromhex("502a4d18") + (4).to_bytes(4, "little")
        out += len(compressed).to_bytes(4, "little") + compressed
    return out, starts


def test_cut_exactly_at_a_frame_boundary_is_truncated() -> None:
    """The zstd data is then valid: the tar stream shows the cut."""
    tar = _tar({f"m{i}": bytes([i]) * 20000 for i in range(8)})
    data, starts = _pzstd_like(tar, 16384)
    assert _check(data).members == 8
    assert len(starts) > 3
    for cut in starts[1:]:
        with pytest.raises(ArchiveDefect) as info:
            _check(data[:cut])
        assert info.value.truncated, cut


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:  # type: ignore[no-untyped-def]
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


@pytest.fixture(scope="module")
def zstd_bomb() -> bytes:
    """A small file whose tar member is 1 GiB of zeros."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=3).stream_writer(out, closefd=False) as writer, \
            tarfile.open(fileobj=writer, mode="w|") as tf:
        info = tarfile.TarInfo("zeros")
        info.size = 1 << 30
        tf.addfile(info, _Zeros(info.size))
    return out.getvalue()


def test_zstd_bomb_stops_at_the_cap_in_bounded_memory(zstd_bomb: bytes) -> None:
    assert len(zstd_bomb) < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded):
            _check(zstd_bomb, limits=ArchiveLimits(max_decompressed=64 << 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def test_member_cap() -> None:
    tar = _tar({f"f{i}": b"" for i in range(20)})
    with pytest.raises(LimitExceeded, match="members"):
        _check(zstandard.ZstdCompressor().compress(tar), limits=ArchiveLimits(max_members=5))


def test_reports_bytes_read() -> None:
    data = _largest(OE_ARCHIVES)
    seen: list[int] = []
    check_archive(io.BytesIO(data), "tar.zst", on_bytes=seen.append)
    assert sum(seen) == len(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=4096), ext=st.sampled_from(["tar.zst", "tgz"]))
def test_any_bytes_give_a_verdict_never_a_crash(data: bytes, ext: str) -> None:
    """Random bytes are never a sound archive: a defect (or a limit), never OK, never a crash."""
    with pytest.raises((ArchiveDefect, LimitExceeded)):
        _check(data, ext)


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from([b"", bytes.fromhex("28b52ffd"), bytes.fromhex("502a4d18"),
                               b"\x1f\x8b\x08"]),
       data=st.binary(max_size=2048), ext=st.sampled_from(["tar.zst", "tgz"]))
def test_bytes_after_a_magic_give_a_verdict(prefix: bytes, data: bytes, ext: str) -> None:
    with pytest.raises((ArchiveDefect, LimitExceeded)):
        _check(prefix + data, ext)


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(min_value=0), value=st.integers(min_value=1, max_value=255),
       tar_ext=st.booleans())
def test_random_damage_to_real_archive_gives_a_verdict(pos: int, value: int,
                                                       tar_ext: bool) -> None:
    data = bytearray(_largest(OE_ARCHIVES if tar_ext else TGZ_ARCHIVES))
    data[pos % len(data)] ^= value
    with contextlib.suppress(ArchiveDefect, LimitExceeded):
        _check(bytes(data), "tar.zst" if tar_ext else "tgz")
