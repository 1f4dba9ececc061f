"""What CI scripts and hurried people type: every fumble gets a clear answer (exit code and
message), before anything is read or written.

An unset variable, a typo'd scheme, a source one level too high, a filter that selects nothing
in a gate, ``--json`` on a failure, and the command lines isar-sstate accepted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List

import pytest

from runcli import run
from signature_helpers import write_siginfo
from test_lint_cli import planted, sstate_path


def files_below(root: Path) -> List[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current directory: whatever a fumble creates or reads there shows."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "zz").mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.fixture
def mirror(tmp_path: Path, oe_cache_a: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    m = tmp_path / "mirror"
    assert run(capsys, "upload", "-q", str(oe_cache_a), str(m))[0] == 0
    capsys.readouterr()
    return m


# --- 1. an empty SOURCE or TARGET -------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["clean", "", "--max-age", "1s", "--dry-run"],
    ["info", ""],
    ["verify", "  "],
    ["upload", "", "MIRROR"],
    ["upload", "CACHE", ""],
    ["analyze", "CACHE", ""],
    ["lint", "", "--build-dir", "/b"],
])
def test_an_empty_location_is_a_usage_error(workdir: Path, oe_cache_a: Path,
                                            capsys: pytest.CaptureFixture[str],
                                            argv: List[str]) -> None:
    argv = [str(oe_cache_a) if a == "CACHE" else str(workdir / "m") if a == "MIRROR" else a
            for a in argv]
    code, out, err = run(capsys, *argv)
    what = "SOURCE" if argv[0] == "upload" and argv[1].strip() == "" else "TARGET"
    assert code == 2 and f"error: {what} is empty" in err and "variable unset" in err
    assert "scanning" not in out + err and files_below(workdir) == ["zz"]


# --- 2. schemes that do not exist, and URLs missing a character -----------------------------

@pytest.mark.parametrize("target,message,hint", [
    ("htps://x/y", "TARGET 'htps://x/y': unsupported URL scheme htps://",
     "did you mean https://?"),
    ("S4://bucket/x", "unsupported URL scheme S4://", "did you mean s3://?"),
    ("webdav://host/x", "unsupported URL scheme webdav://", "did you mean http://?"),
    ("gopher://host/x", "unsupported URL scheme gopher://", "supported: a directory, file://"),
    ("s3//bucket/x", "TARGET 's3//bucket/x' is not a valid URL: ':' is missing after s3",
     "write s3://bucket/x"),
    ("https//host/x", "is not a valid URL: ':' is missing after https", "https://host/x"),
    ("s3:/bucket/x", "TARGET 's3:/bucket/x' is not a valid URL: expected s3://", "./s3:/"),
])
def test_unknown_and_malformed_urls_exit_2_and_create_nothing(
        workdir: Path, oe_cache_a: Path, capsys: pytest.CaptureFixture[str],
        target: str, message: str, hint: str) -> None:
    code, out, err = run(capsys, "upload", str(oe_cache_a), target)
    assert code == 2 and message in err and hint in err, err
    assert out == "" and files_below(workdir) == ["zz"]


def test_a_one_slash_file_url_is_valid(tmp_path: Path, oe_cache_a: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "upload", "-q", str(oe_cache_a), f"file:{tmp_path}/m1")
    assert code == 0, err
    assert len(list((tmp_path / "m1").rglob("sstate:*"))) == 93
    code, out, _ = run(capsys, "info", f"file:{tmp_path}/m1")
    assert code == 0 and "\n93 files, " in out


def test_a_path_with_a_colon_is_still_a_directory(workdir: Path, oe_cache_a: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "upload", "-q", str(oe_cache_a), "backup:2024")
    assert code == 0, err
    assert (workdir / "backup:2024").is_dir()


# --- 3. a source that is not a cache; a target that is new ----------------------------------

def test_a_source_one_level_too_high_names_the_caches_and_stops(
        workdir: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "upload", str(data_dir / "oe-wrynose"), "mirror")
    assert code == 2
    assert "is not an sstate cache: no sstate files at its top, but 2 caches below it:" \
        " cache-a/, cache-b/" in err
    assert f"e.g. {data_dir / 'oe-wrynose' / 'cache-a'}" in err
    assert files_below(workdir) == ["zz"]  # the mirror was not even created
    for argv in (["touch", str(data_dir / "oe-wrynose"), str(data_dir / "oe-wrynose")],
                 ["analyze", str(data_dir / "oe-wrynose"), str(data_dir / "oe-wrynose")]):
        code, _, err = run(capsys, *argv)
        assert code == 2 and "2 caches below it" in err


def test_a_source_without_sstate_files_is_reported(workdir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "zz" / "README").write_text("not an sstate file\n")
    code, _, err = run(capsys, "upload", "zz", "mirror")
    assert code == 2 and "SOURCE 'zz' holds no sstate files" in err
    assert not (workdir / "mirror").exists()
    code, _, err = run(capsys, "analyze", "zz", "zz", "--fail-on-miss")
    assert code == 2 and "holds no sstate files" in err


def test_a_new_target_is_said_in_one_line(tmp_path: Path, oe_cache_a: Path, mirror: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "upload", "-q", str(oe_cache_a), str(tmp_path / "new"))
    assert code == 0
    assert err.count("\n") == 1 and "did not exist: created it, a new empty mirror" in err
    code, _, err = run(capsys, "upload", "-q", str(oe_cache_a), str(mirror))
    assert code == 0 and err == ""
    code, _, err = run(capsys, "upload", "--dry-run", str(oe_cache_a), str(tmp_path / "n2"))
    assert code == 0 and "does not exist: an upload would create it" in err
    assert not (tmp_path / "n2").exists()


# --- 4. gates whose selection selects nothing -----------------------------------------------

@pytest.mark.parametrize("selection,named", [
    (["--task", "populate_lic,do_populate_sysroot"], None),
    (["--arch", "x86-64"], "--arch x86-64 selected no task signatures to check"),
    (["--filter", "nosuchpn"], "--filter nosuchpn selected no task signatures"),
])
def test_analyze_gate_fails_when_nothing_is_checked(
        oe_cache_a: Path, mirror: Path, capsys: pytest.CaptureFixture[str],
        selection: List[str], named: str) -> None:
    code, out, err = run(capsys, "analyze", str(oe_cache_a), str(mirror), *selection,
                         "--fail-on-miss")
    if named is None:  # a comma list, as lint takes it: both tasks are checked
        assert code == 0, err
        assert "tasks checked: " in out and "0 tasks checked" not in out
        return
    assert code == 1 and f"warning: {named}" in err
    code, _, err = run(capsys, "analyze", str(oe_cache_a), str(mirror), *selection)
    assert code == 0 and named in err  # not used as a gate: a warning only


def test_analyze_task_list_checks_each_task(oe_cache_a: Path, mirror: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--json", "analyze", str(oe_cache_a), str(mirror),
                       "--task", "populate_lic,do_populate_sysroot")
    tasks = {t["task"] for t in json.loads(out)["tasks"]}
    assert code == 0 and tasks == {"do_populate_lic", "do_populate_sysroot"}


def test_verify_gate_fails_when_the_filter_selects_nothing(
        mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "verify", str(mirror), "--filter", "nosuchpn")
    assert code == 1 and "warning: --filter nosuchpn selected no artifacts to verify" in err
    assert run(capsys, "verify", str(mirror), "--filter", "zeta")[0] == 0


def test_lint_stamps_without_stamps_fails(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tmp").mkdir()
    code, _, err = run(capsys, "lint", "--lint-stamps", str(tmp_path / "tmp"),
                       "--build-dir", str(tmp_path))
    assert code == 1 and "selected no signature files" not in err
    assert "no signature files in" in err and "tmp/stamps" in err


def test_filters_that_select_nothing_are_named_where_no_gate(
        mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "clean", str(mirror), "--max-age", "1d", "--filter", "zzz",
                       "--dry-run")
    assert code == 0 and "warning: --filter zzz selected no artifacts in" in err
    code, _, err = run(capsys, "info", str(mirror), "--arch", "nosuch")
    assert code == 0 and "warning: --arch nosuch selected no artifacts in" in err


# --- 5. --json: one document on stdout, whatever happens -------------------------------------

@pytest.mark.parametrize("argv,code,message", [
    (["info", "/nonexistent/mirror"], 3, "does not exist"),
    (["info", "/tmp", "--top", "many"], 2, "argument --top: invalid int value: 'many'"),
    (["info", "/tmp", "--top", "-1"], 2, "--top must not be negative"),
    (["clean", "/tmp"], 2, "clean needs a rule"),
    (["upload", "a"], 2, "the following arguments are required: TARGET"),
    (["info", "htps://host/x"], 2, "unsupported URL scheme htps://"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
])
def test_json_reports_errors_as_one_document(capsys: pytest.CaptureFixture[str],
                                             argv: List[str], code: int,
                                             message: str) -> None:
    rc, out, err = run(capsys, "--json", *argv)
    doc = json.loads(out)  # exactly one document
    assert rc == code and doc["exit_code"] == code
    assert message in doc["error"]["message"] and message in err
    assert set(doc["error"]) == {"message", "hint"}


def test_json_after_the_command_and_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "info", "s3//bucket", "--json")
    doc = json.loads(out)
    assert rc == 2 and doc["command"] == "info" and doc["error"]["hint"].startswith("write s3://")


def test_json_of_a_command_that_failed_without_its_report(
        mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "--json", "verify", str(mirror), "--filter", "nosuch")
    doc = json.loads(out)
    assert rc == 1 and doc["command"] == "verify" and doc["groups"] == 0


# --- 6. a bad --filter is found before the mirror is contacted -------------------------------

@pytest.mark.parametrize("command", ["info", "verify", "clean", "lint"])
def test_bad_filter_is_reported_before_the_mirror_is_contacted(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    # port 9 on 127.0.0.1 (discard) refuses: a contacted mirror would say "connection"
    code, _, err = run(capsys, command, "http://127.0.0.1:9/sstate", "--filter", "zlib(",
                       "--retries", "0", "--max-age", "1d") if command == "clean" else run(
        capsys, command, "http://127.0.0.1:9/sstate", "--filter", "zlib(", "--retries", "0")
    assert code == 2 and "--filter 'zlib(' is not a valid regular expression" in err
    assert "connect" not in err.lower()


# --- 9. isar-sstate's command lines ---------------------------------------------------------

def _backdate(root: Path, days: float) -> None:
    when = os.path.getmtime(root) - days * 86400
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (when, when))


def test_isar_ci_upload_with_a_negative_filter(tmp_path: Path, oe_cache_a: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "upload", "--filter", "^(?!zeta)", str(oe_cache_a),
                       str(tmp_path / "m"))
    assert code == 0, err
    uploaded = [p.name for p in (tmp_path / "m").rglob("sstate:*")]
    assert uploaded and not any(n.startswith("sstate:zeta:") for n in uploaded)
    assert any(n.startswith("sstate:epsilon:") for n in uploaded)


def test_isar_ci_manual_clean_with_max_age_0d(mirror: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    _backdate(mirror, 1)
    code, out, err = run(capsys, "clean", "--max-age", "0d", str(mirror))
    assert code == 0, err
    assert "93 files deleted" in out
    assert not list(mirror.rglob("sstate:*"))


def test_isar_max_age_without_unit_is_days_with_a_warning(
        mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _backdate(mirror, 2)
    code, out, err = run(capsys, "clean", str(mirror), "--max-age", "3", "--dry-run")
    assert code == 0
    assert "warning: --max-age 3 has no unit: taken as 3d (days)" in err
    assert "would delete 0 files" in out
    code, out, _ = run(capsys, "clean", str(mirror), "--max-age", "1", "--dry-run")
    assert code == 0 and "would delete 93 files" in out


def test_isar_max_sig_age_below_max_age_is_raised(mirror: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "clean", str(mirror), "--max-age", "7d", "--max-sig-age", "1d",
                       "--dry-run")
    assert code == 0
    assert "warning: --max-sig-age 1d is smaller than --max-age 7d: raised to 7d" in err


def test_isar_clean_without_a_rule_gives_the_exact_replacement(
        mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = files_below(mirror)
    code, _, err = run(capsys, "clean", str(mirror))
    assert code == 2 and "clean needs a rule" in err
    assert f"hint: to do what isar-sstate did: sstate-mirror clean {mirror} --max-age 1d" in err
    assert files_below(mirror) == before


@pytest.fixture
def isar_cache(tmp_path: Path) -> Path:
    root = tmp_path / "sstate-cache"
    write_siginfo(root / sstate_path("hello", "do_dpkg_build"), planted(
        task="do_dpkg_build", variables={"MY_WORKDIR": "/build/tmp/work/hello/1.0"}))
    write_siginfo(root / sstate_path("image", "do_image_wic"), planted(
        task="do_image_wic", variables={"WKS_FULL_PATH": "/work/isar/wic/x.wks"}))
    return root


def test_isar_lint_without_directories_uses_isar_defaults(
        isar_cache: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUILDDIR", raising=False)
    code, out, err = run(capsys, "lint", str(isar_cache))
    assert code == 1
    assert "looking for /build/tmp and /work (isar-sstate's defaults" in err
    assert "MY_WORKDIR contains /build/tmp" in out
    assert "WKS_FULL_PATH" not in out  # image_wic is excluded by default, as in isar-sstate
    code, out, _ = run(capsys, "lint", str(isar_cache), "--excluded-tasks", "")
    assert code == 1 and "WKS_FULL_PATH contains /work" in out


def test_isar_lint_exit_code_0_and_its_ci_command_line(
        isar_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "lint", str(isar_cache), "--exit-code", "0")
    assert code == 0 and "--exit-code 0: findings do not fail this run" in err
    # the command line of isar's own CI (testsuite/cibase.py)
    code, out, _ = run(capsys, "lint", str(isar_cache), "--build-dir", "/build",
                       "--sources-dir", "/work/isar")
    assert code == 1 and "MY_WORKDIR contains /build/" in out



# --- 11. wording -----------------------------------------------------------------------------

def test_counts_are_worded_for_one_and_for_many(tmp_path: Path, oe_cache_a: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    one = tmp_path / "one"
    siginfo = next(oe_cache_a.rglob("sstate:zeta:*_populate_lic.tar.zst.siginfo"))
    hh = one / siginfo.parent.parent.name / siginfo.parent.name
    hh.mkdir(parents=True)
    (hh / siginfo.name).write_bytes(siginfo.read_bytes())
    (hh / ".sstate-mirror-0000000a.tmp").write_bytes(b"x")
    code, out, _ = run(capsys, "upload", str(one), str(tmp_path / "m"))
    assert code == 0
    assert "upload: 1 file (" in out and "1 skipped (1 temporary or partial file)" in out
    (hh / ".sstate-mirror-0000000b.tmp").write_bytes(b"x")
    (hh / "README").write_bytes(b"x")
    (hh / "index.html").write_bytes(b"x")
    code, out, _ = run(capsys, "upload", str(one), str(tmp_path / "m"))
    assert "4 skipped (2 not sstate files, 2 temporary or partial files)" in out
    code, out, _ = run(capsys, "info", str(tmp_path / "m"))
    assert "\n1 file, " in out and "\n1 recipe\n" in out


def test_info_explains_the_none_arch(mirror: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "info", str(mirror))
    assert code == 0 and "  (none)  " in out
    assert "(none): no SSTATE_PKGARCH in the name: the arch-independent tasks" in out
    # the tool's own lines fit 90 columns; the mirror's path is the test run's (longer under
    # a worker's temporary directory), so it stands as one short word here
    assert max(len(line) for line in out.replace(str(mirror), "M").splitlines()) <= 90


def test_clean_says_why_max_versions_deleted_nothing(
        mirror: Path, oe_cache_b: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "upload", "-q", str(oe_cache_b), str(mirror))[0] == 0
    code, out, err = run(capsys, "clean", str(mirror), "--max-versions", "1", "--dry-run")
    assert code == 0 and "would delete 0 files" in out
    assert "warning: 9 hashes beyond --max-versions 1 were used within --min-age 1h and are" \
        " kept" in err
    code, out, err = run(capsys, "clean", str(mirror), "--max-versions", "1", "--min-age",
                         "0s", "--dry-run")
    assert "would delete 0 files" not in out and "--min-age" not in err


def test_readme_synopsis_lists_every_option() -> None:
    import argparse
    import re

    from sstate_mirror.cli import build_parser

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Commands", 1)[1].split("```", 2)[1]
    connection = block.split("\n\n", 1)[1]  # the HASHSERVE and CONNECTION legends
    common = {"-h", "--help", "-v", "--verbose", "-q", "--quiet", "--json", "--color"}
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        lines = re.findall(rf"^sstate-mirror {name} .*(?:\n {{20,}}.*)*", block, re.M)
        assert lines, name
        text = "\n".join(lines)
        for action in command._actions:
            if not action.option_strings or set(action.option_strings) & common:
                continue
            assert any(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text + connection)
                       for o in action.option_strings), (name, action.option_strings)
