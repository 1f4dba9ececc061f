"""Age and size parsing: exact values, refusals, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sstate_mirror.errors import UsageError
from sstate_mirror.units import format_age, format_size, parse_age, parse_size


@pytest.mark.parametrize("text,seconds", [
    ("0s", 0), ("45s", 45), ("1m", 60), ("2h", 7200), ("1d", 86400), ("30d", 30 * 86400),
    ("2w", 14 * 86400), (" 7d ", 7 * 86400),
])
def test_parse_age(text: str, seconds: int) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["1.5d", "-3d", "abc", "3", "", "d", "1dd", "1 d", "1D", "1y",
                                  "+1d", "0x10d", "1e3s", "٣d", "999999999999w"])
def test_parse_age_refuses(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_age(text, "--max-age")
    assert "--max-age" in str(err.value)


@pytest.mark.parametrize("text,n", [
    ("0", 0), ("512", 512), ("1K", 1024), ("1k", 1024), ("1KiB", 1024), ("1KB", 1024),
    ("1.5M", 1536 * 1024), ("10G", 10 << 30), ("2T", 2 << 40), ("3 G", 3 << 30),
])
def test_parse_size(text: str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "-1G", "G", "1X", "1.2.3M", "ten"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text, "--max-size")


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from("wdhms"))
def test_age_roundtrip(n: int, unit: str) -> None:
    factor = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}[unit]
    if n * factor > 100 * 365 * 86400:
        with pytest.raises(UsageError):
            parse_age(f"{n}{unit}")
    else:
        assert parse_age(f"{n}{unit}") == n * factor


@given(st.text(max_size=20))
def test_age_parser_only_raises_usage_errors(text: str) -> None:
    try:
        value = parse_age(text)
    except UsageError:
        return
    assert isinstance(value, int) and value >= 0


@given(st.text(max_size=20))
def test_size_parser_only_raises_usage_errors(text: str) -> None:
    try:
        value = parse_size(text)
    except UsageError:
        return
    assert isinstance(value, int) and value >= 0


def test_formatting() -> None:
    assert format_size(0) == "0 B"
    assert format_size(1023) == "1023 B"
    assert format_size(1536) == "1.5 KiB"
    assert format_size(3 << 30) == "3.0 GiB"
    assert format_age(59) == "59s"
    assert format_age(3600 * 5) == "5h"
    assert format_age(86400 * 3) == "3d"
    assert format_age(86400 * 70) == "10w"


@pytest.mark.parametrize("text", ["30m", "1m", "12m"])
def test_bare_m_is_refused_where_an_age_deletes(text: str) -> None:
    """``--max-age 30m`` (isar-sstate's minutes) is easily meant as 30 months: an option
    that deletes by age refuses it and says how to write either."""
    with pytest.raises(UsageError, match=r"ambiguous.*min for minutes"):
        parse_age(text, "--max-age", deletes=True)
    assert parse_age(text) == int(text[:-1]) * 60  # elsewhere it keeps isar-sstate's meaning
    assert parse_age(text[:-1] + "min", "--max-age", deletes=True) == int(text[:-1]) * 60


@pytest.mark.parametrize("text", ["3M", "3mo", "3months", "1y", "2years", "3 Months"])
def test_months_and_years_are_refused_with_a_hint(text: str) -> None:
    with pytest.raises(UsageError, match="months and years are not units"):
        parse_age(text)


def test_clean_refuses_max_age_in_m_and_warns_below_min_age(
        tmp_path: object, capsys: pytest.CaptureFixture[str]) -> None:
    from sstate_mirror.cli import main

    mirror = str(tmp_path)
    assert main(["clean", "--max-age", "30m", mirror]) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and "30min" in err and len(err.splitlines()) == 1
    assert main(["clean", "--max-age", "0s", "--dry-run", mirror]) == 0
    err = capsys.readouterr().err
    assert "--max-age 0s is less than --min-age 1h" in err
