"""Ages are measured on the mirror's clock; a mirror whose clock is far off is refused.

A proxy in front of a real server (moto, nginx, fake-gcs-server, Azurite) moves the ``Date`` of every answer: the
server's clock as this machine sees it. The mirror's own mtimes are untouched, exactly as
when the runner's clock is the wrong one.
"""

from __future__ import annotations

import io
import json
import urllib.parse
from collections.abc import Iterator
from typing import List, Tuple

import pytest

from faultproxy import FaultProxy
from mirrors import Mirror, make_mirror
from sstate_mirror.cli import main

KINDS = ["s3-moto", "dav-nginx", "gcs", "azure"]
ARCHIVE = ("00/11/sstate:pn:core2-64-poky-linux:1.0:r0:core2-64:14:"
           + "0011" + "a" * 60 + "_populate_sysroot.tar.zst")
HOUR = 3600.0


def _proxied(request: pytest.FixtureRequest, kind: str, shift: float
             ) -> Iterator[Tuple[Mirror, str, List[str]]]:
    m = make_mirror(request, kind)
    endpoint = m.cli_args[1] if m.cli_args[:1] == ["--endpoint-url"] else None
    port = urllib.parse.urlsplit(endpoint or m.url).port
    assert port is not None
    with FaultProxy(port, date_shift=shift) as proxy:
        if endpoint is not None:  # S3, GCS, Azure: the endpoint is an option
            yield m, m.url, ["--endpoint-url", endpoint.replace(f":{port}", f":{proxy.port}")]
        else:
            yield m, m.url.replace(f":{port}/", f":{proxy.port}/"), []


def _seed(m: Mirror, age: float) -> List[str]:
    paths = [ARCHIVE, ARCHIVE + ".siginfo"]
    with m.backend() as b:
        for p in paths:
            b.put(p, io.BytesIO(b"x" * 10), 10)
    if age:
        m.age_all(age)
    return paths


def _clean(capsys: pytest.CaptureFixture[str], url: str, args: List[str], *options: str
           ) -> Tuple[int, str, str]:
    code = main(["clean", url, *args, *options, "--retries", "0"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shift", [-3 * HOUR, 3 * HOUR])
def test_clean_refuses_a_mirror_whose_clock_is_far_off(
        request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
        kind: str, shift: float) -> None:
    for m, url, args in _proxied(request, kind, shift):
        paths = _seed(m, 2 * 86400)
        for dry in ([], ["--dry-run"]):
            code, _, err = _clean(capsys, url, args, "--max-age", "1d", *dry)
            assert code == 3, err
            direction = "ahead of" if shift < 0 else "behind"
            assert f"this machine's clock is 3h {direction} the clock of" in err
            assert "nothing is deleted by age" in err and "Traceback" not in err
        assert sorted(m.sizes()) == sorted(paths)


@pytest.mark.parametrize("kind", KINDS)
def test_ages_are_measured_on_the_mirrors_clock(
        request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str],
        kind: str) -> None:
    """Within the allowed skew the mirror's clock counts: files written now are 4 minutes
    old on a mirror whose clock is 4 minutes ahead, so --min-age 2min no longer keeps them
    (with this machine's clock they would look brand new)."""
    for m, url, args in _proxied(request, kind, 4 * 60):
        _seed(m, 0)
        code, out, err = _clean(capsys, url, args, "--max-age", "0s", "--min-age", "2min",
                                "--json")
        assert code == 0, err
        report = json.loads(out)
        assert 230 < report["clock_offset"] < 250
        assert report["result"]["deleted"] == 2
        assert m.sizes() == {}


def test_a_directory_uses_this_machines_clock(
        tmp_path: object, capsys: pytest.CaptureFixture[str],
        request: pytest.FixtureRequest) -> None:
    m = make_mirror(request, "dir")
    _seed(m, 0)
    code, out, err = _clean(capsys, m.url, [], "--max-age", "0s", "--min-age", "2min",
                            "--json")
    assert code == 0, err
    assert json.loads(out)["clock_offset"] == 0.0
    assert len(m.sizes()) == 2


def test_a_slow_answer_does_not_shrink_the_skew_said() -> None:
    """The server's Date is taken somewhere within a slow answer (6 s here): the skew is said
    to the nearest minute, not cut down to the hour below."""
    from sstate_mirror.commands.clock import mirror_clock
    from sstate_mirror.errors import PermanentError

    class Slow:
        url = "s3://bucket/sstate"

        def server_time(self) -> float:
            return 1_000_000.0 + 3 * HOUR - 1  # the Date, truncated to the second

    times = iter([1_000_000.0, 1_000_006.0])  # before and after the answer
    with pytest.raises(PermanentError) as info:
        mirror_clock(Slow(), local=lambda: next(times))  # type: ignore[arg-type]
    assert "this machine's clock is 3h behind the clock of s3://bucket/sstate" in str(info.value)
