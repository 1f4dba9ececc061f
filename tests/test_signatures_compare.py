"""``compare_signatures`` reproduces bitbake-diffsigs, section by section."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import pytest

from signature_helpers import (
    OE,
    OE_EXPECTED,
    base_sig,
    index_pairs,
    pair_files,
    pair_id,
    pairs_with,
    zstd_json,
)
from sstate_mirror.signatures import Signature, read_signature
from sstate_mirror.signatures.compare import compare_sigfiles, compare_signatures, diff_text
from sstate_mirror.signatures.finder import DirectoryFinder, Recursor
from sstate_mirror.signatures.textdiff import list_diff, sequence_diff, word_diff

BOTH = DirectoryFinder([OE / "cache-a", OE / "cache-b"])
NORECURSE = list(pairs_with("diffsigs-norecurse"))
RECURSE = list(pairs_with("diffsigs"))


def _ids(cases: List[Tuple[Dict[str, Any], Any]]) -> List[str]:
    return [pair_id(pair) for pair, _ in cases]


def test_reference_outputs_are_there() -> None:
    assert len(NORECURSE) >= 50 and len(RECURSE) >= 50


@pytest.mark.parametrize("case", NORECURSE, ids=_ids(NORECURSE))
def test_norecurse_is_byte_identical(case: Tuple[Dict[str, Any], Any]) -> None:
    pair, expected = case
    a, b = pair_files(pair)
    assert diff_text(compare_sigfiles(a, b)) == expected.read_text()


@pytest.mark.parametrize("case", RECURSE, ids=_ids(RECURSE))
def test_recursive_diffsigs_is_byte_identical(case: Tuple[Dict[str, Any], Any]) -> None:
    pair, expected = case
    a, b = pair_files(pair)
    assert diff_text(compare_sigfiles(a, b, Recursor(BOTH))) == expected.read_text()


@pytest.mark.parametrize("pair", index_pairs(), ids=pair_id)
def test_every_pair_explains_exactly_the_changed_hashes(pair: Dict[str, Any]) -> None:
    """Including the pairs whose reference output is kept aside: a diff is empty exactly
    when the hashes are equal, and with both caches searchable every chain reaches a cause."""
    a, b = pair_files(pair)
    for first, second in ((a, b), (b, a)):
        lines = compare_sigfiles(first, second, Recursor(BOTH))
        assert bool(lines) == pair["changed"]
        assert not any("Unable to find" in line for line in lines)
        if lines and lines[0].startswith("Hash for task dependency"):
            assert not lines[-1].lstrip().startswith("Hash for task dependency")


def _pair(pn: str, task: str) -> Dict[str, Any]:
    return next(p for p in index_pairs() if p["pn"] == pn and p["task"] == task)


def test_color_always_is_byte_identical() -> None:
    a, b = pair_files(_pair("gamma-native", "do_populate_sysroot"))
    expected = OE_EXPECTED / "extra" / "color.gamma-native.do_populate_sysroot.txt"
    lines = compare_sigfiles(a, b, Recursor(BOTH, color=True), color=True)
    assert diff_text(lines) == expected.read_text()


def test_missing_dependency_is_reported_unindented() -> None:
    a, b = pair_files(_pair("alpha-native", "do_populate_sysroot"))
    expected = OE_EXPECTED / "extra" / "missing-dep.alpha-native.do_populate_sysroot.txt"
    only_a = DirectoryFinder([OE / "cache-a"])
    assert diff_text(compare_sigfiles(a, b, Recursor(only_a))) == expected.read_text()


# --- sections the reference data does not exercise ----------------------------------------


def sig(**overrides: Any) -> Signature:
    return read_signature(zstd_json(base_sig(**overrides)))


def test_identical_signatures_compare_empty() -> None:
    assert compare_signatures(sig(), sig()) == []
    assert diff_text([]) == ""


def test_ignore_lists_changed() -> None:
    lines = compare_signatures(sig(), sig(basehash_ignore_vars={"PATH", "TMPDIR"},
                                          taskhash_ignore_tasks="^foo$"))
    assert lines == [
        "basehash_ignore_vars changed from 'frozenset({'HOME', 'PATH'})' to "
        "'frozenset({'PATH', 'TMPDIR'})'",
        "changed items: frozenset({'HOME', 'TMPDIR'})",
        "taskhash_ignore_tasks changed from 'None' to '^foo$'",
    ]


def test_task_and_variable_dependencies_changed() -> None:
    old = sig(gendeps={"CC": {"X"}, "GONE": set(), "IGNORED": {"1"}, "SAME": {"S"}},
              basehash_ignore_vars={"IGNORED"})
    new = sig(taskdeps={"CC", "NEW"}, basehash="f" * 64,
              gendeps={"CC": {"Y"}, "NEW": set(), "IGNORED": {"2"}, "SAME": {"S"}},
              basehash_ignore_vars={"IGNORED"})
    assert compare_signatures(old, new) == [
        "Task dependencies changed from:\n['CC', 'do_compile[func]']\nto:\n['CC', 'NEW']",
        f"basehash changed from {'0' * 64} to {'f' * 64}",
        "List of dependencies for variable CC changed from 'frozenset({'X'})' to "
        "'frozenset({'Y'})'",
        "changed items: frozenset({'X', 'Y'})",
        "Dependency on variable NEW was added",
        "Dependency on Variable GONE was removed",
    ]


def test_variable_value_changes_three_ways() -> None:
    old = sig(varvals={"do_compile": "a\nb\nc\n", "CC": "gcc -O2", "PR": "r0", "WS": "a b",
                       "NUM": 1})
    new = sig(varvals={"do_compile": "a\nB\nc\n", "CC": "gcc -O3", "PR": "r1", "WS": "a  b",
                       "NUM": 2})
    assert compare_signatures(old, new) == [
        "Variable CC value changed:\n\"gcc [--O2-] {+-O3+}\"",
        "Variable NUM value changed from '1' to '2'",
        "Variable PR value changed from 'r0' to 'r1'",
        "Variable WS value changed:\n\"a {++} b\" (whitespace changed)",
        "Variable do_compile value changed:\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c",
    ]


def test_multiline_value_diff_in_colour() -> None:
    old = sig(varvals={"do_compile": "a\nb\n"})
    new = sig(varvals={"do_compile": "a\nc\n"})
    (line,) = compare_signatures(old, new, color=True)
    assert line == ("\033[1mVariable do_compile value changed:\033[0m\n@@ -1,2 +1,2 @@\n a\n"
                    "\033[0;31m-b\033[0m\n\033[0;32m+c\033[0m\033[0m")


def test_file_checksums_changed_added_removed() -> None:
    old = sig(file_checksum_values=[["a.patch", "1"], ["gone.patch", "2"], ["dup", "3"]])
    new = sig(file_checksum_values=[["a.patch", "9"], ["new.patch", "4"], ["dup", "3"],
                                    ["dup", "3"]])
    assert compare_signatures(old, new) == [
        "Checksum for file a.patch changed from 1 to 9",
        "Dependency on checksum of file new.patch was added",
        "Dependency on checksum of file dup was added",
        "Dependency on checksum of file gone.patch was removed",
    ]


def test_renamed_dependency_with_same_hash_is_not_reported() -> None:
    old = sig(runtaskdeps=["old:do_x"], runtaskhashes={"old:do_x": "c" * 64})
    new = sig(runtaskdeps=["new:do_x"], runtaskhashes={"new:do_x": "c" * 64})
    assert compare_signatures(old, new) == []


def test_removed_dependency_and_taint() -> None:
    old = sig(runtaskdeps=["a:do_x", "b:do_y"],
              runtaskhashes={"a:do_x": "1" * 64, "b:do_y": "2" * 64}, taint="nostamp:u1")
    new = sig(runtaskdeps=["a:do_x"], runtaskhashes={"a:do_x": "1" * 64}, taint="forced")
    assert compare_signatures(old, new) == [
        "runtaskdeps changed:\n['a:do_x', -b:do_y]",
        "Number of task dependencies changed",
        f"Dependency on task b:do_y was removed with hash {'2' * 64}",
        "Taint (by forced/invalidated task) changed from nostamp(uuid4):u1 to forced",
    ]


def _chain(hashes: Dict[str, Tuple[str, str]]) -> Tuple[Signature, Signature]:
    deps = sorted(hashes)
    old = sig(runtaskdeps=deps, runtaskhashes={d: h[0] for d, h in hashes.items()})
    new = sig(runtaskdeps=deps, runtaskhashes={d: h[1] for d, h in hashes.items()})
    return old, new


def test_recursion_stops_at_the_first_dependency_that_explains() -> None:
    old, new = _chain({"a:do_x": ("1" * 64, "2" * 64), "b:do_y": ("3" * 64, "4" * 64),
                       "c:do_z": ("5" * 64, "6" * 64)})
    asked: List[str] = []

    def recurse(key: str, h1: str, h2: str) -> List[str]:
        asked.append(key)
        return [] if key == "a:do_x" else [f"    because of {key}"]

    lines = compare_signatures(old, new, recurse)
    assert asked == ["a:do_x", "b:do_y"]
    assert lines == [f"Hash for task dependency b:do_y changed from {'3' * 64} to {'4' * 64}",
                     "    because of b:do_y"]


class _DictFinder:
    def __init__(self, sigs: Dict[Tuple[str, str], Signature]) -> None:
        self.sigs = sigs
        self.calls = 0

    def find(self, key: str, hash: str) -> Optional[Signature]:
        self.calls += 1
        return self.sigs.get((key, hash))


def test_recursor_survives_a_dependency_cycle() -> None:
    h1, h2 = "1" * 64, "2" * 64
    old = sig(runtaskdeps=["me:do_x"], runtaskhashes={"me:do_x": h1})
    new = sig(runtaskdeps=["me:do_x"], runtaskhashes={"me:do_x": h2})
    finder = _DictFinder({("me:do_x", h1): old, ("me:do_x", h2): new})
    lines = compare_signatures(old, new, Recursor(finder))
    assert lines[0].startswith("Hash for task dependency me:do_x changed")


def test_recursor_reports_which_side_is_missing() -> None:
    h1, h2 = "1" * 64, "2" * 64
    finder = _DictFinder({("x:do_y", h2): sig()})
    assert Recursor(finder)("x:do_y", h1, h2) == [
        f"Unable to find matching sigdata for x:do_y with hash {h1}"]
    assert Recursor(_DictFinder({}))("x:do_y", h1, h2) == [
        f"Unable to find matching sigdata for x:do_y with hashes {h1} or {h2}"]


def test_recursor_remembers_answers() -> None:
    h1, h2 = "1" * 64, "2" * 64
    finder = _DictFinder({("x:do_y", h1): sig(), ("x:do_y", h2): sig(varvals={"CC": "x"})})
    recursor = Recursor(finder)
    first = recursor("x:do_y", h1, h2)
    assert first == ["    Variable CC value changed from 'gcc' to 'x'"]
    assert recursor("x:do_y", h1, h2) == first
    assert finder.calls == 2


# --- the inline diffs ---------------------------------------------------------------------


def test_sequence_diff_prefers_the_longest_then_earliest_run() -> None:
    assert sequence_diff(list("abcxyzdef"), list("abxyzqdef")) == [
        ("=", ["a", "b"]), ("-", ["c"]), ("=", ["x", "y", "z"]), ("+", ["q"]),
        ("=", ["d", "e", "f"])]
    assert sequence_diff(["a"], ["b"]) == [("-", ["a"]), ("+", ["b"])]
    assert sequence_diff([], []) == []
    # equally long runs: the first one met while scanning the new sequence wins
    assert sequence_diff(list("ab"), list("ba")) == [("-", ["a"]), ("=", ["b"]), ("+", ["a"])]


def test_sequence_diff_handles_long_inputs_without_recursion_limit() -> None:
    old = [str(i) for i in range(5000)]
    new = [x if i % 2 else x + "!" for i, x in enumerate(old)]
    pieces = sequence_diff(old, new)
    assert sum(len(p[1]) for p in pieces if p[0] != "+") == len(old)


def test_word_and_list_diff_colours() -> None:
    colors = {"title": "T", "default": "D", "add": "A", "remove": "R"}
    assert word_diff("x y", "x z", colors) == '"x R[-y-]D A{+z+}D"'
    assert list_diff(["a", "b", "c"], ["a", "c", "d"], colors) == "['a', R-bD, 'c', A+dD]"
    assert list_diff(["a", "b"], ["a", "b", "c"]) == "['a b', +c]"


def test_sequence_diff_turns_coarse_when_the_budget_is_spent() -> None:
    old, new = ["x"] * 3000 + ["a"], ["x"] * 3000 + ["b"]  # 9 million steps
    assert sequence_diff(old, new, budget=1000) == [("-", old), ("+", new)]
    assert sequence_diff(old, new)[0] == ("=", ["x"] * 3000)


def test_recursor_stops_at_max_depth() -> None:
    """A crafted cache with an endless chain of distinct hashes ends in a clear line."""

    class Endless:
        def find(self, key: str, hash: str) -> Optional[Signature]:
            n = int(hash[:8], 16)
            nxt = f"{n + 1:08x}" + hash[8:]
            return sig(runtaskdeps=["x:do_y"], runtaskhashes={"x:do_y": nxt})

    h1, h2 = "0" * 8 + "a" * 56, "0" * 8 + "b" * 56
    lines = Recursor(Endless(), max_depth=50)("x:do_y", h1, h2)
    assert lines[-1].strip() == (
        "Not following x:do_y further: dependency chain deeper than 50 levels")
    assert lines[-1].startswith("    " * 50)
