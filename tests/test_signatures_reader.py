"""Reading signature files: both formats, renames, and refusing hostile or broken input."""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import resource
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signature_helpers import LEGACY, OE, base_sig, siginfo_files, zstd_json
from sstate_mirror.errors import SignatureError
from sstate_mirror.signatures import (
    Encoding,
    Limits,
    check_hashes,
    read_signature,
    read_signature_file,
)
from sstate_mirror.signatures.reader import MiB

ALL_FILES = siginfo_files()
SOME_FILE = next(p for p in ALL_FILES if "gamma-native" in p.name and "prepare_recipe" in p.name)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(p.parents[3])))
def test_every_reference_file_reads(path: Path) -> None:
    sig = read_signature_file(path)
    assert sig.task and sig.task.startswith("do_")
    assert sig.basehash and sig.taskhash
    assert sig.source == str(path)


def test_modern_file_fields_and_set_types() -> None:
    sig = read_signature_file(SOME_FILE)
    assert sig.encoding is Encoding.ZSTD_JSON
    assert isinstance(sig.basehash_ignore_vars, frozenset)
    assert "PATH" in sig.basehash_ignore_vars
    assert sig.taskhash_ignore_tasks is None
    assert sig.taskdeps == frozenset({"do_prepare_recipe_sysroot[func]"})
    assert sig.runtaskdeps == ["alpha-native:do_populate_sysroot", "gamma-native:do_fetch"]
    assert sig.varvals["do_prepare_recipe_sysroot[func]"] == 1
    assert sig.unihash == sig.taskhash


def test_legacy_pickle_is_read_with_renamed_keys() -> None:
    path = next((LEGACY / "cache-a").rglob("sstate:beta-native::*_fetch.tgz.siginfo"))
    assert path.read_bytes()[:2] == b"\x80\x05"
    sig = read_signature_file(path)
    assert sig.encoding is Encoding.PICKLE and sig.is_legacy
    assert isinstance(sig.basehash_ignore_vars, set) and "PATH" in sig.basehash_ignore_vars
    assert sig.taskdeps == ["SRCREV", "SRC_URI", "base_do_fetch"]
    assert sig.file_checksum_values is not None
    assert ("beta.sh", "046dfb3fd87920488b021ac511203de4") in sig.file_checksum_values


def test_legacy_runtaskdeps_are_recipe_file_ids() -> None:
    path = next((LEGACY / "cache-a").rglob("sstate:gamma-native:*_prepare_recipe_sysroot*.siginfo"))
    sig = read_signature_file(path)
    assert sig.runtaskdeps is not None
    assert all(d.startswith("/home/builder/legacy/") and ".bb:do_" in d for d in sig.runtaskdeps)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_protocols_and_old_key_names(protocol: int) -> None:
    data = base_sig()
    data["basewhitelist"] = data.pop("basehash_ignore_vars")
    data["taskwhitelist"] = data.pop("taskhash_ignore_tasks")
    sig = read_signature(pickle.dumps(data, protocol=protocol))
    assert sig.basehash_ignore_vars == {"HOME", "PATH"}
    assert sig.taskhash_ignore_tasks is None
    assert sig.encoding is Encoding.PICKLE


@pytest.mark.parametrize("protocol, set_global", [
    (2, b"c__builtin__\nset\n"),  # bitbake on Python 2 (cPickle, protocol -1)
    (3, b"cbuiltins\nset\n"),     # bitbake on Python 3.0 to 3.3 (protocol -1)
    (4, None),                      # bitbake on Python 3.4 to 3.7: sets have opcodes
])
def test_legacy_files_as_older_bitbakes_wrote_them(protocol: int,
                                                   set_global: Any) -> None:
    """bitbake <= 1.52's siginfo is ``pickle.dump(data, stream, -1)``: the highest protocol
    of the Python it ran on. Protocols 2 and 3 store a set as a call of the global ``set``."""
    for path in sorted((LEGACY / "cache-a").rglob("*.siginfo"))[:12]:
        original = read_signature_file(path)
        raw = pickle.loads(path.read_bytes())
        data = pickle.dumps(raw, protocol=protocol)
        assert data[:2] == bytes([0x80, protocol])
        if set_global is not None:
            assert set_global in data
        sig = read_signature(data, source=str(path))
        assert sig == original
        assert check_hashes(sig).ok


