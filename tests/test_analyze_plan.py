"""analyze's pure parts: the plan from listings, causes from signatures, grouping; and the
execution through a backend that is not a directory."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Dict, List, Optional

from signature_helpers import OE, base_sig
from sstate_mirror.backends.base import Backend, Entry, SkipCallback
from sstate_mirror.commands.analyze import (
    HIT,
    LOCAL,
    MIRROR,
    AnalysisReport,
    AnalyzeOptions,
    execute_analysis,
    normalize_task,
    plan_analysis,
    shorten_hashes,
)
from sstate_mirror.commands.listing import list_artifacts
from sstate_mirror.commands.rootcause import (
    ExplanationGraph,
    Finding,
    causes_at,
    difference_score,
    group_root_causes,
    pn_of,
    signature_missing_cause,
)
from sstate_mirror.commands.sigstore import SignatureStore
from sstate_mirror.commands.upload import Selection
from sstate_mirror.errors import BackendError, NotFoundError, TransientError
from sstate_mirror.naming import Artifact, make_artifact
from sstate_mirror.signatures import ChangeKind, compare_structured
from sstate_mirror.signatures.model import Encoding, Signature
from sstate_mirror.signatures.reader import signature_from_dict

H = {c: c * 64 for c in "0123456789abcdef"}


def isar(pn: str, task: str, h: str, ext: str = "tar.zst", mtime: float = 0.0,
         arch: str = "arm64") -> Artifact:
    name = f"sstate:{pn}:{arch}-isar:1.0:r0:{arch}:10:{h}_{task}.{ext}"
    return make_artifact(f"{h[:2]}/{h[2:4]}/{name}", 10, mtime)


def group(pn: str, task: str, h: str, mtime: float = 0.0, arch: str = "arm64",
          archive: bool = True) -> List[Artifact]:
    arts = [isar(pn, task, h, "tar.zst.siginfo", mtime, arch)]
    if archive:
        arts.append(isar(pn, task, h, "tar.zst", mtime, arch))
    return arts


# --- the plan ------------------------------------------------------------------------------


def test_isar_sstate_tasks_come_from_the_data() -> None:
    local = [*group("hello", "dpkg_build", H["1"]), *group("img", "rootfs_install", H["2"]),
             *group("hello", "compile", H["3"], archive=False)]
    remote = [*group("hello", "dpkg_build", H["1"])]
    plan = plan_analysis(local, remote)
    assert plan.sstate_tasks == {"dpkg_build", "rootfs_install"}
    assert [(c.key, c.status) for c in plan.checks] == [
        ("hello:do_dpkg_build", "hit"), ("img:do_rootfs_install", "miss")]
    assert plan.not_sstate == 1


def test_hit_needs_the_archive_not_only_the_signature() -> None:
    local = group("hello", "dpkg_build", H["1"])
    remote = group("hello", "dpkg_build", H["1"], archive=False)
    plan = plan_analysis(local, [*remote, *group("other", "dpkg_build", H["9"])])
    (check,) = plan.checks
    assert check.status == "miss"
    assert check.same_hash_siginfo is not None
    assert check.candidates == []


def test_candidates_same_pn_arch_task_newest_first_capped() -> None:
    local = group("hello", "dpkg_build", H["1"])
    remote = [*group("hello", "dpkg_build", H["2"], mtime=100),
              *group("hello", "dpkg_build", H["3"], mtime=300),
              *group("hello", "dpkg_build", H["4"], mtime=200),
              *group("hello", "dpkg_build", H["5"], mtime=900, arch="amd64"),
              *group("hello", "rootfs_install", H["6"], mtime=900),
              *group("hallo", "dpkg_build", H["7"], mtime=900)]
    (check,) = plan_analysis(local, remote, AnalyzeOptions(max_candidates=2)).checks
    assert [c.hash for c in check.candidates] == [H["3"], H["4"]]
    assert check.total_candidates == 3


def test_selection_by_task_filter_and_arch() -> None:
    local = [*group("hello", "dpkg_build", H["1"]), *group("img", "rootfs_install", H["2"]),
             *group("hello", "dpkg_build", H["3"], arch="amd64")]
    plan = plan_analysis(local, [], AnalyzeOptions(tasks=frozenset({"rootfs_install"})))
    assert [c.key for c in plan.checks] == ["img:do_rootfs_install"]
    assert plan.not_selected == 2
    plan = plan_analysis(local, [], AnalyzeOptions(
        selection=Selection(pn_filter=re.compile("hel"), arch="amd64")))
    assert [(c.key, c.siginfo.arch) for c in plan.checks] == [("hello:do_dpkg_build", "amd64")]
    assert normalize_task("do_dpkg_build") == normalize_task("dpkg_build") == "dpkg_build"


def test_all_tasks_checks_signature_presence() -> None:
    local = [*group("hello", "dpkg_build", H["1"]), *group("hello", "fetch", H["2"], archive=False),
             *group("hello", "unpack", H["3"], archive=False)]
    remote = group("hello", "fetch", H["2"], archive=False)
    plan = plan_analysis(local, remote, AnalyzeOptions(all_tasks=True))
    status = {c.key: (c.status, c.sstate) for c in plan.checks}
    assert status == {"hello:do_dpkg_build": ("miss", True), "hello:do_fetch": ("hit", False),
                      "hello:do_unpack": ("miss", False)}


def test_duplicates_and_foreign_files_are_ignored() -> None:
    a = group("hello", "dpkg_build", H["1"])
    moved = make_artifact("old/" + a[0].path, 10, 0.0)  # the same task in another layout
    junk = [make_artifact("README", 1, 0.0), make_artifact("ab/sigtask.x", 1, 0.0)]
    plan = plan_analysis([*a, moved, *junk], [])
    assert len(plan.checks) == 1


# --- causes --------------------------------------------------------------------------------


def sig(**overrides: object) -> Signature:
    return signature_from_dict(base_sig(**overrides), Encoding.ZSTD_JSON)


def test_structured_changes_in_bitbake_order() -> None:
    old = sig()
    new = sig(varvals={"do_compile": "    oe_runmake\n", "CC": "clang", "do_compile[func]": 1},
              basehash="2" * 64, file_checksum_values=[("a.patch", "x")],
              runtaskhashes={"foo:do_configure": "b" * 64})
    kinds = [c.kind for c in compare_structured(old, new)]
    assert kinds == [ChangeKind.BASEHASH, ChangeKind.VARIABLE, ChangeKind.FILE_ADDED,
                     ChangeKind.RUNTASKDEPS, ChangeKind.TASK_HASH]


def test_causes_at_skips_derived_changes_and_follows_dependencies() -> None:
    old = sig()
    new = sig(varvals={"do_compile": "    oe_runmake\n", "CC": "clang", "do_compile[func]": 1},
              basehash="2" * 64, runtaskhashes={"foo:do_configure": "b" * 64})
    causes, follow = causes_at(old, new, "x:do_compile")
    assert [c.text for c in causes] == ["variable CC changed"]
    assert follow == [("foo:do_configure", "a" * 64, "b" * 64)]
    assert difference_score(old, new) == 2


def test_unexplained_basehash_and_taint() -> None:
    causes, _ = causes_at(sig(), sig(basehash="2" * 64), "x:do_compile")
    assert [c.kind for c in causes] == ["basehash"]
    causes, _ = causes_at(sig(), sig(taint="nostamp:123"), "x:do_compile")
    assert [c.kind for c in causes] == ["taint"]


def test_pr_variable_is_a_pr_cause() -> None:
    old = sig(varvals={"do_compile": "x", "PR": "r0"})
    new = sig(varvals={"do_compile": "x", "PR": "r1"})
    (cause,), _ = causes_at(old, new, "x:do_compile")
    assert (cause.kind, cause.detail, cause.text) == ("pr", "r0 -> r1", "PR changed from r0 to r1")


def test_hash_equivalence_divergence() -> None:
    old = sig(taskhash="1" * 64, unihash="2" * 64)
    new = sig(taskhash="1" * 64, unihash="3" * 64)
    (cause,), follow = causes_at(old, new, "x:do_compile")
    assert cause.kind == "hash-equivalence" and follow == []
    assert difference_score(old, new) == 0


def test_graph_findings_deepest_origin_and_cycles() -> None:
    graph = ExplanationGraph()
    var = causes_at(sig(varvals={"do_compile": "a", "V": "1"}),
                    sig(varvals={"do_compile": "a", "V": "2"}), "k")[0][0]
    top, mid, low = ("a:do_x", "1", "2"), ("b:do_y", "1", "2"), ("c:do_z", "1", "2")
    graph.add(top, [], [mid, low])
    graph.add(mid, [var], [low, top])  # a cycle back to the top: ignored
    graph.add(low, [var, signature_missing_cause("d:do_w")])
    found = {f.cause.kind: f for f in graph.findings(top)}
    assert found["variable"] == Finding(var, "c:do_z", 2)
    assert found["signature-missing"].origin == "c:do_z"
    assert graph.missing([top, ("n:do_n", "1", "2"), ("n:do_n", "1", "2")]) == [
        ("n:do_n", "1", "2")]


def test_grouping_counts_misses_and_names_the_first_recipe() -> None:
    var = causes_at(sig(varvals={"do_compile": "a", "DISTRO_FEATURES": "x"}),
                    sig(varvals={"do_compile": "a", "DISTRO_FEATURES": "x y"}), "k")[0][0]
    missing = signature_missing_cause("z:do_fetch")
    groups = group_root_causes([
        ("busybox:do_populate_sysroot", [Finding(var, "busybox:do_configure", 2)]),
        ("image:do_rootfs", [Finding(var, "base-files:do_install", 9),
                             Finding(missing, "z:do_fetch", 3)]),
        ("base-files:do_populate_sysroot", [Finding(var, "base-files:do_install", 1)]),
    ])
    assert [(g.cause.kind, g.misses, g.first_in) for g in groups] == [
        ("variable", 3, "base-files"), ("signature-missing", 1, "z")]
    assert groups[0].to_dict()["first_task"] == "base-files:do_install"


def test_pn_of_task_ids() -> None:
    assert pn_of("gamma-native:do_compile") == "gamma-native"
    assert pn_of("/b/meta/recipes/gamma-native_1.0.bb:do_compile") == "gamma-native"
    assert pn_of("virtual:native:/b/meta/gamma_1.0.bb:do_compile") == "gamma"


def test_shorten_hashes_only_touches_full_hashes() -> None:
    h = "0123456789abcdef" * 4
    assert shorten_hashes(f"from {h} to \x1b[0m{h}.") == "from 01234567 to \x1b[0m01234567."
    assert shorten_hashes("md5 046dfb3fd87920488b021ac511203de4") == \
        "md5 046dfb3fd87920488b021ac511203de4"
    assert shorten_hashes(h + "0") == h + "0"


# --- through a backend that is not a directory -------------------------------------------


class MemoryBackend(Backend):
    """The smallest store: a dict. Counts reads; can fail some of them."""

    def __init__(self, files: Dict[str, bytes], fail: Optional[Dict[str, BackendError]] = None
                 ) -> None:
        self.url = "mem://test"
        self.files = files
        self.fail = fail or {}
        self.reads: Dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, create: bool = False) -> None:
        pass

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None
             ) -> Iterator[Entry]:
        for i, (path, data) in enumerate(sorted(self.files.items())):
            yield Entry(path, len(data), float(i))

    def stat(self, path: str) -> Optional[Entry]:
        return Entry(path, len(self.files[path]), 0.0) if path in self.files else None

    def open(self, path: str) -> AbstractContextManager[IO[bytes]]:
        with self._lock:
            self.reads[path] = self.reads.get(path, 0) + 1
        if path in self.fail:
            raise self.fail[path]
        if path not in self.files:
            raise NotFoundError(f"{path}: not found", path=path)
        return io.BytesIO(self.files[path])

    def put(self, path: str, src: IO[bytes], size: int) -> None:
        raise NotImplementedError

    def delete(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        raise NotImplementedError

    def touch(self, paths: Sequence[str]) -> Dict[str, BackendError]:
        raise NotImplementedError


def memory_copy(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_memory(local: MemoryBackend, remote: MemoryBackend, capacity: int = 2048
               ) -> AnalysisReport:
    la, ra = list_artifacts(local), list_artifacts(remote)
    plan = plan_analysis(la, ra)
    store = SignatureStore({LOCAL: local, MIRROR: remote}, capacity=capacity, retries=1)
    return execute_analysis(plan, store, la, ra, jobs=4)


def test_any_backend_each_signature_read_once() -> None:
    local = MemoryBackend(memory_copy(OE / "cache-b"))
    remote = MemoryBackend(memory_copy(OE / "cache-a"))
    report = run_memory(local, remote)
    assert len(report.hits) == 17 and len(report.misses) == 9
    assert {g.cause.detail for g in report.root_causes} >= {"ALPHA_GREETING", "beta.sh"}
    assert max(remote.reads.values()) == 1 and max(local.reads.values()) == 1
    assert not any(p.endswith(".tar.zst") for p in [*remote.reads, *local.reads])


def test_a_failing_fetch_is_reported_and_the_rest_goes_on() -> None:
    files = memory_copy(OE / "cache-a")
    bad = next(p for p in files if "alpha-native" in p and p.endswith("_install.tar.zst.siginfo"))
    flaky = next(p for p in files if "zeta" in p and "populate_lic.tar.zst.siginfo" in p)
    remote = MemoryBackend(files, fail={bad: NotFoundError(f"{bad}: gone", path=bad),
                                        flaky: TransientError("timeout", path=flaky)})
    report = run_memory(MemoryBackend(memory_copy(OE / "cache-b")), remote)
    assert len(report.misses) == 9
    assert set(report.errors) == {f"mem://test/{bad}", f"mem://test/{flaky}"}
    assert report.backend_errors
    assert remote.reads[flaky] == 2  # retried once
    kinds = {g.cause.kind: g for g in report.root_causes}
    assert kinds["signature-missing"].cause.detail == "alpha-native:do_install"
    assert kinds["no-candidate"].tasks == ["zeta:do_populate_lic"]
    statuses = {r.check.key: r.status for r in report.results}
    assert statuses["delta-native:do_populate_sysroot"] == HIT


def test_graph_walk_survives_very_long_chains() -> None:
    graph = ExplanationGraph()
    cause = signature_missing_cause("bottom:do_x")
    depth = 5000
    for i in range(depth):
        graph.add((f"t{i}:do_x", "1", "2"), [], [(f"t{i + 1}:do_x", "1", "2")])
    graph.add((f"t{depth}:do_x", "1", "2"), [cause])
    (finding,) = graph.findings(("t0:do_x", "1", "2"))
    assert finding.distance == depth and finding.origin == f"t{depth}:do_x"


def test_archive_below_another_prefix_is_a_miss() -> None:
    """bitbake looks below its own NATIVELSBSTRING: universal/ does not serve debian-12/."""
    local = [make_artifact(f"debian-12/{a.path}", a.size, 0.0)
             for a in group("hello-native", "populate_sysroot", H["1"], arch="x86_64")]
    remote = [make_artifact(f"universal/{a.path}", a.size, 0.0)
              for a in group("hello-native", "populate_sysroot", H["1"], arch="x86_64")]
    flat = [make_artifact(a.basename, a.size, 0.0)
            for a in group("hello-native", "populate_sysroot", H["1"], arch="x86_64")]
    [check] = plan_analysis(local, remote).checks
    assert check.status == "miss"
    assert check.elsewhere is not None and check.elsewhere.path.startswith("universal/")
    assert check.candidates == []
    # the same prefix, or a flat copy that keeps no prefix: a hit
    assert plan_analysis(local, local).checks[0].status == HIT
    assert plan_analysis(local, flat).checks[0].status == HIT
    assert plan_analysis(local, [*remote, *local]).checks[0].status == HIT
