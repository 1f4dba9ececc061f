"""``dump_signature`` reproduces bitbake-dumpsig's output for every reference file."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from signature_helpers import LEGACY, OE, base_sig, dumpsig_cases, zstd_json
from sstate_mirror.signatures import read_signature, read_signature_file
from sstate_mirror.signatures.dump import dump_signature, dump_text
from sstate_mirror.signatures.pyrepr import stable_repr, stable_str

MODERN = dumpsig_cases(OE)
LEGACY_CASES = dumpsig_cases(LEGACY)


def _case_id(case: tuple[Path, Path]) -> str:
    return str(case[1].relative_to(case[1].parents[4]))


def test_every_file_has_a_reference_dump() -> None:
    assert len(MODERN) == len(list((OE / "cache-a").rglob("*.siginfo"))) * 2
    assert len(LEGACY_CASES) == len(list((LEGACY / "cache-a").rglob("*.siginfo")))


@pytest.mark.parametrize("case", MODERN, ids=_case_id)
def test_dumpsig_is_byte_identical(case: tuple[Path, Path]) -> None:
    sigfile, expected = case
    assert dump_text(read_signature_file(sigfile)) == expected.read_text()


def _set_line_value(line: str) -> str | None:
    """The set literal a 1.52 dump line prints (in hash order), or None for other lines."""
    if line.startswith("basewhitelist: "):
        return line[len("basewhitelist: "):]
    if line.startswith("List of dependencies for variable ") and " is " in line:
        value = line.split(" is ", 1)[1]
        if value.startswith("{") or value == "set()":
            return value
    return None


@pytest.mark.parametrize("case", LEGACY_CASES, ids=_case_id)
def test_legacy_dumpsig_matches_with_sets_compared_as_sets(case: tuple[Path, Path]) -> None:
    """bitbake 1.52 printed sets in string-hash order; we print them sorted. Every other line
    is byte-identical, and set lines hold the same set."""
    sigfile, expected = case
    got = dump_text(read_signature_file(sigfile)).split("\n")
    want = expected.read_text().split("\n")
    assert len(got) == len(want)
    for mine, theirs in zip(got, want):
        if mine == theirs:
            continue
        mine_set, their_set = _set_line_value(mine), _set_line_value(theirs)
        assert mine_set is not None and their_set is not None, (mine, theirs)
        assert mine.split(mine_set)[0] == theirs.split(their_set)[0]
        assert ast.literal_eval(mine_set) == ast.literal_eval(their_set)
        assert mine_set == stable_repr(ast.literal_eval(their_set))


def test_stable_repr_shapes() -> None:
    assert stable_repr({"b", "a"}) == "{'a', 'b'}"
    assert stable_repr(frozenset({"b", "a"})) == "frozenset({'a', 'b'})"
    assert stable_repr(set()) == "set()"
    assert stable_repr(frozenset()) == "frozenset()"
    assert stable_repr([("x", None), ("y",)]) == "[('x', None), ('y',)]"
    assert stable_repr({"k": {"v"}}) == "{'k': {'v'}}"
    assert stable_repr({1, "a"}) == "{'a', 1}"
    assert stable_str("text") == "text" and stable_str(None) == "None" and stable_str(1) == "1"


def test_runtime_sections_taint_and_basehash_only() -> None:
    sig = read_signature(zstd_json(base_sig(
        file_checksum_values=[["b.patch", "2"], ["a.patch", None], ["a.patch", "1"]],
        taint="nostamp:1234")))
    lines = dump_signature(sig)
    assert "This task depends on the checksums of files: " \
        "[['a.patch', None], ['a.patch', '1'], ['b.patch', '2']]" in lines
    assert "Tainted (by forced/invalidated task): nostamp(uuid4):1234" in lines
    assert lines[-1].startswith("Computed task hash is ")

    data = base_sig(task=None)
    for key in ("runtaskdeps", "runtaskhashes", "file_checksum_values", "taskhash", "unihash"):
        del data[key]
    lines = dump_signature(read_signature(zstd_json(data)))
    assert not any(line.startswith("Tasks this task depends on") for line in lines)
    assert lines[-2] == "Unable to compute base hash"


def test_taskhash_ignore_tasks_regex_prints_like_bitbake() -> None:
    lines = dump_signature(read_signature(zstd_json(base_sig(taskhash_ignore_tasks="ba"))))
    assert lines[1] == "taskhash_ignore_tasks: ['a', 'b']"
