"""analyze end to end on the real caches: hits, misses, diffs and root causes."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Set, Tuple

import pytest
import zstandard

from signature_helpers import LEGACY, OE, OE_EXPECTED, index_pairs
from sstate_mirror.backends import open_backend
from sstate_mirror.cli import main
from sstate_mirror.commands.analyze import (
    LOCAL,
    MIRROR,
    AnalyzeOptions,
    execute_analysis,
    plan_analysis,
)
from sstate_mirror.commands.listing import list_artifacts
from sstate_mirror.commands.sigstore import SignatureStore
from sstate_mirror.naming import Kind, make_artifact, parse_name
from sstate_mirror.signatures.reader import decode_raw
from sstate_mirror.signatures.safepickle import loads_plain


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def copy_cache(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for d, _dirs, _files in os.walk(dst):
        os.chmod(d, 0o755)
    return dst


@pytest.fixture(scope="module")
def mirror_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror made from cache A with the project's own upload."""
    mirror = tmp_path_factory.mktemp("analyze") / "mirror-a"
    assert main(["upload", "-q", str(OE / "cache-a"), str(mirror)]) == 0
    return mirror


def sstate_pairs() -> List[Dict[str, Any]]:
    """index.json's pairs of cache B that are sstate tasks (an archive exists)."""
    out = []
    for pair in index_pairs():
        archive = OE / "cache-b" / pair["cache-b"][: -len(".siginfo")]
        if archive.exists():
            out.append(pair)
    return out


def analyze_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, Dict[str, Any]]:
    code, out, _err = run(capsys, "analyze", "--json", *argv)
    return code, json.loads(out)


def by_id(data: Dict[str, Any]) -> Dict[Tuple[str, str], Dict[str, Any]]:
    return {(t["pn"], t["task"]): t for t in data["tasks"]}


def causes(data: Dict[str, Any]) -> Dict[Tuple[str, str], Dict[str, Any]]:
    return {(c["kind"], c["detail"]): c for c in data["root_causes"]}


# --- hits and misses ---------------------------------------------------------------------


