"""One channel of events (retries, warnings, notices), printed only by the CLI.

Backends and the transfer layer report through ``sstate_mirror.events``; the CLI prints each
event as one line on stderr, with the ``warning:`` prefix and credentials redacted,
respecting ``-q`` and ``-v``; ``-vv`` adds the traceback of an error.
"""

from __future__ import annotations

import io
import logging
import socket

import pytest

from sstate_mirror import events
from sstate_mirror.cli import main
from sstate_mirror.cli.ui import UI


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _printed(verbose: int, quiet: bool) -> str:
    err = io.StringIO()
    ui = UI(verbose=verbose, quiet=quiet, out=io.StringIO(), err=err)
    with events.listening(ui.event), events.capture_logging():
        events.warning("cannot read %s", "https://user:s3cret@host/netrc")
        events.retry("PUT https://host/x", "status 503\nService Unavailable", 1, 5, 0.25)
        events.notice("walking with Depth: 1")
        events.debug("a detail")
        logging.getLogger("sstate_mirror.backends.s3").warning("from a logger")
    return err.getvalue()


def test_each_event_is_one_line_with_its_prefix_and_redacted() -> None:
    lines = _printed(0, False).splitlines()
    assert lines == [
        "warning: cannot read https://***@host/netrc",
        "warning: PUT https://host/x: status 503 Service Unavailable; retry 1/5 in 0.2s",
        "warning: from a logger",
    ]


def test_quiet_hides_retries_verbose_shows_notices_and_debug() -> None:
    assert _printed(0, True).splitlines() == [
        "warning: cannot read https://***@host/netrc", "warning: from a logger"]
    assert "walking with Depth: 1" in _printed(1, False)
    assert "a detail" not in _printed(1, False)
    assert "a detail" in _printed(2, False)


def test_without_a_listener_events_go_to_logging(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="sstate_mirror"):
        events.retry("GET x", "reset", 1, 2, 0.5)
    assert "retry 1/2" in caplog.text


def test_vv_prints_the_traceback_of_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/m/"
    assert main(["info", "--no-netrc", "--retries", "0", url]) == 3
    err = capsys.readouterr().err
    assert "error: " in err and "Traceback" not in err
    assert main(["info", "-vv", "--no-netrc", "--retries", "0", url]) == 3
    err = capsys.readouterr().err
    assert "error: " in err and "Traceback (most recent call last)" in err
    assert "ConnectError" in err  # the cause the error was raised from


def test_tls_off_is_a_warning_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"https://127.0.0.1:{_closed_port()}/m/"
    main(["info", "--no-netrc", "--retries", "0", "--insecure", url])
    err = capsys.readouterr().err
    assert any(line.startswith("warning: TLS certificate verification is OFF")
               for line in err.splitlines()), err
