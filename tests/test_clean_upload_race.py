"""clean next to upload never leaves an archive without its ``.siginfo``, on every backend.

The race, step by step: clean deletes a group's archive; an upload lists the mirror, finds the
``.siginfo`` there and the archive missing, and sends the archive; clean then deletes the
``.siginfo``. Both commands now check *after* their own write: clean looks for the archives
again after deleting their signatures (and deletes an archive that came back), upload checks
the signatures after sending the archive (and sends a missing one again). Whatever the
order, one of them sees the other.

The steps of the two commands are interleaved exactly, by hooks on a real backend (each
command's own calls go to the real server); nothing depends on timing.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Sequence, Tuple, cast

import pytest

from mirrors import Mirror, make_mirror
from sstate_mirror.backends.base import Backend
from sstate_mirror.backends.local import LocalBackend
from sstate_mirror.commands.clean import (
    CleanOptions,
    CleanPlan,
    Deletion,
    execute_clean,
    plan_clean,
)
from sstate_mirror.commands.listing import EVERYTHING, list_artifacts
from sstate_mirror.commands.upload import execute_upload, plan_against_mirror
from sstate_mirror.errors import BackendError

KINDS = ["dir", "s3-moto", "dav-nginx", "dav-wsgidav"]
DAY = 86400


class Hooked:
    """A real backend, with a callback after ``delete`` and before ``put``."""

    def __init__(self, inner: Backend,
                 after_delete: Optional[Callable[[List[str]], None]] = None,
                 before_put: Optional[Callable[[str], None]] = None) -> None:
        self._inner = inner
        self._after_delete = after_delete
        self._before_put = before_put

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def delete(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        failures = self._inner.delete(paths)
        if self._after_delete is not None:
            self._after_delete(list(paths))
        return failures

    def put(self, path: str, src: IO[bytes], size: int) -> None:
        if self._before_put is not None:
            self._before_put(path)
        self._inner.put(path, src, size)


@pytest.fixture
def group(tmp_path: Path, oe_cache_a: Path) -> Tuple[Path, str, str]:
    """A local cache holding one real archive and its .siginfo: (cache, archive, siginfo)."""
    archive = next(p for p in sorted(oe_cache_a.rglob("*.tar.zst"))
                   if Path(str(p) + ".siginfo").exists())
    rel = str(archive.relative_to(oe_cache_a))
    cache = tmp_path / "cache"
    for name in (rel, rel + ".siginfo"):
        (cache / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(oe_cache_a / name, cache / name)
    return cache, rel, rel + ".siginfo"


def _upload(cache: Path, target: Any) -> None:
    local = LocalBackend(str(cache))
    plan = plan_against_mirror(local, target, EVERYTHING, now=time.time(), used_within=None,
                               jobs=1)
    result = execute_upload(plan, local, target, jobs=1)
    assert not result.failed, result.failed


def _old_mirror(request: pytest.FixtureRequest, kind: str, cache: Path) -> Mirror:
    m = make_mirror(request, kind)
    with m.backend() as b:
        _upload(cache, b)
    m.age_all(2 * DAY)
    return m


def _clean(m: Mirror, target: Any) -> Any:
    with m.backend() as b:
        plan = plan_clean(list_artifacts(b), CleanOptions(max_age=DAY), time.time())
    assert len(plan.deletions) == 2
    return execute_clean(plan, cast(Backend, target), jobs=1)


def _assert_never_archive_alone(m: Mirror, archive: str, siginfo: str) -> Dict[str, int]:
    present = m.sizes()
    assert not (archive in present and siginfo not in present), present
    return present


@pytest.mark.parametrize("kind", KINDS)
def test_upload_during_clean_is_caught_by_the_clean(
        request: pytest.FixtureRequest, group: Tuple[Path, str, str], kind: str) -> None:
    """The whole upload runs right after clean deleted the archive: clean deletes the
    signature, looks again, finds the archive back and deletes it again."""
    cache, archive, siginfo = group
    m = _old_mirror(request, kind, cache)
    uploaded = []

    def after_delete(paths: List[str]) -> None:
        if archive in paths and not uploaded:
            uploaded.append(True)
            with m.backend() as b:
                _upload(cache, b)

    with m.backend() as b:
        result = _clean(m, Hooked(b, after_delete=after_delete))
    assert uploaded
    _assert_never_archive_alone(m, archive, siginfo)
    assert result.deleted_again == [archive]


@pytest.mark.parametrize("kind", KINDS)
def test_clean_during_upload_is_caught_by_the_upload(
        request: pytest.FixtureRequest, group: Tuple[Path, str, str], kind: str) -> None:
    """The upload lists after clean deleted the archive and sends the signature; then the
    clean runs to its end (signature deleted, archive not back yet); then the upload sends
    the archive, checks the signature and sends it again."""
    cache, archive, siginfo = group
    m = _old_mirror(request, kind, cache)
    companions_sent = threading.Event()
    clean_done = threading.Event()
    errors: List[BaseException] = []

    def before_put(path: str) -> None:
        if path == archive and not clean_done.is_set():
            companions_sent.set()
            assert clean_done.wait(60)

    def upload_thread() -> None:
        try:
            with m.backend() as b:
                _upload(cache, Hooked(b, before_put=before_put))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            companions_sent.set()

    thread = threading.Thread(target=upload_thread)

    def after_delete(paths: List[str]) -> None:
        if archive in paths and not thread.is_alive() and not companions_sent.is_set():
            thread.start()
            assert companions_sent.wait(60)

    try:
        with m.backend() as b:
            result = _clean(m, Hooked(b, after_delete=after_delete))
    finally:
        clean_done.set()
        if thread.ident is not None:
            thread.join(60)
    assert not errors, errors
    assert result.deleted_again == []
    present = _assert_never_archive_alone(m, archive, siginfo)
    assert archive in present and siginfo in present


@pytest.mark.parametrize("kind", KINDS)
def test_clean_entirely_between_signature_and_check_is_caught_by_the_upload(
        request: pytest.FixtureRequest, group: Tuple[Path, str, str], kind: str) -> None:
    """No clean runs when the upload begins. The upload sends the signature; a whole clean
    (announced, deleting, ended) runs before the archive goes, deleting that signature (its
    plan came from a listing made before the upload sent it); then the archive goes. The
    clean's ended lease, new since the upload's first look, makes the upload check its
    signatures and send the one deleted again."""
    cache, archive, siginfo = group
    m = make_mirror(request, kind)
    with m.backend() as b:
        _upload(cache, b)
        assert b.delete([archive]) == {}  # the archive only is gone: the upload sends both
        stale_plan = CleanPlan(deletions=[
            Deletion(a, "orphan-siginfo") for a in list_artifacts(b) if a.path == siginfo])
    assert len(stale_plan.deletions) == 1
    cleaned: List[Any] = []

    def before_put(path: str) -> None:
        if path == archive and not cleaned:
            with m.backend() as b:
                cleaned.append(execute_clean(stale_plan, b, jobs=1))

    with m.backend() as b:
        _upload(cache, Hooked(b, before_put=before_put))
    assert cleaned and cleaned[0].deleted == 1
    present = _assert_never_archive_alone(m, archive, siginfo)
    assert archive in present and siginfo in present
