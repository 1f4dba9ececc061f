"""The contract every backend honours, run against each real backend.

A backend's test module provides a ``contract_env`` fixture returning a :class:`ContractEnv`
for an empty mirror, then does ``from backend_contract import *`` so pytest collects these
tests there. Nothing here knows which store is underneath.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

import pytest

from sstate_mirror.backends.base import Backend
from sstate_mirror.commands.pins import Pin, delete_pin, read_pins, write_pin
from sstate_mirror.errors import NotFoundError, PermanentError
from sstate_mirror.naming import Kind, classify, pin_path

__all__ = [
    "ContractEnv",
    "test_contract_check_existing_root",
    "test_contract_concurrent_puts",
    "test_contract_delete_batch",
    "test_contract_delete_missing_is_not_a_failure",
    "test_contract_missing_object",
    "test_contract_pins_round_trip",
    "test_contract_put_list_roundtrip",
    "test_contract_put_replaces",
    "test_contract_put_size_mismatch_leaves_nothing",
    "test_contract_read_limit",
    "test_contract_special_names",
    "test_contract_stat",
    "test_contract_touch_refreshes_mtime",
    "test_contract_unsafe_paths_rejected",
]

OE_NAME = (
    "4a/b3/sstate:zlib:core2-64-poky-linux:1.3.1:r0:core2-64:14:"
    "4ab3" + "0" * 60 + "_populate_sysroot.tar.zst"
)


@dataclass
class ContractEnv:
    backend: Backend
    #: make an existing object look ``seconds`` older (None where the store cannot)
    backdate: Optional[Callable[[str, float], None]] = None
    #: whether the store's clock is this machine's (mtime close to time.time())
    local_clock: bool = True
    #: whether the store can refresh a file's time without a new upload (nginx cannot)
    can_touch: bool = True


def _put(backend: Backend, path: str, data: bytes) -> None:
    backend.put(path, io.BytesIO(data), len(data))


def _listing(backend: Backend) -> dict[str, int]:
    return {e.path: e.size for e in backend.list()}


def test_contract_check_existing_root(contract_env: ContractEnv) -> None:
    contract_env.backend.check()


def test_contract_put_list_roundtrip(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    before = time.time()
    _put(b, OE_NAME, b"archive-bytes")
    _put(b, OE_NAME + ".siginfo", b"sig")
    _put(b, "universal/9c/1e/sstate:zlib-native:x86_64-linux:1.3.1:r0:x86_64:14:"
         + "9c1e" + "1" * 60 + "_populate_sysroot.tar.zst", b"")
    entries = {e.path: e for e in b.list()}
    assert set(entries) == {
        OE_NAME,
        OE_NAME + ".siginfo",
        "universal/9c/1e/sstate:zlib-native:x86_64-linux:1.3.1:r0:x86_64:14:"
        + "9c1e" + "1" * 60 + "_populate_sysroot.tar.zst",
    }
    assert entries[OE_NAME].size == len(b"archive-bytes")
    if contract_env.local_clock:
        # mtimes are UTC POSIX timestamps, whatever the local timezone
        assert before - 5 <= entries[OE_NAME].mtime <= time.time() + 5
    with b.open(OE_NAME) as f:
        assert f.read() == b"archive-bytes"
    assert b.read(OE_NAME + ".siginfo", 100) == b"sig"
    # a listing of a sub-prefix sees only that part
    assert {e.path for e in b.list("universal")} == {
        p for p in entries if p.startswith("universal/")
    }


def test_contract_put_replaces(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    _put(b, OE_NAME, b"truncat")
    _put(b, OE_NAME, b"truncated-no-more")
    assert _listing(b) == {OE_NAME: len(b"truncated-no-more")}
    assert b.read(OE_NAME, 1000) == b"truncated-no-more"


def test_contract_put_size_mismatch_leaves_nothing(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    with pytest.raises(PermanentError):
        b.put(OE_NAME, io.BytesIO(b"short"), 100)
    with pytest.raises(PermanentError):
        b.put(OE_NAME, io.BytesIO(b"longer than announced"), 3)
    # neither the final name nor a leftover temporary file is visible
    assert [e.path for e in b.list() if classify(e.path) is not Kind.TEMP] == []
    assert b.stat(OE_NAME) is None


def test_contract_stat(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    assert b.stat(OE_NAME) is None
    _put(b, OE_NAME, b"12345")
    st = b.stat(OE_NAME)
    assert st is not None and st.size == 5 and st.path == OE_NAME


def test_contract_missing_object(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    with pytest.raises(NotFoundError), b.open("00/00/does-not-exist"):
        pass


def test_contract_read_limit(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    _put(b, "aa/bb/big", b"x" * 5000)
    with pytest.raises(PermanentError):
        b.read("aa/bb/big", 4096)


def test_contract_delete_batch(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    paths = [f"{i:02x}/{i:02x}/file-{i}" for i in range(12)]
    for p in paths:
        _put(b, p, p.encode())
    failures = b.delete(paths[:10])
    assert failures == {}
    assert set(_listing(b)) == set(paths[10:])
    assert b.delete(paths[10:]) == {}
    assert _listing(b) == {}


def test_contract_delete_missing_is_not_a_failure(contract_env: ContractEnv) -> None:
    assert contract_env.backend.delete(["00/00/never-was"]) == {}


def test_contract_touch_refreshes_mtime(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    assert contract_env.backdate is not None, "touch is checked on a back-dated file"
    _put(b, OE_NAME, b"payload")
    contract_env.backdate(OE_NAME, 10 * 86400)
    old = b.stat(OE_NAME)
    assert old is not None and old.mtime < time.time() - 9 * 86400
    if not contract_env.can_touch:
        # a store that cannot record use says so, changes nothing, and reports it in its
        # properties so that commands can say it once
        assert list(b.touch([OE_NAME])) == [OE_NAME]
        assert b.properties.touch == "none"
        assert b.read(OE_NAME, 100) == b"payload"
        assert b.stat(OE_NAME) == old
        return
    assert b.touch([OE_NAME]) == {}
    new = b.stat(OE_NAME)
    assert new is not None and new.mtime > old.mtime + 9 * 86400
    assert b.read(OE_NAME, 100) == b"payload"  # content unchanged
    # touching what is not there is reported, and creates nothing
    failures = b.touch(["00/00/never-was"])
    assert list(failures) == ["00/00/never-was"]
    assert b.stat("00/00/never-was") is None


def test_contract_special_names(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    names = [
        "ab/cd/sstate:g++-native:x86_64-linux:1.0+git:r0:x86_64:14:" + "abcd" + "2" * 60
        + "_populate_sysroot.tar.zst",
        "ab/cd/with space %20 and % percent",
        "ab/cd/unicode-ünïcødé-名前",
        "ab/cd/" + "n" * 240,
    ]
    for n in names:
        _put(b, n, n.encode())
    assert _listing(b) == {n: len(n.encode()) for n in names}
    for n in names:
        assert b.read(n, 1000) == n.encode()


def test_contract_pins_round_trip(contract_env: ContractEnv) -> None:
    """Pins live below a dot-directory, which some servers leave out of a full listing
    (nginx): storing, listing by the pins directory, reading and removing work everywhere."""
    b = contract_env.backend
    assert read_pins(b, time.time()).pins == []  # no pins directory yet
    _put(b, OE_NAME, b"archive")
    pin = Pin("rel-1.0", time.time(), {"4ab3" + "0" * 60: ("zlib", "do_populate_sysroot")},
              ["locked-sigs.inc"])
    write_pin(b, pin)
    write_pin(b, pin)  # replaced, not duplicated
    assert read_pins(b, time.time()).pins == [pin]
    assert classify(pin_path("rel-1.0")) is Kind.META
    assert delete_pin(b, "rel-1.0") and not delete_pin(b, "rel-1.0")
    assert read_pins(b, time.time()).pins == []
    assert [e.path for e in b.list()] == [OE_NAME]


def test_contract_unsafe_paths_rejected(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    for bad in ["../escape", "a/../../escape", "/abs/path", "a//b", ""]:
        with pytest.raises(PermanentError):
            _put(b, bad, b"x")


def test_contract_concurrent_puts(contract_env: ContractEnv) -> None:
    b = contract_env.backend
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            _put(b, f"{i % 4:02x}/{i % 3:02x}/f{i}", bytes([i]) * (100 + i))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], [repr(e) for e in errors]
    assert _listing(b) == {f"{i % 4:02x}/{i % 3:02x}/f{i}": 100 + i for i in range(24)}
