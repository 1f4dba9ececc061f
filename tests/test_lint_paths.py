"""Finding machine-specific paths in one string: boundaries, kinds, pedantic, context."""

from __future__ import annotations

from typing import List, Tuple

import pytest

from sstate_mirror.commands.lint.paths import (
    ABSOLUTE,
    BUILD_DIR,
    SOURCES_DIR,
    Dir,
    context_of,
    dirs_from,
    find_paths,
    is_system_path,
)

BUILD = "/home/u/build"
SOURCES = "/home/u/poky"
DIRS = [Dir(BUILD_DIR, BUILD), Dir(SOURCES_DIR, SOURCES)]


def hits(text: str, pedantic: bool = False) -> List[Tuple[str, str]]:
    return [(h.kind, h.path) for h in find_paths(text, DIRS, pedantic)]


@pytest.mark.parametrize(("text", "expected"), [
    ("/home/u/build", [(BUILD_DIR, "/home/u/build")]),
    ("/home/u/build/tmp/work/x", [(BUILD_DIR, "/home/u/build/tmp/work/x")]),
    ("cd /home/u/build/tmp && make", [(BUILD_DIR, "/home/u/build/tmp")]),
    ('X="/home/u/build/conf"', [(BUILD_DIR, "/home/u/build/conf")]),
    ("-I/home/u/build/include", [(BUILD_DIR, "/home/u/build/include")]),
    ("--sysroot=/home/u/build/sysroot", [(BUILD_DIR, "/home/u/build/sysroot")]),
    ("PATH=/usr/bin:/home/u/build/bin", [(BUILD_DIR, "/home/u/build/bin")]),
    ("file:///home/u/poky/meta/files/a.patch",
     [(SOURCES_DIR, "/home/u/poky/meta/files/a.patch")]),
    ("${D}/home/u/build/x", [(BUILD_DIR, "/home/u/build/x")]),
    # a sibling with a longer name is not the directory
    ("/home/u/build2/x /home/u/build.old", []),
    # the directory's text inside another path or a URL is not the directory
    ("/opt/home/u/build/x", []),
    ("https://example.com/home/u/build/x", []),
    ("${TOPDIR}/tmp ${S}/x relative/home/u/build", []),
    # nested directories: the most specific one wins
    ("/home/u/poky/build/tmp /home/u/poky/meta",
     [(SOURCES_DIR, "/home/u/poky/build/tmp"), (SOURCES_DIR, "/home/u/poky/meta")]),
])
def test_directories(text: str, expected: List[Tuple[str, str]]) -> None:
    assert hits(text) == expected


def test_build_dir_inside_sources_dir_is_the_build_dir() -> None:
    dirs = [Dir(SOURCES_DIR, "/src/poky"), Dir(BUILD_DIR, "/src/poky/build")]
    found = find_paths("/src/poky/build/tmp /src/poky/meta", dirs, False)
    assert [(h.kind, h.root, h.path) for h in found] == [
        (BUILD_DIR, "/src/poky/build", "/src/poky/build/tmp"),
        (SOURCES_DIR, "/src/poky", "/src/poky/meta"),
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("/opt/toolchain/bin/gcc", ["/opt/toolchain/bin/gcc"]),
    ("--prefix=/opt/x -L/mnt/lib", ["/opt/x", "/mnt/lib"]),
    ("file:///srv2/patches/a.patch file://relative.patch", ["/srv2/patches/a.patch"]),
    ("/home/u/build/x /work/x", ["/work/x"]),  # the build dir is reported as such, not twice
    # well-known system paths are the same on every machine
    ("/usr/bin/env /bin/sh /etc/passwd /dev/null /tmp/x /var/lib /lib64 /proc/self", []),
    # not absolute paths
    ("${S}/x $(pwd)/y a/b ./c **/CMakeLists.txt", []),
    ("d.getVar('COREBASE') + \"/LICENSE\" \"${D}\"/etc", []),
    ("re.match(r'/.+/archive/.+', url) https://host/pipermail/x", []),
])
def test_pedantic(text: str, expected: List[str]) -> None:
    assert [p for k, p in hits(text, pedantic=True) if k == ABSOLUTE] == expected


def test_pedantic_off_reports_only_directories() -> None:
    assert hits("/opt/toolchain /home/u/build/x") == [(BUILD_DIR, "/home/u/build/x")]


@pytest.mark.parametrize("path", ["/", "/usr", "/usr/local/bin", "/etc/x", "/tmp"])
def test_system_paths(path: str) -> None:
    assert is_system_path(path)


@pytest.mark.parametrize("path", ["/home/x", "/opt/x", "/work", "/build/tmp", "/root/x"])
def test_not_system_paths(path: str) -> None:
    assert not is_system_path(path)


def test_context_is_the_line_holding_the_path() -> None:
    text = "do_install() {\n    install -m 0644 /home/u/build/x ${D}\n}\n"
    start = text.index("/home")
    assert context_of(text, start, start + 15) == "install -m 0644 /home/u/build/x ${D}"


def test_context_is_cut_around_the_path_in_a_long_line() -> None:
    text = "a " * 200 + "/home/u/build/x" + " b" * 200
    start = text.index("/home")
    ctx = context_of(text, start, start + 15, width=60)
    assert "/home/u/build/x" in ctx
    assert ctx.startswith("…") and ctx.endswith("…")
    assert len(ctx) <= 62


def test_dirs_are_normalised(tmp_path: object) -> None:
    dirs = dirs_from(["/home/u/build/", "/home/u/./build//"], ["/src/x/../poky"],
                     realpath=False)
    assert dirs == [Dir(BUILD_DIR, "/home/u/build"), Dir(SOURCES_DIR, "/src/poky")]


def test_huge_values_give_small_results() -> None:
    text = "x" * 1_000_000 + " /home/u/build/" + "a" * 1_000_000 + " " + "y" * 1_000_000
    [hit] = find_paths(text, DIRS, False)
    assert len(hit.path) == 4096
    ctx = context_of(text, hit.start, hit.end)
    assert len(ctx) < 200 and "/home/u/build/" in ctx
