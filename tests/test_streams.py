"""The one raw-stream adapter (``chunkstream.ChunkStream``) and the object stores' two
streams built on it: exact uploads, bodies with the project's errors."""

from __future__ import annotations

import io
from typing import List

import pytest

from sstate_mirror.backends.streams import PIECE, BodyReader, ExactReader
from sstate_mirror.chunkstream import ChunkStream
from sstate_mirror.errors import BackendError, PermanentError, TransientError


def test_every_raw_stream_is_a_chunk_stream() -> None:
    """One adapter: no other class of the project subclasses ``io.RawIOBase``."""
    import ast
    from pathlib import Path

    src = Path(__file__).parents[1] / "src" / "sstate_mirror"
    raw = []
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    ast.unparse(base) in ("io.RawIOBase", "RawIOBase") for base in node.bases):
                raw.append(f"{path.relative_to(src)}:{node.name}")
    assert raw == ["chunkstream.py:ChunkStream"]


def test_read_fills_unless_the_stream_ends() -> None:
    stream = ChunkStream([b"ab", b"", b"cde", b"f"])
    assert stream.read(4) == b"abcd"
    assert stream.read(10) == b"ef"
    assert stream.read(1) == b""


def test_exact_reader_hands_out_exactly_size_bytes() -> None:
    data = bytes(range(256)) * (3 * PIECE // 256 + 7)
    reader = ExactReader(io.BytesIO(data), len(data), "x")
    part = reader.read(PIECE + 5)  # a library's part: full, not one chunk's worth
    assert part == data[:PIECE + 5] and reader.tell() == PIECE + 5
    assert reader.read() == data[PIECE + 5:]
    assert reader.read(1) == b""


@pytest.mark.parametrize("size", [0, 10, PIECE])
def test_a_longer_source_fails_on_the_read_of_the_last_byte(size: int) -> None:
    """s3transfer sends a small upload after one read of its threshold and reads no more:
    the surplus must show on that read."""
    reader = ExactReader(io.BytesIO(b"x" * (size + 1)), size, "x")
    with pytest.raises(PermanentError, match="more than"):
        reader.read(max(size, 1))  # exactly what was announced: no read after it


def test_a_shorter_source_fails() -> None:
    reader = ExactReader(io.BytesIO(b"x" * 10), 11, "x")
    with pytest.raises(PermanentError, match="gave 10 bytes, expected 11"):
        reader.read()


def test_body_reader_translates_errors_and_releases_once() -> None:
    released: List[int] = []
    source = io.BytesIO(b"y" * (2 * PIECE + 3))

    def read(n: int) -> bytes:
        if source.tell() >= 2 * PIECE:
            raise ConnectionResetError("reset")
        return source.read(n)

    def error(exc: BaseException) -> BackendError:
        return TransientError(f"cannot read: {exc}")

    reader = BodyReader(read, error, lambda: released.append(1))
    assert reader.read(2 * PIECE) == b"y" * 2 * PIECE
    with pytest.raises(TransientError, match="reset") as info:
        reader.read(1)
    assert isinstance(info.value.__cause__, ConnectionResetError)
    reader.close()
    reader.close()
    assert released == [1]
