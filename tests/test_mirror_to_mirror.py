"""upload with a mirror as SOURCE: promote, warm or migrate between any two stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mirrors import make_mirror
from sstate_mirror.cli import main

PAIRS = [
    ("s3-moto", "dir"),          # warm a local NFS mirror from S3
    ("dir", "dav-apache"),       # publish a directory mirror over WebDAV
    ("dav-wsgidav", "s3-moto"),  # migrate WebDAV -> S3
    ("s3-moto", "s3-moto"),      # promote a CI staging bucket to a release bucket
    ("dav-nginx", "dav-apache"),
]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("src_kind,dst_kind", PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_mirror_to_mirror(request: pytest.FixtureRequest, oe_cache_a: Path,
                          capsys: pytest.CaptureFixture[str], src_kind: str,
                          dst_kind: str) -> None:
    src = make_mirror(request, src_kind)
    dst = make_mirror(request, dst_kind)
    args = [*src.cli_args]
    assert main(["upload", "-q", str(oe_cache_a), src.url, *args]) == 0
    assert main(["upload", "-q", "--no-touch", src.url, dst.url, *args, *dst.cli_args]) == 0
    capsys.readouterr()
    expected = files(oe_cache_a)
    assert dst.sizes() == {p: len(d) for p, d in expected.items()}
    for path in expected:
        if path.endswith(".tar.zst"):
            assert dst.read(path) == expected[path]
    # the same ordering guarantee: nothing is left to do, and a second run sends nothing
    code = main(["--json", "upload", src.url, dst.url, *args, *dst.cli_args])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["plan"]["files_to_upload"] == 0
