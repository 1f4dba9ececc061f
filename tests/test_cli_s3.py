"""S3-specific end-to-end behaviour of the commands (the shared suite is test_cli_e2e.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from s3_servers import S3Bucket
from sstate_mirror.cli import main


def test_small_cache_probes_a_large_mirror_instead_of_listing_it(
        s3_bucket: S3Bucket, oe_cache_a: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # 3,000 objects: a full listing is 3 requests, probing 2 files is 2
    s3_bucket.seed({f"{i % 256:02x}/{i // 256:02x}/filler-{i}": b"x" for i in range(3000)})
    small = tmp_path / "small"
    sig = next(p for p in oe_cache_a.rglob("*.siginfo") if ":zeta:" in p.name
               and "populate_lic" in p.name)
    archive = Path(str(sig)[: -len(".siginfo")])
    for p in (sig, archive):
        dst = small / p.relative_to(oe_cache_a)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dst)
    code = main(["-v", "upload", str(small), s3_bucket.url])
    out = capsys.readouterr().out
    assert code == 0
    assert "checking 2 files on" in out and "listing s3://" not in out.replace(
        f"listing file://{small}", "")
    # a second run finds both by probing and sends nothing
    code = main(["--json", "upload", str(small), s3_bucket.url])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["plan"]["already_present"] == 2
    assert report["plan"]["files_to_upload"] == 0


def test_large_cache_lists_the_mirror(s3_bucket: S3Bucket, oe_cache_a: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["-v", "upload", str(oe_cache_a), s3_bucket.url])
    out = capsys.readouterr().out
    assert code == 0 and "listing s3://" in out and "checking" not in out