def test_cache_b_against_mirror_of_a_misses_exactly_the_changed_sstate_tasks(
        mirror_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = analyze_json(capsys, str(OE / "cache-b"), str(mirror_a))
    assert code == 0
    pairs = sstate_pairs()
    assert len(pairs) == 26
    tasks = by_id(data)
    assert set(tasks) == {(p["pn"], p["task"]) for p in pairs}
    for pair in pairs:
        expected = "miss" if pair["changed"] else "hit"
        assert tasks[(pair["pn"], pair["task"])]["status"] == expected, pair["pn"]
    assert data["checked"] == 26
    assert data["misses"] == sum(1 for p in pairs if p["changed"]) == 9
    assert data["hits"] == 17
    assert data["errors"] == []
    assert set(data["sstate_tasks"]) == {"populate_sysroot", "populate_lic",
                                         "deploy_source_date_epoch", "recipe_qa"}


def test_root_causes_of_the_five_edits(mirror_a: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    _code, data = analyze_json(capsys, str(OE / "cache-b"), str(mirror_a))
    found = causes(data)
    alpha = found[("variable", "ALPHA_GREETING")]
    assert alpha["misses"] == 2 and alpha["first_in"] == "alpha-native"
    assert set(alpha["tasks"]) == {"x86_64:alpha-native:do_populate_sysroot",
                                   "x86_64:gamma-native:do_populate_sysroot"}
    assert alpha["cause"] == "variable ALPHA_GREETING changed"
    beta = found[("file-checksum", "beta.sh")]
    assert beta["misses"] == 3 and beta["first_in"] == "beta-native"
    assert beta["cause"] == "file checksum of beta.sh changed"
    gamma = found[("task-dependency", "+beta-native:do_populate_sysroot")]
    assert gamma["tasks"] == ["x86_64:gamma-native:do_populate_sysroot"]
    assert gamma["first_in"] == "gamma-native"
    eta = found[("task-dependency", "+delta-native:do_populate_sysroot")]
    assert eta["tasks"] == ["x86_64:eta-native:do_populate_sysroot"]
    assert eta["first_in"] == "eta-native"
    zeta = found[("pr", "r0 -> r1")]
    assert zeta["misses"] == 3 and zeta["first_in"] == "zeta"
    assert zeta["cause"] == "PR changed from r0 to r1"
    # every miss is explained, and nothing unexplained shows up
    explained = {t for c in data["root_causes"] for t in c["tasks"]}
    assert len(explained) == data["misses"]
    assert not {"unexplained", "basehash", "no-candidate", "signature-missing"} & {
        c["kind"] for c in data["root_causes"]}
    # the most frequent causes come first
    counts = [c["misses"] for c in data["root_causes"]]
    assert counts == sorted(counts, reverse=True)


def test_miss_diff_is_diffsigs_output_with_recursion(mirror_a: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _code, data = analyze_json(capsys, "--full-hashes", str(OE / "cache-b"), str(mirror_a))
    tasks = by_id(data)
    compared = 0
    for pair in sstate_pairs():
        expected = OE_EXPECTED / "diffsigs" / f"{pair['pn']}.{pair['task']}.txt"
        if not pair["changed"] or not expected.exists():
            continue
        task = tasks[(pair["pn"], pair["task"])]
        assert task["candidate"]["hash"] == pair["hash-a"]
        assert "\n".join(task["diff"]) + "\n" == expected.read_text()
        compared += 1
    assert compared >= 3


def test_hashes_are_shortened_unless_asked(mirror_a: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "analyze", str(OE / "cache-b"), str(mirror_a))
    assert code == 0
    assert "==== miss: x86_64:alpha-native:do_populate_sysroot (4b1578b3) ====" in out
    assert "alpha-native:do_install changed from 6915e38c to 7ffb236d" in out
    assert "6915e38ca26b" not in out
    code, out, _err = run(capsys, "analyze", "--full-hashes", str(OE / "cache-b"),
                          str(mirror_a))
    assert "6915e38ca26b3986ce7e0906ba19ede79012b08d3988aee27be252bc8fceb664" in out


def test_human_summary_ends_the_output(mirror_a: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _err = run(capsys, "analyze", str(OE / "cache-b"), str(mirror_a))
    summary = out[out.index("==== summary ===="):].splitlines()
    assert summary[1] == "26 tasks checked: 17 hits, 9 misses"
    assert "  variable ALPHA_GREETING changed: explains 2 misses (first in alpha-native)" \
        in summary
    assert "  file checksum of beta.sh changed: explains 3 misses (first in beta-native)" \
        in summary
    assert "  PR changed from r0 to r1: explains 3 misses (first in zeta)" in summary
    assert ("  task dependency delta-native:do_populate_sysroot added: explains 1 miss"
            " (first in eta-native)") in summary
    assert "\x1b[" not in out  # not a terminal: no colour


def test_same_cache_is_all_hits(mirror_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, data = analyze_json(capsys, "--fail-on-miss", str(OE / "cache-a"), str(mirror_a))
    assert code == 0
    assert data["checked"] == 26 and data["hits"] == 26 and data["misses"] == 0
    assert data["root_causes"] == []


def test_hit_under_another_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same archive (pn, task, hash) in a flat mirror still counts as a hit."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in (OE / "cache-a").rglob("sstate:*"):
        shutil.copy(f, flat / f.name)
    _code, data = analyze_json(capsys, str(OE / "cache-a"), str(flat))
    assert data["hits"] == 26


def test_other_nativelsbstring_is_a_miss_with_its_cause(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mirror filled with uninative (universal/) does not serve a build without it."""
    mirror = copy_cache(OE / "cache-a", tmp_path / "mirror")
    (mirror / "debian-12").rename(mirror / "universal")
    code, data = analyze_json(capsys, "--fail-on-miss", str(OE / "cache-a"), str(mirror))
    assert code == 1
    assert (data["hits"], data["misses"]) == (11, 15)
    [cause] = data["root_causes"]
    assert cause["kind"] == "other-directory" and cause["detail"] == "universal -> debian-12"
    assert cause["misses"] == 15
    miss = next(t for t in data["tasks"] if t["status"] == "miss")
    assert miss["candidate"]["path"].startswith("universal/")
    code, out, _err = run(capsys, "analyze", str(OE / "cache-a"), str(mirror))
    assert "the build looks under debian-12/ (NATIVELSBSTRING differs): explains 15" in out


def test_all_tasks_reports_tasks_without_archives(mirror_a: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _code, data = analyze_json(capsys, "--all-tasks", str(OE / "cache-b"), str(mirror_a))
    tasks = by_id(data)
    assert len(tasks) == len(index_pairs())
    assert tasks[("alpha-native", "do_compile")]["status"] == "miss"
    assert tasks[("alpha-native", "do_compile")]["sstate"] is False
    assert tasks[("delta-native", "do_compile")]["status"] == "hit"
    changed = {(p["pn"], p["task"]) for p in index_pairs() if p["changed"]}
    assert {k for k, t in tasks.items() if t["status"] == "miss"} == changed


# --- selection and exit codes --------------------------------------------------------------


def test_task_filter_and_arch_options(mirror_a: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    _code, data = analyze_json(capsys, "--task", "do_populate_sysroot", str(OE / "cache-b"),
                               str(mirror_a))
    assert {t["task"] for t in data["tasks"]} == {"do_populate_sysroot"}
    assert data["checked"] == 5 and data["misses"] == 4
    _code, data = analyze_json(capsys, "--task", "populate_lic", "--task", "recipe_qa",
                               str(OE / "cache-b"), str(mirror_a))
    assert {t["task"] for t in data["tasks"]} == {"do_populate_lic", "do_recipe_qa"}
    _code, data = analyze_json(capsys, "--filter", "zeta", str(OE / "cache-b"), str(mirror_a))
    assert {t["pn"] for t in data["tasks"]} == {"zeta"}
    assert data["misses"] == 3
    assert [c["kind"] for c in data["root_causes"]] == ["pr"]
    _code, data = analyze_json(capsys, "--arch", "qemux86_64", str(OE / "cache-b"),
                               str(mirror_a))
    assert {(t["pn"], t["task"]) for t in data["tasks"]} == {
        ("zeta", "do_deploy_source_date_epoch"), ("zeta", "do_recipe_qa")}


def test_fail_on_miss(mirror_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, _err = run(capsys, "analyze", "-q", str(OE / "cache-b"), str(mirror_a))
    assert code == 0
    code, _out, _err = run(capsys, "analyze", "-q", "--fail-on-miss", str(OE / "cache-b"),
                           str(mirror_a))
    assert code == 1


def test_json_structure(mirror_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _code, data = analyze_json(capsys, str(OE / "cache-b"), str(mirror_a))
    assert data["command"] == "analyze"
    assert {"checked", "hits", "misses", "tasks", "root_causes", "errors"} <= set(data)
    miss = by_id(data)[("eta-native", "do_populate_sysroot")]
    assert {"pn", "arch", "task", "hash", "status", "candidate", "causes", "diff"} <= set(miss)
    assert miss["arch"] == "x86_64"
    assert miss["candidate"]["hash"].startswith("643f7dc41b87")
    assert {"cause", "kind", "detail", "in"} <= set(miss["causes"][0])
    root = data["root_causes"][0]
    assert {"cause", "kind", "detail", "misses", "first_in"} <= set(root)


def test_colour_when_asked(mirror_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _code, out, _err = run(capsys, "analyze", "--color", "always", str(OE / "cache-b"),
                           str(mirror_a))
    assert "\x1b[1mHash for task dependency" in out


def test_listing_failure_is_a_backend_error(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "analyze", str(OE / "cache-b"), str(tmp_path / "missing"))
    assert code == 3
    assert "error:" in err


def test_usage_errors(mirror_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "analyze", "--max-candidates", "0", str(OE / "cache-b"),
                          str(mirror_a))
    assert code == 2 and "--max-candidates" in err


# --- candidates ----------------------------------------------------------------------------


def test_candidates_are_capped_and_the_closest_wins(tmp_path: Path, mirror_a: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Extra decoys on the mirror (more differences, newer) do not hide the closest one."""
    mirror = copy_cache(mirror_a, tmp_path / "mirror")
    src = next((OE / "cache-a").rglob("*alpha-native*_populate_sysroot.tar.zst.siginfo"))
    raw, _enc = decode_raw(src.read_bytes())
    for i in range(3):
        decoy = dict(raw)
        first, second = sorted(raw["varvals"])[:2]
        decoy["varvals"] = dict(raw["varvals"], **{first: f"decoy {i}", second: f"decoy {i}"})
        h = f"{i + 1:x}" * 64
        write_zstd_sig(mirror, src.name.replace(raw["unihash"], h), decoy, h)
    _code, data = analyze_json(capsys, "--filter", "alpha", str(OE / "cache-b"), str(mirror))
    task = by_id(data)[("alpha-native", "do_populate_sysroot")]
    assert task["candidates_total"] == 4 and task["candidates_examined"] == 4
    assert task["candidate"]["hash"] == raw["unihash"]
    _code, data = analyze_json(capsys, "--filter", "alpha", "--max-candidates", "2",
                               str(OE / "cache-b"), str(mirror))
    task = by_id(data)[("alpha-native", "do_populate_sysroot")]
    assert task["candidates_examined"] == 2


def test_no_candidate_and_archive_missing(tmp_path: Path, mirror_a: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    mirror = copy_cache(mirror_a, tmp_path / "mirror")
    for f in mirror.rglob("sstate:epsilon:*deploy_source_date_epoch*"):
        f.unlink()  # archive and signature gone: no candidate
    for f in mirror.rglob("sstate:delta-native:*_populate_sysroot.tar.zst"):
        f.unlink()  # archive gone, signature stays
    _code, data = analyze_json(capsys, str(OE / "cache-a"), str(mirror))
    assert data["misses"] == 2
    kinds = {c["kind"]: c for c in data["root_causes"]}
    assert kinds["no-candidate"]["first_in"] == "epsilon"
    assert kinds["archive-missing"]["first_in"] == "delta-native"


# --- hash equivalence ------------------------------------------------------------------------


def write_zstd_sig(root: Path, name: str, raw: Dict[str, Any], unihash: str,
                   archive: bool = False) -> Path:
    """Write a signature dict as bitbake >= 2.0 does (zstd JSON) under hh/hh[/prefix]."""
    def encode(value: Any) -> Any:
        if isinstance(value, (set, frozenset)):
            return {"_set_object": sorted(value)}
        if isinstance(value, dict):
            return {k: encode(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [encode(v) for v in value]
        return value

    data = dict(raw, unihash=unihash)
    text = json.dumps(encode(data), sort_keys=True).encode()
    prefix = "debian-12/" if "-native:" in name and "::" not in name else ""
    target = root / f"{prefix}{unihash[:2]}/{unihash[2:4]}/{name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(zstandard.ZstdCompressor().compress(text))
    if archive:
        target.with_name(name[: -len(".siginfo")]).write_bytes(b"archive")
    return target


def test_hash_equivalence_divergence_is_reported(tmp_path: Path, mirror_a: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    local = copy_cache(OE / "cache-a", tmp_path / "local")
    sig = next(local.rglob("*delta-native*_populate_sysroot.tar.zst.siginfo"))
    raw, _enc = decode_raw(sig.read_bytes())
    old = raw["unihash"]
    assert raw["taskhash"] == old
    new = "e" * 64
    for f in list(sig.parent.iterdir()):
        f.unlink()
    write_zstd_sig(local, sig.name.replace(old, new), raw, new, archive=True)
    code, data = analyze_json(capsys, str(local), str(mirror_a))
    assert code == 0
    assert data["misses"] == 1
    task = by_id(data)[("delta-native", "do_populate_sysroot")]
    assert task["candidate"]["hash"] == old and task["candidate"]["differences"] == 0
    assert [c["kind"] for c in task["causes"]] == ["hash-equivalence"]
    assert "hash equivalence" in data["root_causes"][0]["cause"]
    assert any(old in note and new in note for note in task["notes"])
    _code, out, _err = run(capsys, "analyze", str(local), str(mirror_a))
    assert "hash equivalence diverged" in out


def test_hash_equivalence_divergence_in_a_dependency(
        tmp_path: Path, mirror_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """delta-native:do_install got another unihash for the same taskhash; populate_sysroot,
    which depends on it, misses: the cause is found one level down."""
    local = copy_cache(OE / "cache-a", tmp_path / "local")
    install = next(local.rglob("*delta-native*_install.tar.zst.siginfo"))
    sysroot = next(local.rglob("*delta-native*_populate_sysroot.tar.zst.siginfo"))
    raw_install, _ = decode_raw(install.read_bytes())
    raw_sysroot, _ = decode_raw(sysroot.read_bytes())
    old_install, old_sysroot = raw_install["unihash"], raw_sysroot["unihash"]
    new_install, new_sysroot = "e" * 64, "f" * 64
    install.unlink()
    write_zstd_sig(local, install.name.replace(old_install, new_install), raw_install,
                   new_install)
    for f in list(sysroot.parent.iterdir()):
        f.unlink()
    raw_sysroot["runtaskhashes"] = dict(raw_sysroot["runtaskhashes"],
                                        **{"delta-native:do_install": new_install})
    raw_sysroot["taskhash"] = new_sysroot
    write_zstd_sig(local, sysroot.name.replace(old_sysroot, new_sysroot), raw_sysroot,
                   new_sysroot, archive=True)
    _code, data = analyze_json(capsys, str(local), str(mirror_a))
    assert data["misses"] == 1
    (root,) = data["root_causes"]
    assert root["kind"] == "hash-equivalence"
    assert (root["first_in"], root["first_task"]) == ("delta-native", "delta-native:do_install")


# --- legacy pickles and hostile files -------------------------------------------------------


def test_legacy_cache_against_itself(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = analyze_json(capsys, str(LEGACY / "cache-a"), str(LEGACY / "cache-a"))
    assert code == 0
    assert data["checked"] == 12 and data["hits"] == 12 and data["errors"] == []


def _rewrite_legacy(path: Path, new_hash: str, edit: Any) -> Path:
    """Re-pickle a legacy signature with ``edit`` applied, under ``new_hash``."""
    raw = loads_plain(path.read_bytes())
    edit(raw)
    raw["taskhash"] = raw["unihash"] = new_hash
    name = parse_name(path.name)
    assert name is not None
    new_name = path.name.replace(name.hash, new_hash)
    target = path.parent.parent.parent / new_hash[:2] / new_hash[2:4] / new_name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pickle.dumps(raw, protocol=4))
    archive = path.with_name(path.name[: -len(".siginfo")])
    if archive.exists():
        shutil.copy(archive, target.with_name(new_name[: -len(".siginfo")]))
        archive.unlink()
    path.unlink()
    return target


def test_legacy_cache_with_a_changed_variable(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    local = copy_cache(LEGACY / "cache-a", tmp_path / "local")
    install = next(local.rglob("*alpha-native*_install.tgz.siginfo"))
    sysroot = next(local.rglob("*alpha-native*_populate_sysroot.tgz.siginfo"))
    new_install = "d" * 64

    def edit_install(raw: Dict[str, Any]) -> None:
        raw["varvals"]["do_install"] = raw["varvals"]["do_install"] + "\n    true\n"

    def edit_sysroot(raw: Dict[str, Any]) -> None:
        (dep,) = [d for d in raw["runtaskdeps"] if d.endswith(":do_install")]
        raw["runtaskhashes"][dep] = new_install

    _rewrite_legacy(install, new_install, edit_install)
    _rewrite_legacy(sysroot, "c" * 64, edit_sysroot)
    code, data = analyze_json(capsys, str(local), str(LEGACY / "cache-a"))
    assert code == 0 and data["errors"] == []
    assert data["misses"] == 1
    (root,) = data["root_causes"]
    assert (root["kind"], root["detail"], root["first_in"]) == (
        "variable", "do_install", "alpha-native")
    task = by_id(data)[("alpha-native", "do_populate_sysroot")]
    assert any("Variable do_install value changed" in line for line in task["diff"])


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Tuple[Any, Tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_the_rest_analysed(
        tmp_path: Path, mirror_a: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = copy_cache(OE / "cache-a", tmp_path / "local")
    marker = tmp_path / "pwned"
    h = "ab" * 32
    name = f"sstate:evil-native:x86_64-linux:1.0:r0:x86_64:14:{h}_populate_sysroot.tar.zst"
    evil = local / "debian-12" / h[:2] / h[2:4] / f"{name}.siginfo"
    evil.parent.mkdir(parents=True)
    evil.write_bytes(pickle.dumps({"task": "do_populate_sysroot", "x": _Evil(marker)},
                                  protocol=4))
    code, out, err = run(capsys, "analyze", "--json", str(local), str(mirror_a))
    assert code == 2
    assert not marker.exists()
    assert name in err and "unsafe legacy signature file refused" in err
    data = json.loads(out)
    assert data["hits"] == 26 and data["misses"] == 1
    assert by_id(data)[("evil-native", "do_populate_sysroot")]["causes"][0]["kind"] == \
        "unreadable"
    assert len(data["errors"]) == 1 and name in data["errors"][0]["file"]
    code, out, err = run(capsys, "analyze", str(local), str(mirror_a))
    assert code == 2 and not marker.exists()
    assert "1 signature file could not be read" in out


# --- the command layer without the CLI ------------------------------------------------------


def test_signatures_are_fetched_once(mirror_a: Path) -> None:
    with open_backend(str(OE / "cache-b")) as source, open_backend(str(mirror_a)) as target:
        local, remote = list_artifacts(source), list_artifacts(target)
        plan = plan_analysis(local, remote, AnalyzeOptions())
        store = SignatureStore({LOCAL: source, MIRROR: target})
        report = execute_analysis(plan, store, local, remote, jobs=4)
    assert len(report.misses) == 9
    siginfos: Set[str] = {a.path for a in [*local, *remote] if a.kind is Kind.SIGINFO}
    assert store.fetches <= len(siginfos)


def test_store_cache_is_bounded(mirror_a: Path) -> None:
    with open_backend(str(OE / "cache-b")) as source, open_backend(str(mirror_a)) as target:
        local, remote = list_artifacts(source), list_artifacts(target)
        plan = plan_analysis(local, remote, AnalyzeOptions())
        store = SignatureStore({LOCAL: source, MIRROR: target}, capacity=3)
        report = execute_analysis(plan, store, local, remote, jobs=2)
        assert len(store._cache) <= 3
    # the same answers, only more reads
    found = {g.cause.detail for g in report.root_causes}
    assert {"ALPHA_GREETING", "beta.sh", "r0 -> r1"} <= found


def test_artifacts_only_from_names() -> None:
    art = make_artifact("ab/cd/sstate:x::1:r0::14:" + "ab" * 32 + "_populate_lic.tar.zst",
                        1, 0.0)
    plan = plan_analysis([], [art])
    assert plan.sstate_tasks == frozenset({"populate_lic"}) and plan.checks == []


def test_no_colour_in_a_pipe(mirror_a: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    env.pop("NO_COLOR", None)
    res = subprocess.run([sys.executable, "-m", "sstate_mirror", "analyze", "-v",
                          str(OE / "cache-b"), str(mirror_a)],
                         capture_output=True, text=True, env=env, check=False)
    assert res.returncode == 0, res.stderr
    assert "\x1b[" not in res.stdout
    assert "hit   x86_64:delta-native:do_populate_sysroot (782d46ae)" in res.stdout
    assert res.stdout.rstrip().splitlines()[-1].startswith("  task dependency")


def test_quiet_prints_the_summary_only(mirror_a: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "analyze", "-q", str(OE / "cache-b"), str(mirror_a))
    assert code == 0
    assert out.startswith("==== summary ====\n26 tasks checked: 17 hits, 9 misses\n")
    assert "==== miss" not in out and "Hash for task dependency" not in out
