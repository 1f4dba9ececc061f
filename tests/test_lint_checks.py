"""What lint looks at in one signature, and how findings are grouped (pure functions)."""

from __future__ import annotations

from typing import Any, List, Tuple

from signature_helpers import base_sig
from sstate_mirror.commands.lint import (
    ABSOLUTE,
    BUILD_DIR,
    FILE_CHECKSUMS,
    SOURCES_DIR,
    TAINT,
    FileResult,
    LintOptions,
    check_signature,
    dirs_from,
    group_findings,
    hashed_names,
    parse_task_list,
    task_base,
)
from sstate_mirror.signatures.model import Encoding, Signature
from sstate_mirror.signatures.reader import signature_from_dict

OPTS = LintOptions(dirs=tuple(dirs_from(["/home/u/build"], ["/home/u/layers"], realpath=False)))


def sig(**overrides: Any) -> Signature:
    return signature_from_dict(base_sig(**overrides), Encoding.ZSTD_JSON, "test.siginfo")


def found(s: Signature, options: LintOptions = OPTS) -> List[Tuple[str, str, str]]:
    return [(o.variable, o.kind, o.found) for o in check_signature(s, options)]


def test_clean_signature_has_no_findings() -> None:
    assert found(sig()) == []


def test_task_function_body_is_checked() -> None:
    s = sig(varvals={"do_compile": "    cp /home/u/build/conf/x .\n", "CC": "gcc",
                     "do_compile[func]": 1})
    assert found(s) == [("do_compile", BUILD_DIR, "/home/u/build/conf/x")]
    occ = check_signature(s, OPTS)[0]
    assert occ.context == "cp /home/u/build/conf/x ."
    assert occ.path == "/home/u/build/..."


def test_every_dependency_of_any_case_and_any_shape_is_checked() -> None:
    s = sig(taskdeps={"CC", "my_func", "EXTRA_OECONF", "do_compile[func]"},
            gendeps={"CC": set(), "my_func": set(), "EXTRA_OECONF": set(),
                     "do_compile[func]": set()},
            varvals={"do_compile": "my_func\n", "CC": "gcc", "do_compile[func]": 1,
                     "my_func": "    echo hi > /home/u/layers/meta-x/out\n",
                     "EXTRA_OECONF": "--with-foo --sysroot=/home/u/build/tmp/sysroots/x"})
    assert sorted(found(s)) == [
        ("EXTRA_OECONF", BUILD_DIR, "/home/u/build/tmp/sysroots/x"),
        ("my_func", SOURCES_DIR, "/home/u/layers/meta-x/out"),
    ]


def test_ignored_and_unhashed_variables_are_not_checked() -> None:
    # bitbake ignores TOPDIR (basehash_ignore_vars); STRAY is not a dependency of the task
    s = sig(basehash_ignore_vars={"TOPDIR", "PATH"},
            taskdeps={"CC", "TOPDIR", "do_compile[func]"},
            varvals={"do_compile": "true\n", "CC": "gcc", "do_compile[func]": 1,
                     "TOPDIR": "/home/u/build", "STRAY": "/home/u/build/x"})
    assert found(s) == []
    assert "TOPDIR" not in hashed_names(s)
    assert "STRAY" not in hashed_names(s)


def test_src_uri_entries_are_checked() -> None:
    s = sig(taskdeps={"SRC_URI", "do_compile[func]", "CC"},
            varvals={"do_compile": "true\n", "CC": "gcc", "do_compile[func]": 1,
                     "SRC_URI": "git://example.com/x.git;branch=main file://fix.patch "
                                "file:///home/u/layers/meta-x/files/local.patch"})
    assert found(s) == [("SRC_URI", SOURCES_DIR, "/home/u/layers/meta-x/files/local.patch")]


def test_file_checksum_names_and_taint_are_checked() -> None:
    s = sig(file_checksum_values=[["/home/u/layers/meta-x/files/a.cfg", "0" * 64],
                                  ["fix.patch", "1" * 64]],
            taint="nostamp:/home/u/build/x")
    assert found(s) == [(FILE_CHECKSUMS, SOURCES_DIR, "/home/u/layers/meta-x/files/a.cfg"),
                        (TAINT, BUILD_DIR, "/home/u/build/x")]


def test_pedantic_reports_other_absolute_paths() -> None:
    s = sig(varvals={"do_compile": "  /opt/tc/bin/gcc -o /usr/bin/x\n", "CC": "gcc",
                     "do_compile[func]": 1})
    assert found(s) == []
    pedantic = LintOptions(dirs=OPTS.dirs, pedantic=True)
    assert found(s, pedantic) == [("do_compile", ABSOLUTE, "/opt/tc/bin/gcc")]


def test_task_names() -> None:
    assert task_base("do_populate_sysroot_setscene") == "populate_sysroot"
    assert task_base("fetch") == "fetch"
    assert parse_task_list("do_fetch, unpack,,do_patch ") == {"fetch", "unpack", "patch"}
    assert parse_task_list(None) == frozenset()


def _result(pn: str, task: str, variable: str, path: str) -> FileResult:
    s = sig(taskdeps={variable, "do_compile[func]"}, gendeps={variable: set()},
            varvals={"do_compile": "true\n", "do_compile[func]": 1, variable: path})
    return FileResult(f"{pn}.{task}.siginfo", pn, task, tuple(check_signature(s, OPTS)))


def test_one_class_variable_in_many_recipes_is_one_finding() -> None:
    results = [_result(f"pn{i}", "do_configure", "CLASS_VAR", f"/home/u/build/tmp/work/pn{i}")
               for i in range(50)]
    results.append(_result("pn0", "do_compile", "CLASS_VAR", "/home/u/build/tmp/work/pn0"))
    results.append(_result("other", "do_install", "OTHER", "/home/u/layers/x"))
    findings = group_findings(results)
    assert [(f.variable, f.kind, f.path, f.task_count, f.recipe_count) for f in findings] == [
        ("CLASS_VAR", BUILD_DIR, "/home/u/build/...", 51, 50),
        ("OTHER", SOURCES_DIR, "/home/u/layers/...", 1, 1),
    ]
    assert findings[0].tasks[0].found.startswith("/home/u/build/tmp/work/pn")


def test_a_path_twice_in_one_value_counts_once() -> None:
    results = [_result("a", "do_x", "V", "/home/u/build/a /home/u/build/b")]
    [finding] = group_findings(results)
    assert len(finding.tasks) == 1


def test_a_crafted_value_with_millions_of_paths_costs_little() -> None:
    import time

    value = 'x + "/z" ' * 500_000 + "/home/u/build/x /opt/y " * 500_000
    s = sig(varvals={"do_compile": value, "CC": "gcc", "do_compile[func]": 1})
    started = time.monotonic()
    occ = check_signature(s, LintOptions(dirs=OPTS.dirs, pedantic=True))
    assert time.monotonic() - started < 10
    assert [(o.kind, o.path) for o in occ] == [("build-dir", "/home/u/build/..."),
                                                ("absolute", "/opt/y")]
