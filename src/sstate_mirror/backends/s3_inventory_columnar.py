"""The Parquet data files of an S3 Inventory report, read with pyarrow in bounded batches.

pyarrow is the one well-kept reader of the format; it is an optional dependency
(``sstate-mirror[inventory]``), imported only here and only when a Parquet report is read
(ORC reports are refused: :mod:`.s3_inventory` says why). Parquet keeps its index at the
end of the file, so a data file is first copied
to a temporary file (its size and MD5 checked against the manifest by the caller) and read
from there, never held in memory.

What pyarrow decodes is bounded before it is decoded, by the limits of
:mod:`.s3_inventory` (the CSV reader's, in one place): the footer by the manifest's size
limit, the rows by what each is charged against the file's expansion budget, each Parquet
page by the ratio of its decompressed to its compressed bytes, and the text decoded (keys
and buckets, a repeated value counted each time) by the same budget as a CSV file's lines.
Only the columns a listing needs are read, a batch of rows at a time; a Parquet batch holds
fewer rows where the longest value of a dictionary page could stand for each of them.

pyarrow decompresses a Parquet page to the size its header says, whatever the footer says
of the column, and exposes no page headers: :func:`_walk_pages` reads them (Thrift compact
structs, a few dozen lines; no library here reads them alone) and the dictionary pages'
longest values.

Unlike CSV's, Parquet's keys are not URL-encoded: they are used as they are.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO, Any, Dict, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as papq

from ..errors import PermanentError
from . import s3_inventory as limits
from .streams import PIECE

#: A row as a listing needs it: bucket, key, size, POSIX mtime, IsLatest, IsDeleteMarker
#: (None where the report has no such column).
Row = Tuple[Optional[str], Optional[str], Any, Optional[float], Optional[bool], Optional[bool]]

#: The report's columns a listing reads, by their CSV names.
WANTED = ("Bucket", "Key", "Size", "LastModifiedDate", "IsLatest", "IsDeleteMarker")

_NANOS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def parquet_rows(path: str, size: int, names: Dict[str, str], what: str) -> Iterator[Row]:
    """The rows of a Parquet data file of ``size`` bytes (``names``: CSV name -> column)."""
    budget = limits.EXPANSION_MAX * size + limits.EXPANSION_FLOOR
    if size < 12:
        raise PermanentError(f"{what}: not a Parquet file (too short)")
    with open(path, "rb") as file:
        file.seek(size - 8)
        footer_len, magic = struct.unpack("<I4s", file.read(8))
    if magic != b"PAR1":
        raise PermanentError(f"{what}: not a Parquet file")
    if footer_len > limits.MANIFEST_MAX or footer_len > size - 12:
        raise PermanentError(f"{what}: a footer of {footer_len} bytes (more than"
                             f" {min(limits.MANIFEST_MAX, size - 12)})")
    try:
        parquet = papq.ParquetFile(
            path, buffer_size=PIECE, pre_buffer=False,
            thrift_string_size_limit=limits.MANIFEST_MAX,
            thrift_container_size_limit=limits.MANIFEST_MAX // 16)
        columns = _present(parquet.schema_arrow.names, names, what)
        texts = {names[c] for c in ("Bucket", "Key")}
        meta = parquet.metadata
        index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        rows = 0
        batch_rows: List[int] = []
        with open(path, "rb") as file:
            for g in range(meta.num_row_groups):
                group = meta.row_group(g)
                rows += group.num_rows
                widest = 1  # the longest value of a text column's dictionary pages
                for name in columns:
                    chunk = group.column(index[name])
                    unpacked, dictionary = _walk_pages(file, chunk, size, name in texts,
                                                       f"{what}: column {name} of row group {g}")
                    budget -= max(unpacked, chunk.total_uncompressed_size)
                    widest = max(widest, dictionary)
                budget -= limits.ROW_MIN * group.num_rows
                if budget < 0:
                    raise PermanentError(f"{what}: {rows} rows and their columns expand to"
                                         f" more than {limits.EXPANSION_MAX} times its size"
                                         " (not an inventory)")
                # a value of a dictionary page may stand for every row of a batch
                batch_rows.append(max(1, min(limits.BATCH_ROWS, limits.BATCH_BYTES // widest)))
        # the text decoded, like a CSV file's lines, within the ratio to the file's size
        text = limits.EXPANSION_MAX * size + limits.EXPANSION_FLOOR
        for g, count in enumerate(batch_rows):
            batches = parquet.iter_batches(batch_size=count, row_groups=[g], columns=columns,
                                           use_threads=False)
            for batch in batches:
                for name in texts:
                    text -= _text_bytes(batch.column(name))
                if text < 0:
                    raise PermanentError(f"{what}: its keys expand to more than"
                                         f" {limits.EXPANSION_MAX} times its size (not an"
                                         " inventory)")
                yield from _batch_rows(batch, names, what)
    except (pa.ArrowException, OSError) as exc:
        raise PermanentError(f"{what}: not a readable Parquet file ({_short(exc)})") from exc


#: Parquet's page types (parquet.thrift ``PageType``)
_DICTIONARY_PAGE = 2
_PAGE_TYPES = (0, 1, 2, 3)


def _walk_pages(file: IO[bytes], chunk: Any, size: int, text: bool, what: str
                ) -> Tuple[int, int]:
    """A column chunk's pages, by their headers: the bytes they decompress to (each page
    within the ratio of its compressed bytes), and for a text column the longest value of
    its dictionary pages (or, where a page cannot be decoded here, the page's size).

    pyarrow trusts each page's header when it decompresses the page, whatever the footer
    says of the chunk; the headers are Thrift compact structs, read by :func:`_compact`.
    """
    starts = [o for o in (chunk.dictionary_page_offset, chunk.data_page_offset)
              if o is not None and o > 0]
    pos = min(starts) if starts else 0
    end = pos + chunk.total_compressed_size
    if not starts or end > size:
        raise PermanentError(f"{what}: its pages are outside the file")
    unpacked = dictionary = 0
    while pos < end:
        file.seek(pos)
        head = file.read(min(limits.PAGE_HEADER_MAX, end - pos))
        try:
            fields, length = _compact(head, 0)
        except (IndexError, ValueError) as exc:
            raise PermanentError(f"{what}: a page header that cannot be read ({exc})") from None
        kind, page, packed = fields.get(1), fields.get(2), fields.get(3)
        if kind not in _PAGE_TYPES or not isinstance(page, int) or not isinstance(packed, int) \
                or page < 0 or packed < 0 or pos + length + packed > end:
            raise PermanentError(f"{what}: a page header that is not a page's")
        if page > limits.EXPANSION_MAX * packed + limits.EXPANSION_FLOOR:
            raise PermanentError(f"{what}: a page expands to more than {limits.EXPANSION_MAX}"
                                 " times its size (not an inventory)")
        unpacked += page
        if kind == _DICTIONARY_PAGE and text:
            file.seek(pos + length)
            dictionary = max(dictionary, _longest(file.read(packed), page, chunk.compression))
        pos += length + packed
    if unpacked > limits.EXPANSION_MAX * chunk.total_compressed_size + limits.EXPANSION_FLOOR:
        raise PermanentError(f"{what}: expands to more than {limits.EXPANSION_MAX} times its"
                             " size (not an inventory)")
    return unpacked, dictionary


#: Parquet's codecs that pyarrow decompresses as a block (its LZ4 is Hadoop-framed)
_CODECS = {"SNAPPY": "snappy", "GZIP": "gzip", "BROTLI": "brotli", "ZSTD": "zstd",
           "LZ4_RAW": "lz4_raw"}


def _longest(packed: bytes, size: int, compression: str) -> int:
    """The longest value of a dictionary page (PLAIN byte arrays: a 4-byte length, the
    bytes), or ``size`` where the page cannot be decoded here (each value is shorter)."""
    if compression == "UNCOMPRESSED":
        values = packed
    elif compression in _CODECS:
        try:
            values = pa.decompress(packed, decompressed_size=size, codec=_CODECS[compression],
                                   asbytes=True)
        except (pa.ArrowException, ValueError):
            return size
    else:
        return size
    pos = longest = 0
    while pos + 4 <= len(values):
        length = int.from_bytes(values[pos:pos + 4], "little")
        longest = max(longest, length)
        pos += 4 + length
    return longest if pos == len(values) else size


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _zigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


def _compact(buf: bytes, pos: int, depth: int = 0) -> Tuple[Dict[int, Any], int]:
    """A Thrift compact struct at ``pos``: its integer fields by id (the others skipped),
    and where it ends. An IndexError is a struct cut short."""
    if depth > 8:
        raise ValueError("structs nested too deep")
    fields: Dict[int, Any] = {}
    field = 0
    while True:
        head = buf[pos]
        pos += 1
        if head == 0:
            return fields, pos
        kind = head & 0x0F
        if head >> 4:
            field += head >> 4
        else:
            raw, pos = _varint(buf, pos)
            field = _zigzag(raw)
        if kind in (4, 5, 6):  # i16, i32, i64
            raw, pos = _varint(buf, pos)
            fields[field] = _zigzag(raw)
        else:
            pos = _skip(buf, pos, kind, depth)


def _skip(buf: bytes, pos: int, kind: int, depth: int) -> int:
    """Past one value of compact type ``kind`` (a field's, or an element's)."""
    if kind in (1, 2):  # a field's bool: in its type
        return pos
    if kind == 3:
        return pos + 1
    if kind in (4, 5, 6):
        return _varint(buf, pos)[1]
    if kind == 7:
        return pos + 8
    if kind == 8:
        length, pos = _varint(buf, pos)
        if pos + length > len(buf):
            raise IndexError("a binary cut short")
        return pos + length
    if kind in (9, 10):  # list, set
        head = buf[pos]
        pos += 1
        count, element = head >> 4, head & 0x0F
        if count == 15:
            count, pos = _varint(buf, pos)
        for _ in range(count):
            pos = pos + 1 if element in (1, 2) else _skip(buf, pos, element, depth + 1)
        return pos
    if kind == 11:  # map
        count, pos = _varint(buf, pos)
        if count:
            types = buf[pos]
            pos += 1
            for _ in range(count):
                pos = _skip(buf, pos, types >> 4, depth + 1)
                pos = _skip(buf, pos, types & 0x0F, depth + 1)
        return pos
    if kind == 12:
        return _compact(buf, pos, depth + 1)[1]
    raise ValueError(f"unknown Thrift compact type {kind}")


def _present(schema: List[str], names: Dict[str, str], what: str) -> List[str]:
    """The file's columns a listing reads; those the manifest names must be in the file."""
    wanted = [names[c] for c in WANTED if c in names]
    missing = [c for c in wanted if c not in schema]
    if missing:
        raise PermanentError(f"{what}: no column {', '.join(missing)}, which the manifest's"
                             " fileSchema names")
    return wanted


def _batch_rows(batch: pa.RecordBatch, names: Dict[str, str], what: str) -> Iterator[Row]:
    """A batch's rows as Python values; keys and buckets longer than a CSV line refused."""
    columns: List[List[Any]] = []
    for csv_name in WANTED:
        if csv_name not in names:
            columns.append([None] * batch.num_rows)
            continue
        array = batch.column(names[csv_name])
        if csv_name in ("Bucket", "Key"):
            columns.append(_strings(array, csv_name, what))
        elif csv_name == "LastModifiedDate":
            columns.append(_times(array, what))
        else:
            columns.append(array.to_pylist())
    return zip(*columns)  # type: ignore[return-value]


def _text_bytes(array: Any) -> int:
    """The bytes of a text column's values, each repeated value counted each time."""
    if isinstance(array, pa.DictionaryArray):
        lengths = pc.binary_length(array.dictionary).take(array.indices)
    else:
        lengths = pc.binary_length(array)
    return int(pc.sum(lengths).as_py() or 0)


def _strings(array: Any, name: str, what: str) -> List[Optional[str]]:
    """A string column (dictionary-encoded or not), its values no longer than LINE_MAX.

    Of a dictionary-encoded column only the values this batch uses are decoded (pyarrow's
    dictionary grows over a row group), once each, however many rows repeat them.
    """
    used: Any = None
    values = array
    if isinstance(array, pa.DictionaryArray):
        used = pc.unique(array.indices).drop_null()
        values = array.dictionary.take(used)
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
            or pa.types.is_binary(values.type)):
        raise PermanentError(f"{what}: column {name} is not text ({values.type})")
    if len(values):
        longest = pc.max(pc.binary_length(values)).as_py() or 0
        if longest > limits.LINE_MAX:
            raise PermanentError(f"{what}: a {name} longer than {limits.LINE_MAX} bytes")
    if pa.types.is_binary(values.type):
        values = values.cast(pa.string())
    if used is None:
        return list(values.to_pylist())
    texts = dict(zip(used.to_pylist(), values.to_pylist()))
    return [None if i is None else texts[i] for i in array.indices.to_pylist()]


def _times(array: Any, what: str) -> List[Optional[float]]:
    """A timestamp column as POSIX times (milliseconds, or any other unit)."""
    if not pa.types.is_timestamp(array.type):
        raise PermanentError(f"{what}: LastModifiedDate is not a time ({array.type})")
    per_second = _NANOS[array.type.unit]
    return [None if t is None else t / per_second
            for t in array.cast(pa.int64()).to_pylist()]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
