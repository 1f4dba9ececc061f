"""The Parquet and ORC data files of an S3 Inventory report, read with pyarrow in bounded batches.

pyarrow is the one well-kept reader of both formats; it is an optional dependency
(``sstate-mirror[inventory]``), imported only here and only when a report in one of them is
read. Both formats keep their index at the end of the file, so a data file is first copied
to a temporary file (its size and MD5 checked against the manifest by the caller) and read
from there, never held in memory.

What pyarrow decodes is bounded before it is decoded, by the limits of
:mod:`.s3_inventory` (the CSV reader's, in one place): the footer by the manifest's size
limit, the rows by what a row is charged against the file's expansion budget, and each
column's decompressed bytes by the same ratio to its compressed bytes as a gzip'd CSV file.
Then only the columns a listing needs are read, a batch of rows at a time; a Parquet key
column stays dictionary-encoded, so a value repeated a million times is held once.

Unlike CSV's, the keys of these formats are not URL-encoded: they are used as they are.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, Dict, List, Optional, Tuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.orc as paorc
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
            read_dictionary=[names[c] for c in ("Bucket", "Key")],
            thrift_string_size_limit=limits.MANIFEST_MAX,
            thrift_container_size_limit=limits.MANIFEST_MAX // 16)
        columns = _present(parquet.schema_arrow.names, names, what)
        meta = parquet.metadata
        index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
        rows = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            rows += group.num_rows
            for name in columns:
                chunk = group.column(index[name])
                unpacked = chunk.total_uncompressed_size
                if unpacked > limits.EXPANSION_MAX * chunk.total_compressed_size \
                        + limits.EXPANSION_FLOOR:
                    raise PermanentError(f"{what}: column {name} of row group {g} expands to"
                                         f" more than {limits.EXPANSION_MAX} times its size"
                                         " (not an inventory)")
                budget -= unpacked
            budget -= limits.ROW_MIN * group.num_rows
            if budget < 0:
                raise PermanentError(f"{what}: {rows} rows and their columns expand to more"
                                     f" than {limits.EXPANSION_MAX} times its size (not an"
                                     " inventory)")
        batches = parquet.iter_batches(batch_size=limits.BATCH_ROWS, columns=columns,
                                       use_threads=False)
        for batch in batches:
            yield from _batch_rows(batch, names, what)
    except (pa.ArrowException, OSError) as exc:
        raise PermanentError(f"{what}: not a readable Parquet file ({_short(exc)})") from exc


def orc_rows(path: str, size: int, names: Dict[str, str], what: str) -> Iterator[Row]:
    """The rows of an ORC data file of ``size`` bytes, a batch of rows at a time."""
    budget = limits.EXPANSION_MAX * size + limits.EXPANSION_FLOOR
    try:
        orc = paorc.ORCFile(path)
        tail = orc.file_footer_length + orc.stripe_statistics_length
        if tail > limits.MANIFEST_MAX:
            raise PermanentError(f"{what}: a footer of {tail} bytes (more than"
                                 f" {limits.MANIFEST_MAX})")
        if orc.compression_size > limits.BLOCK_MAX:
            raise PermanentError(f"{what}: compression blocks of {orc.compression_size}"
                                 f" bytes (more than {limits.BLOCK_MAX})")
        if limits.ROW_MIN * orc.nrows > budget:
            raise PermanentError(f"{what}: {orc.nrows} rows expand to more than"
                                 f" {limits.EXPANSION_MAX} times its size (not an inventory)")
        columns = _present(orc.schema.names, names, what)
        import pyarrow.dataset as pads  # ~20 MiB more: only for ORC, the one batch reader

        scan = pads.dataset(path, format="orc").to_batches(
            columns=columns, batch_size=limits.BATCH_ROWS, use_threads=False)
        for batch in scan:
            budget -= batch.nbytes
            if budget < 0:
                raise PermanentError(f"{what}: expands to more than {limits.EXPANSION_MAX}"
                                     " times its size (not an inventory)")
            yield from _batch_rows(batch, names, what)
    except (pa.ArrowException, OSError) as exc:
        raise PermanentError(f"{what}: not a readable ORC file ({_short(exc)})") from exc


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
    """A timestamp column as POSIX times (Parquet's milliseconds, ORC's nanoseconds)."""
    if not pa.types.is_timestamp(array.type):
        raise PermanentError(f"{what}: LastModifiedDate is not a time ({array.type})")
    per_second = _NANOS[array.type.unit]
    return [None if t is None else t / per_second
            for t in array.cast(pa.int64()).to_pylist()]


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
