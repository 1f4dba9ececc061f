"""info statistics on a synthetic listing and on the real caches."""

from __future__ import annotations

from pathlib import Path

from sstate_mirror.backends.local import LocalBackend
from sstate_mirror.cli.info import render
from sstate_mirror.commands.info import summarize
from sstate_mirror.commands.listing import list_artifacts
from sstate_mirror.naming import make_artifact

NOW = 1_800_000_000.0
DAY = 86400


def test_summarize_counts_and_buckets() -> None:
    h = "ab" * 32
    a = f"ab/ab/sstate:zlib:core2-64-poky-linux:1.3:r0:core2-64:14:{h}_populate_sysroot.tar.zst"
    n = f"universal/ab/ab/sstate:m4-native:x86_64-linux:1.4:r0:x86_64:14:{h}_populate_sysroot.tar.zst"
    arts = [make_artifact(a, 1000, NOW - 2 * DAY), make_artifact(a + ".siginfo", 10, NOW - 2 * DAY),
            make_artifact(n, 500, NOW - 400 * DAY), make_artifact("README", 3, NOW)]
    r = summarize(arts, NOW)
    assert (r.total.files, r.total.bytes) == (4, 1513)
    assert r.by_kind["archive"].bytes == 1500 and r.by_kind["unknown"].files == 1
    assert r.by_arch["core2-64"].files == 2 and r.by_arch["x86_64"].files == 1
    assert r.by_prefix["universal"].files == 1 and r.by_prefix["(top level)"].files == 2
    assert r.by_age["1-7 days"].files == 2 and r.by_age[">= 1 year"].files == 1
    assert r.by_age["< 1 day"].files == 1
    assert r.archives_without_siginfo == 1
    assert [x.pn for x in r.top_recipes(10)] == ["zlib", "m4-native"]
    d = r.to_dict(detail=True)
    assert d["files"] == 4 and d["recipe_detail"][0]["pn"] == "m4-native"


def test_real_cache_report(oe_cache_a: Path) -> None:
    arts = list_artifacts(LocalBackend(str(oe_cache_a)))
    r = summarize(arts, NOW)
    # numbers from the fixture README: 93 files, 436313 bytes
    assert (r.total.files, r.total.bytes) == (93, 436313)
    assert r.by_kind["archive"].files == 26 and r.by_kind["siginfo"].files == 67
    assert set(r.recipes) == {"alpha-native", "beta-native", "gamma-native", "delta-native",
                              "eta-native", "epsilon", "zeta"}
    assert r.by_prefix["debian-12"].files == 50
    assert r.archives_without_siginfo == 0
    text = render(r, top=3, detail=True)
    assert text.startswith("93 files, 426.1 KiB\n")
    assert "top 3 recipes by size:" in text and "recipes:" in text