@pytest.mark.parametrize("module", ["builtins", "__builtin__"])
@pytest.mark.parametrize("name", ["set", "frozenset"])
def test_set_globals_build_sets(module: str, name: str) -> None:
    data = (b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01c" + f"{module}\n{name}\n".encode()
            + b"]q\x02X\x01\x00\x00\x00bq\x03a\x85q\x04Rq\x05s.")
    from sstate_mirror.signatures.safepickle import loads_plain

    value = loads_plain(data, 100)
    assert value == {"a": {"b"}} and type(value["a"]).__name__ == name


def test_several_frames_and_skippable_frames() -> None:
    text = (OE / "cache-a").joinpath(SOME_FILE.relative_to(OE / "cache-a"))
    plain = zstandard.ZstdDecompressor().stream_reader(
        io.BytesIO(text.read_bytes()), read_across_frames=True).read()
    c = zstandard.ZstdCompressor()
    skippable = (0x184D2A5E).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"12345"
    half = len(plain) // 2
    data = skippable + c.compress(plain[:half]) + skippable + c.compress(plain[half:]) + skippable
    assert read_signature(data) == read_signature_file(SOME_FILE)


# --- hostile input ------------------------------------------------------------------------


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


class _WritesFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("payload", [_RunsCode, _WritesFile])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, protocol: int,
                                                      payload: Any) -> None:
    marker = tmp_path / "marker"
    evil = base_sig(varvals={"do_compile": payload(marker)})
    data = pickle.dumps(evil, protocol=protocol)
    path = tmp_path / "evil.siginfo"
    path.write_bytes(data)
    with pytest.raises(SignatureError, match="unsafe") as info:
        read_signature_file(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_pickle_persistent_id_is_refused() -> None:
    class P(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "x" if obj == "secret" else None

    buf = io.BytesIO()
    P(buf, protocol=4).dump({"a": "secret"})
    with pytest.raises(SignatureError, match="persistent"):
        read_signature(buf.getvalue())


@pytest.mark.parametrize("data", [
    b"\x80\x02\x82\x01.",             # EXT1: an extension-registry global
    b"\x80\x02cos\nsystem\n.",        # GLOBAL os.system
    b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x8c\x06system\x93.",  # STACK_GLOBAL
])
def test_pickle_globals_of_any_kind_are_refused(data: bytes) -> None:
    with pytest.raises(SignatureError):
        read_signature(data)


def test_decompression_bomb_is_refused_quickly_without_big_memory() -> None:
    cobj = zstandard.ZstdCompressor(level=1).compressobj()
    zeros = bytes(16 * MiB)
    parts = [cobj.compress(zeros) for _ in range(64)]  # 1 GiB of zeros
    parts.append(cobj.flush())
    bomb = b"".join(parts)
    assert len(bomb) < 1 * MiB
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.monotonic()
    with pytest.raises(SignatureError, match="limit"):
        read_signature(bomb, source="bomb.siginfo")
    assert time.monotonic() - start < 10
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 256 * 1024


def test_limits_are_configurable() -> None:
    data = SOME_FILE.read_bytes()
    with pytest.raises(SignatureError, match="larger than the limit"):
        read_signature(data, limits=Limits(max_compressed=100))
    with pytest.raises(SignatureError, match="exceeds the limit"):
        read_signature(data, limits=Limits(max_decompressed=100))


def test_oversized_file_on_disk_is_not_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "big.siginfo"
    path.write_bytes(b"\x80\x04" + bytes(2000))
    with pytest.raises(SignatureError, match="larger than the limit"):
        read_signature_file(path, limits=Limits(max_compressed=1000))


@pytest.mark.parametrize("cut", [1, 10, 100, -1, -10])
def test_truncated_files_are_refused(cut: int) -> None:
    data = SOME_FILE.read_bytes()
    with pytest.raises(SignatureError) as info:
        read_signature(data[:cut], source="cut.siginfo")
    assert "cut.siginfo" in str(info.value)


def test_truncated_legacy_file_is_refused() -> None:
    data = next((LEGACY / "cache-a").rglob("*.siginfo")).read_bytes()
    with pytest.raises(SignatureError, match="malformed legacy"):
        read_signature(data[:-7])


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"hello world", "not a signature file"),
    (b"\x80\x09abc", "protocol"),
    (b"\x28\xb5\x2f\xfd" + b"\x00" * 20, "zstd"),
    (zstandard.ZstdCompressor().compress(b"{not json"), "malformed signature JSON"),
    (zstandard.ZstdCompressor().compress(b"\xff\xfe"), "malformed signature JSON"),
    (zstandard.ZstdCompressor().compress(b"[1, 2]"), "not a mapping"),
    (zstandard.ZstdCompressor().compress(b"{}"), "missing"),
    (zstandard.ZstdCompressor().compress(b'{"_set_object": 5}'), "malformed"),
    (zstandard.ZstdCompressor().compress(b"[" * 100000), "nested deeper than 32"),
    (SOME_FILE.read_bytes() + b"xyz", "trailing garbage|not a zstd frame"),
])
def test_garbage_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        read_signature(data, source="x.siginfo")


