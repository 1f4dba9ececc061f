"""Local writes are durable: the data is fsynced before the rename, the directory after it.

A crash or power cut right after an upload must not leave a file at its final name with
data that never reached the disk. ``os.fsync`` and ``os.replace`` are wrapped in this process
(the OS call boundary: nothing of the tool is replaced) to record what the upload asks of
the kernel, in order.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import List, Tuple

import pytest

from runcli import run


def test_upload_fsyncs_file_then_renames_then_fsyncs_directory(
        tmp_path: Path, oe_cache_a: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    events: List[Tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append((f"fsync-{kind}", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(("replace", f"{src} -> {dst}"))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    mirror = tmp_path / "mirror"
    code, _, err = run(capsys, "upload", "-q", "-j", "1", str(oe_cache_a), str(mirror))
    monkeypatch.undo()
    assert code == 0, err
    files = sorted(p for p in mirror.rglob("*") if p.is_file())
    assert len(files) == 93
    for final in files:
        renames = [i for i, (what, arg) in enumerate(events)
                   if what == "replace" and arg.endswith(f" -> {final}")]
        assert len(renames) == 1, final
        i = renames[0]
        tmp = events[i][1].split(" -> ")[0]
        assert ("fsync-file", tmp) in events[:i], f"{final}: data not synced before rename"
        assert ("fsync-dir", str(final.parent)) in events[i + 1:], \
            f"{final}: directory not synced after rename"
    assert sum(1 for what, _ in events if what == "fsync-file") == 93
