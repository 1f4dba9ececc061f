"""Time ``sstate-mirror analyze`` against a mirror holding ~10,000 signature files.

Why: analyze must stay interactive on a real shared mirror, where every recipe has dozens of
old builds and thousands of other recipes sit next to it. The cost that could explode is
reading signatures: a naive analysis compares every miss with every remote signature of the
same task. This benchmark builds such a mirror from the real signature files of
``tests/data/oe-wrynose`` and measures the whole command.

The mirror: cache A (the real build), plus, derived from each of its signature files,
- ``--history`` older builds of the same recipe and task (a variable value and the
  dependencies' hashes rewritten, a new hash): candidates for every miss;
- enough renamed recipes (``alpha-native`` -> ``alpha-native-b17``, dependencies renamed
  alike, new hashes) to reach ``--signatures`` signature files in total: the bulk of the listing.
Sstate tasks get a small archive next to each signature, as on a real mirror. The local cache
is cache B (five real edits, nine sstate misses against cache A).

Usage: ``python benchmarks/analyze_bench.py [--signatures 10000] [--history 20] [--runs 3]
[--keep DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import zstandard

from sstate_mirror.cli import main
from sstate_mirror.naming import parse_name
from sstate_mirror.signatures.reader import decode_raw

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "oe-wrynose"


def _encode_sets(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return {"_set_object": sorted(value)}
    if isinstance(value, dict):
        return {k: _encode_sets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_sets(v) for v in value]
    return value


def _fake_hash(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _rename_dep(dep: str, old_pn: str, new_pn: str) -> str:
    pn, task = dep.rsplit(":", 1)
    return f"{new_pn}:{task}" if pn == old_pn else dep


def _variant(raw: Dict[str, Any], old_pn: str, new_pn: str, salt: str, new_hash: str
             ) -> Dict[str, Any]:
    """The signature rewritten for another build (salt) and recipe name, under new_hash."""
    out = dict(raw)
    task = raw.get("task") or ""
    varvals = dict(raw["varvals"])
    if isinstance(varvals.get(task), str):
        varvals[task] = f"{varvals[task]}\n# {salt}\n"
    out["varvals"] = varvals
    deps = [_rename_dep(d, old_pn, new_pn) for d in raw.get("runtaskdeps") or []]
    out["runtaskdeps"] = deps
    out["runtaskhashes"] = {_rename_dep(d, old_pn, new_pn): _fake_hash(salt, d, h)
                            for d, h in (raw.get("runtaskhashes") or {}).items()}
    out["taskhash"] = out["unihash"] = new_hash
    return out


def build_mirror(root: Path, total: int, history: int, seed: int) -> Tuple[int, int]:
    """Write the synthetic mirror below ``root``; return (signature files, archives)."""
    rng = random.Random(seed)
    cache_a = DATA / "cache-a"
    shutil.copytree(cache_a, root)
    now = time.time()
    sources = []
    for sig in sorted(cache_a.rglob("*.siginfo")):
        name = parse_name(sig.name)
        assert name is not None
        raw, _encoding = decode_raw(sig.read_bytes())
        archive = sig.with_name(sig.name[: -len(".siginfo")]).exists()
        prefix = sig.relative_to(cache_a).parts[0] if "-native" in name.pn and \
            not name.is_software_only else ""
        sources.append((sig.name, name.pn, name.hash, raw, archive, prefix))
    count, archives = len(sources), sum(1 for s in sources if s[4])
    compressor = zstandard.ZstdCompressor()
    i = 0
    while count < total:
        for basename, pn, old_hash, raw, archive, prefix in sources:
            if count >= total:
                break
            new_pn = pn if i < history else f"{pn}-b{i}"
            new_hash = _fake_hash(basename, i)
            data = _variant(raw, pn, new_pn, f"build {i}", new_hash)
            new_name = basename.replace(old_hash, new_hash).replace(
                f"sstate:{pn}:", f"sstate:{new_pn}:", 1)
            directory = root / prefix / new_hash[:2] / new_hash[2:4]
            directory.mkdir(parents=True, exist_ok=True)
            text = json.dumps(_encode_sets(data), sort_keys=True).encode()
            target = directory / new_name
            target.write_bytes(compressor.compress(text))
            mtime = now - rng.uniform(1, 90) * 86400
            _set_mtime(target, mtime)
            count += 1
            if archive:
                arch_file = directory / new_name[: -len(".siginfo")]
                arch_file.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 60)
                _set_mtime(arch_file, mtime)
                archives += 1
        i += 1
    return count, archives


def _set_mtime(path: Path, mtime: float) -> None:
    os.utime(path, (mtime, mtime))


def time_analyze(local: Path, mirror: Path, extra: List[str]) -> Tuple[float, Dict[str, Any]]:
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(["analyze", "--json", "-q", *extra, str(local), str(mirror)])
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"analyze exited with {code}")
    return elapsed, json.loads(out.getvalue())


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signatures", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=20,
                        help="older builds of each recipe and task (candidates per miss)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="build the mirror here and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="analyze-bench-"))
    mirror = work / "mirror"
    try:
        start = time.perf_counter()
        sigs, archives = build_mirror(mirror, args.signatures, args.history, args.seed)
        print(f"mirror: {sigs} signature files, {archives} archives"
              f" (built in {time.perf_counter() - start:.1f}s)")
        local = DATA / "cache-b"
        for label, extra in (("default (--max-candidates 5)", []),
                             ("--all-tasks", ["--all-tasks"]),
                             ("--max-candidates 25", ["--max-candidates", "25"])):
            times = []
            data: Dict[str, Any] = {}
            for _ in range(args.runs):
                elapsed, data = time_analyze(local, mirror, extra)
                times.append(elapsed)
            causes = ", ".join(f"{c['detail'] or c['kind']}={c['misses']}"
                               for c in data["root_causes"])
            print(f"{label}: median {statistics.median(times):.2f}s over {args.runs} runs"
                  f" (min {min(times):.2f}s); checked {data['checked']},"
                  f" misses {data['misses']}; causes {causes}")
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main_bench()