@pytest.mark.parametrize("override, field", [
    ({"basehash": 5}, "basehash"),
    ({"taskdeps": "CC"}, "taskdeps"),
    ({"taskdeps": {"a": 1}}, "taskdeps"),
    ({"gendeps": []}, "gendeps"),
    ({"gendeps": {"CC": [1]}}, "gendeps"),
    ({"varvals": {"CC": ["x"]}}, "varvals"),
    ({"runtaskdeps": "x"}, "runtaskdeps"),
    ({"runtaskhashes": {"foo:do_configure": 1}}, "runtaskhashes"),
    ({"runtaskhashes": {}}, "runtaskhashes"),
    ({"file_checksum_values": [["a"]]}, "file_checksum_values"),
    ({"file_checksum_values": "x"}, "file_checksum_values"),
    ({"taint": 3}, "taint"),
    ({"task": 3}, "task"),
])
def test_wrong_field_types_are_refused(override: Any, field: str) -> None:
    with pytest.raises(SignatureError, match=field):
        read_signature(zstd_json(base_sig(**override)), source="typed.siginfo")


def test_file_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(SignatureError, match="cannot read"):
        read_signature_file(tmp_path / "nope.siginfo")


def test_to_json_sorts_sets() -> None:
    out = read_signature_file(SOME_FILE).to_json()
    assert out["basehash_ignore_vars"] == sorted(out["basehash_ignore_vars"])  # type: ignore
    assert out["gendeps"] == {"do_prepare_recipe_sysroot[func]": []}
    assert out["encoding"] == "zstd-json"


# --- fuzzing: nothing but SignatureError may come out ---------------------------------------

_REAL = [p.read_bytes() for p in ALL_FILES[:: max(1, len(ALL_FILES) // 8)]]
_FUZZ = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def _read_or_signature_error(data: bytes) -> None:
    with contextlib.suppress(SignatureError):
        read_signature(data, limits=Limits(max_compressed=1 * MiB, max_decompressed=4 * MiB))


@_FUZZ
@given(st.binary(max_size=4096))
def test_fuzz_random_bytes(data: bytes) -> None:
    _read_or_signature_error(data)


@_FUZZ
@given(st.sampled_from([b"\x80\x02", b"\x80\x04", b"\x80\x05", b"\x28\xb5\x2f\xfd",
                        b"\x50\x2a\x4d\x18"]), st.binary(max_size=2048))
def test_fuzz_plausible_headers(head: bytes, tail: bytes) -> None:
    _read_or_signature_error(head + tail)


@_FUZZ
@given(st.sampled_from(_REAL), st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                        min_size=1, max_size=8), st.integers(0, 1 << 20))
def test_fuzz_mutated_real_files(data: bytes, flips: Any, cut: int) -> None:
    buf = bytearray(data)
    for pos, value in flips:
        buf[pos % len(buf)] = value
    _read_or_signature_error(bytes(buf[: max(1, cut % (len(buf) + 1))]))


@_FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20))
def test_fuzz_arbitrary_pickled_data(value: Any) -> None:
    _read_or_signature_error(pickle.dumps(value, protocol=4))
    _read_or_signature_error(pickle.dumps({"task": value, "varvals": value, "gendeps": value,
                                           "taskdeps": value, "basehash": value,
                                           "basewhitelist": value}, protocol=4))
