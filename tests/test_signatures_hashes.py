"""Recomputing basehash and taskhash from a signature's content."""

from __future__ import annotations

from pathlib import Path

import pytest

from signature_helpers import base_sig, siginfo_files, zstd_json
from sstate_mirror.naming import parse_name
from sstate_mirror.signatures import (
    check_hashes,
    compute_basehash,
    compute_taskhash,
    read_signature,
    read_signature_file,
)

ALL_FILES = siginfo_files()


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: str(p.relative_to(p.parents[3])))
def test_recomputed_hashes_match_every_reference_file(path: Path) -> None:
    """Real bitbake (2.18 and 1.52) wrote these: both hashes must come out identical, and the
    taskhash is the hash in the file name (unihash == taskhash in these builds)."""
    sig = read_signature_file(path)
    check = check_hashes(sig)
    assert check.basehash_ok, check
    assert check.taskhash_ok is True, check
    assert check.ok
    name = parse_name(path.name)
    assert name is not None
    assert sig.taskhash == name.hash


def test_tampered_value_is_detected() -> None:
    path = next(p for p in ALL_FILES if "alpha-native" in p.name and "_compile" in p.name)
    sig = read_signature_file(path)
    sig.varvals["ALPHA_GREETING"] = "tampered"
    check = check_hashes(sig)
    assert not check.basehash_ok and not check.ok


def test_tampered_dependency_hash_is_detected() -> None:
    sig = read_signature(zstd_json(base_sig()))
    sig.taskhash = compute_taskhash(sig)
    assert check_hashes(sig).taskhash_ok is True
    assert sig.runtaskhashes is not None
    sig.runtaskhashes["foo:do_configure"] = "b" * 64
    assert check_hashes(sig).taskhash_ok is False


def test_taskhash_rules_for_checksums_and_taint() -> None:
    import hashlib

    sig = read_signature(zstd_json(base_sig(
        runtaskdeps=[], runtaskhashes={},
        file_checksum_values=[["a.patch", "c1"], ["/x/./sub/b.patch", "c2"], ["gone", None]],
        taint="nostamp:uuid-1")))
    expected = sig.basehash + "c1" + "/x/./sub/b.patch" + "c2" + "uuid-1"
    assert compute_taskhash(sig) == hashlib.sha256(expected.encode()).hexdigest()
    sig.taint = "forced-taint"
    expected = sig.basehash + "c1" + "/x/./sub/b.patch" + "c2" + "forced-taint"
    assert compute_taskhash(sig) == hashlib.sha256(expected.encode()).hexdigest()


def test_basehash_rules() -> None:
    import hashlib

    sig = read_signature(zstd_json(base_sig(
        taskdeps={"B", "A", "UNSET"}, varvals={"do_compile": None, "A": "1", "B": 2,
                                                "UNSET": None})))
    assert compute_basehash(sig) == hashlib.sha256(b"A1B2UNSET").hexdigest()


def test_basehash_not_computable_without_task_or_values() -> None:
    assert compute_basehash(read_signature(zstd_json(base_sig(task=None)))) is None
    assert compute_basehash(read_signature(zstd_json(base_sig(taskdeps={"MISSING"})))) is None


def test_basehash_only_file_has_no_taskhash_to_check() -> None:
    data = base_sig()
    for key in ("runtaskdeps", "runtaskhashes", "file_checksum_values", "taskhash", "unihash"):
        del data[key]
    check = check_hashes(read_signature(zstd_json(data)))
    assert check.taskhash_ok is None and check.computed_taskhash is None
