"""An S3 Inventory report as the listing of an S3 mirror: one GET per data file, no LIST.

S3 Inventory writes, daily or weekly, every object of a bucket (or of a prefix) into gzip'd
CSV, ORC or Parquet data files (CSV and Parquet are read here), described by a
``manifest.json`` under
``DEST-PREFIX/SOURCE-BUCKET/CONFIG-ID/YYYY-MM-DDTHH-MMZ/`` (the time the scan began), with
``manifest.checksum`` (the manifest's MD5). The manifest names the format, the columns
(``fileSchema``), and each data file's key, size and MD5. A mirror of ten million objects is
ten thousand ListObjectsV2 requests; its inventory is a few dozen GETs.

An :class:`Inventory` yields the same :class:`~.base.Entry` objects as
:meth:`~.s3.S3Backend.list`, so the commands build the same catalog from it and never know
where it came from. What it reads is bounded before it is decoded: the manifest and its
checksum by size, every data file by the size the manifest gives (and its MD5, checked as it
streams: a listing whose file does not match fails as a whole), its decompressed bytes by a
ratio to the compressed ones (a gzip bomb), each CSV line by length. The limits below are
the one place for them: :mod:`.s3_inventory_columnar` reads Parquet within the same.

Hand-written because no library reads inventory manifests; what CSV needs (JSON, gzip, CSV,
MD5) is the standard library's. Parquet needs pyarrow, an optional dependency (the
``inventory`` extra, a wheel of some 40 MiB): without it such a report is refused with a
one-line error that names the extra. ORC reports are refused, with the formats to choose
instead: pyarrow's ORC reader decodes a batch of rows whole (a dictionary value once per
row, a string of any length) before anything can count it, and exposes none of the
lengths that would bound it beforehand: a 700 KiB ORC file of long repeated keys took
5.4 GiB before the budget below refused it.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json
import re
import tempfile
import urllib.parse
import zlib
from collections.abc import Iterator
from typing import IO, Any, Dict, List, NamedTuple, Optional

from ..chunkstream import ChunkStream
from ..errors import NotFoundError, PermanentError, UsageError
from .base import (
    BackendOptions,
    Entry,
    EntryBatch,
    SkipCallback,
    check_relative_path,
    entry_batches,
    listed_size,
)
from .s3 import S3Backend
from .s3_config import parse_s3_url
from .streams import PIECE

__all__ = ["Inventory", "open_inventory"]

#: A manifest lists one entry (~200 bytes) per data file: 16 MiB is ~80,000 data files.
MANIFEST_MAX = 16 << 20
#: ``manifest.checksum`` holds 32 hex digits (and perhaps a newline).
CHECKSUM_MAX = 1024
#: A CSV line: a key (1,024 bytes, three times that URL-encoded) and the other fields.
LINE_MAX = 64 << 10
#: Decompressed bytes per compressed byte of a data file (CSV of keys compresses ~10:1;
#: a gzip bomb 1000:1), with a floor for tiny files. Parquet: the same ratio for the whole
#: file and for each column of a row group.
EXPANSION_MAX = 100
EXPANSION_FLOOR = 1 << 20
#: Parquet: what a row is charged at least against the budget above (its key, like
#: a CSV line's, is tens of bytes), so a few bytes cannot declare millions of rows.
ROW_MIN = 32
#: Parquet: rows decoded at a time (a few MiB of keys), and fewer where one value of
#: a Parquet dictionary page may stand for many rows: at most BATCH_BYTES of text a batch.
BATCH_ROWS = 10_000
BATCH_BYTES = 16 << 20
#: Parquet: the largest page header read (its statistics hold a page's least and greatest
#: key).
PAGE_HEADER_MAX = 64 << 10
#: The columns a listing needs; the manifest's ``fileSchema`` must name them.
REQUIRED = ("Bucket", "Key", "Size", "LastModifiedDate")
#: The formats of S3 Inventory's that are read (not ORC: see :meth:`Inventory._manifest`),
#: and the extra whose pyarrow reads Parquet.
FORMATS = ("CSV", "Parquet")
EXTRA = "sstate-mirror[inventory]"

_STAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d)-(\d\d)Z$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")


class DataFile(NamedTuple):
    key: str
    size: int
    md5: Optional[str]


class Inventory:
    """The newest (or a given) inventory report of an S3 mirror, read as its listing.

    ``created`` is when the report's scan began (the earlier of the manifest's
    ``creationTimestamp`` and its folder's time): objects written or re-dated after it may be
    missing from the report or listed with their former size and time.
    """

    def __init__(self, mirror: S3Backend, location: str,
                 options: Optional[BackendOptions] = None) -> None:
        self.mirror = mirror
        bucket, key = parse_s3_url(location)
        self._store = S3Backend(f"s3://{bucket}", options or mirror.options)
        self.bucket = bucket
        self.manifest_key = key if key.endswith("manifest.json") else self._newest(key, location)
        self.url = f"s3://{bucket}/{self.manifest_key}"
        manifest = self._manifest()
        self.format: str = manifest["fileFormat"]
        self.columns = _columns(manifest, self.url)
        self.files = _files(manifest, self.url)
        self.created = _created(manifest, self.manifest_key, self.url)

    def close(self) -> None:
        self._store.close()

    # -- the manifest ------------------------------------------------------------------

    def _newest(self, prefix: str, location: str) -> str:
        """The manifest of the newest report below a configuration's prefix."""
        base = prefix.strip("/") + "/" if prefix.strip("/") else ""
        _, folders = self._store._split(base)
        stamps = sorted(f for f in (p[len(base):].rstrip("/") for p in folders)
                        if _STAMP.match(f))
        if not stamps:
            raise UsageError(
                f"--inventory {location}: no inventory report below it (expected folders"
                " YYYY-MM-DDTHH-MMZ/ with a manifest.json)",
                hint="give DEST-BUCKET/PREFIX/SOURCE-BUCKET/CONFIG-ID or a manifest.json")
        return f"{base}{stamps[-1]}/manifest.json"

    def _read(self, key: str, limit: int) -> bytes:
        """A whole small object, refused when it is larger than ``limit``."""
        with self._store.open(key) as body:
            data = body.read(limit + 1)
        if len(data) > limit:
            raise PermanentError(f"cannot read the inventory {self.url}: s3://{self.bucket}/"
                                 f"{key} is larger than {limit} bytes", url=self.url)
        return data

    def _manifest(self) -> Dict[str, Any]:
        raw = self._read(self.manifest_key, MANIFEST_MAX)
        checksum_key = self.manifest_key[: -len("manifest.json")] + "manifest.checksum"
        try:
            expected = self._read(checksum_key, CHECKSUM_MAX).decode("ascii", "replace")
        except NotFoundError:
            expected = ""  # a manifest copied without it: its data files are still checked
        expected = expected.strip().lower()
        if expected and expected != hashlib.md5(raw, usedforsecurity=False).hexdigest():
            raise PermanentError(f"cannot read the inventory {self.url}: the manifest does"
                                 " not match manifest.checksum", url=self.url)
        try:
            manifest = json.loads(raw)
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict):
            raise PermanentError(f"cannot read the inventory {self.url}: the manifest is not"
                                 " a JSON object", url=self.url)
        source = manifest.get("sourceBucket")
        if source != self.mirror.bucket:
            raise UsageError(f"--inventory {self.url} is an inventory of bucket {source!r},"
                             f" not of the mirror's bucket {self.mirror.bucket!r}")
        fmt = manifest.get("fileFormat")
        if fmt == "ORC":
            raise UsageError(
                f"--inventory {self.url}: ORC reports are not read (no reader bounds an ORC"
                " value before decoding it: a few KiB of ORC can decode to gigabytes)",
                hint="add an inventory configuration with the CSV or Apache Parquet output"
                     " format")
        if fmt not in FORMATS:
            raise UsageError(f"--inventory {self.url}: the {str(fmt)[:40]!r} format is not one"
                             f" of S3 Inventory's (CSV, ORC, Parquet)")
        if fmt != "CSV":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise UsageError(
                    f"--inventory {self.url}: reading its {fmt} files needs pyarrow, which is"
                    f" not installed (pip install '{EXTRA}')",
                    hint="or add an inventory configuration with the CSV output format",
                ) from None
        return manifest

    # -- the data files ----------------------------------------------------------------

    def list(self, prefix: str = "", on_skip: Optional[SkipCallback] = None) -> Iterator[Entry]:
        """Every object of the report below the mirror's root (and ``prefix``), as entries.

        Keys outside the mirror are passed over; a data file that is corrupt, larger than
        the manifest says or not its MD5 fails the listing (never a shorter one).
        """
        root = self.mirror._root
        if prefix.strip("/"):
            root += check_relative_path(prefix.strip("/")) + "/"
        for data in self.files:
            yield from self._entries(data, root, on_skip)

    def list_batches(self, prefix: str = "", on_skip: Optional[SkipCallback] = None
                     ) -> Iterator[EntryBatch]:
        """What :meth:`list` yields, as batches of files of one directory."""
        return entry_batches(self.list(prefix, on_skip))

    def _entries(self, data: DataFile, root: str,
                 on_skip: Optional[SkipCallback]) -> Iterator[Entry]:
        what = f"cannot read the inventory {self.url}: s3://{self.bucket}/{data.key}"
        if self.format == "CSV":
            yield from self._csv_entries(data, root, on_skip, what)
            return
        from . import s3_inventory_columnar as columnar

        reader = columnar.parquet_rows
        names = {_csv_name(c): c for c in self.columns}
        with tempfile.NamedTemporaryFile(prefix="sstate-mirror-inventory-") as copy:
            with self._store.open(data.key) as body:
                checked = _Checked(body, data, what)
                while True:
                    chunk = checked.read(PIECE)
                    if not chunk:
                        break
                    copy.write(chunk)
            copy.flush()
            versions = "IsLatest" in names  # a report of all versions: current ones count
            for bucket, key, size, mtime, latest, marker in reader(copy.name, data.size,
                                                                    names, what):
                if bucket != self.mirror.bucket or (versions and latest is not True) or marker:
                    continue
                if key is None or mtime is None:
                    raise PermanentError(f"{what}: a row without a key or LastModifiedDate")
                rel = self.mirror.mirror_path(key, on_skip) if key.startswith(root) else None
                if rel is None:
                    continue
                yield Entry(rel, listed_size(self.url, rel, size), mtime)

    def _csv_entries(self, data: DataFile, root: str, on_skip: Optional[SkipCallback],
                     what: str) -> Iterator[Entry]:
        col = {name: i for i, name in enumerate(self.columns)}
        bucket_col, key_col = col["Bucket"], col["Key"]
        size_col, time_col = col["Size"], col["LastModifiedDate"]
        latest_col, marker_col = col.get("IsLatest"), col.get("IsDeleteMarker")
        width = len(self.columns)
        budget = EXPANSION_MAX * data.size + EXPANSION_FLOOR
        with self._store.open(data.key) as body:
            checked = _Checked(body, data, what)
            try:
                lines = gzip.GzipFile(fileobj=checked, mode="rb")
                while True:
                    line = lines.readline(LINE_MAX + 1)
                    if not line:
                        break
                    budget -= len(line)
                    if len(line) > LINE_MAX:
                        raise PermanentError(f"{what}: a line longer than {LINE_MAX} bytes",
                                             url=self.url)
                    if budget < 0:
                        raise PermanentError(f"{what}: expands to more than {EXPANSION_MAX}"
                                             " times its size (not an inventory)", url=self.url)
                    row = _row(line, width, what)
                    if row is None:
                        continue
                    if row[bucket_col] != self.mirror.bucket or (
                            latest_col is not None and row[latest_col] != "true") or (
                            marker_col is not None and row[marker_col] == "true"):
                        continue
                    key = _unquote_plus(row[key_col])
                    rel = self.mirror.mirror_path(key, on_skip) if key.startswith(root) else None
                    if rel is None:
                        continue
                    yield Entry(rel, _size(row[size_col], self.url, rel),
                                _time(row[time_col], what))
                while checked.read(PIECE):  # the MD5 covers every byte, trailer included
                    pass
            except (OSError, EOFError, zlib.error) as exc:
                raise PermanentError(f"{what}: not a gzip'd CSV file ({exc})",
                                     url=self.url) from exc


class _Checked(ChunkStream):
    """A data file's body, refused past the manifest's size, and at its end unless it has
    exactly that size and MD5."""

    def __init__(self, body: IO[bytes], data: DataFile, what: str) -> None:
        super().__init__(())
        self._body, self._data, self._what = body, data, what
        self._count = 0
        self._md5 = hashlib.md5(usedforsecurity=False)

    def next_chunk(self) -> Optional[bytes]:
        chunk = self._body.read(PIECE)
        if not chunk:
            if self._count != self._data.size:
                raise PermanentError(f"{self._what}: {self._count} bytes, the manifest says"
                                     f" {self._data.size}")
            if self._data.md5 is not None and self._md5.hexdigest() != self._data.md5:
                raise PermanentError(f"{self._what}: its MD5 is not the manifest's")
            return None
        self._count += len(chunk)
        if self._count > self._data.size:
            raise PermanentError(f"{self._what}: larger than the manifest's {self._data.size}"
                                 " bytes")
        self._md5.update(chunk)
        return chunk


def _row(line: bytes, width: int, what: str) -> Optional[List[str]]:
    """One CSV record (None for an empty line); every field is quoted, none spans lines."""
    try:
        text = line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise PermanentError(f"{what}: a line is not UTF-8") from None
    if not text:
        return None
    try:
        row = next(csv.reader((text,), strict=True))
    except (csv.Error, StopIteration):
        raise PermanentError(f"{what}: a line is not CSV") from None
    if len(row) != width:
        raise PermanentError(f"{what}: a line has {len(row)} fields, the manifest's fileSchema"
                             f" {width}")
    return row


#: The escapes of a mirror's keys (``/``, and ``:``/``+`` in every sstate name), decoded with
#: ``str.replace``; any other left over (``%25`` included) goes to the library.
_COMMON = tuple((f"%{ord(c):02X}", c) for c in "/:+,=~@ ")


def _unquote_plus(text: str) -> str:
    """:func:`urllib.parse.unquote_plus`, several times faster on a mirror's keys."""
    plain = text.replace("+", " ")
    if "%" not in plain:
        return plain
    for escape, char in _COMMON:
        plain = plain.replace(escape, char)
    return plain if "%" not in plain else urllib.parse.unquote_plus(text)


def _size(value: str, url: str, path: str) -> int:
    try:
        size: Any = int(value)
    except ValueError:
        size = value
    return listed_size(url, path, size)


def _time(value: str, what: str) -> float:
    """``LastModifiedDate``: ISO 8601 in UTC (``2016-11-06T21:32:50.000Z``)."""
    try:
        when = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise PermanentError(f"{what}: LastModifiedDate {value[:40]!r} is not a time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


#: A column of ``fileSchema``: Parquet's ``required binary key (UTF8);``.
_PARQUET_COLUMN = re.compile(r"(?:required|optional|repeated)\s+\w+\s+(\w+)")


def _csv_name(column: str) -> str:
    """The CSV name of a Parquet column: ``last_modified_date`` is
    ``LastModifiedDate``, ``e_tag`` ``ETag``."""
    return "".join(part[:1].upper() + part[1:] for part in column.split("_"))


def _columns(manifest: Dict[str, Any], url: str) -> List[str]:
    """The data files' columns as the manifest names them (the CSV names for CSV)."""
    schema = manifest.get("fileSchema")
    if not isinstance(schema, str):
        raise PermanentError(f"cannot read the inventory {url}: the manifest has no fileSchema",
                             url=url)
    fmt = manifest.get("fileFormat")
    if fmt == "Parquet":
        columns = _PARQUET_COLUMN.findall(schema)
    else:
        columns = [c.strip() for c in schema.split(",")]
    names = columns if fmt == "CSV" else [_csv_name(c) for c in columns]
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise UsageError(f"--inventory {url} lacks the field(s) {', '.join(missing)}: a listing"
                         " needs each object's size and last modified date",
                         hint="add Size and Last modified to the inventory configuration's"
                              " additional fields")
    return columns


def _files(manifest: Dict[str, Any], url: str) -> List[DataFile]:
    files = manifest.get("files")
    if not isinstance(files, list):
        raise PermanentError(f"cannot read the inventory {url}: the manifest lists no files",
                             url=url)
    out: List[DataFile] = []
    for f in files:
        key = f.get("key") if isinstance(f, dict) else None
        size = f.get("size") if isinstance(f, dict) else None
        md5 = f.get("MD5checksum") if isinstance(f, dict) else None
        if (not isinstance(key, str) or isinstance(size, bool) or not isinstance(size, int)
                or size < 0 or (md5 is not None and not (isinstance(md5, str)
                                                         and _MD5.match(md5.lower())))):
            raise PermanentError(f"cannot read the inventory {url}: the manifest lists a file"
                                 " without a usable key, size or MD5checksum", url=url)
        out.append(DataFile(key, size, md5.lower() if md5 else None))
    return out


def _created(manifest: Dict[str, Any], manifest_key: str, url: str) -> float:
    """When the report's scan began: the earlier of the two times the report gives."""
    times: List[float] = []
    stamp = _STAMP.match(manifest_key.rsplit("/", 2)[-2] if "/" in manifest_key else "")
    if stamp:
        y, mo, d, h, mi = map(int, stamp.groups())
        times.append(dt.datetime(y, mo, d, h, mi, tzinfo=dt.timezone.utc).timestamp())
    created = manifest.get("creationTimestamp")
    if re.fullmatch(r"[0-9]{1,20}", str(created)):
        times.append(int(str(created)) / 1000)
    if not times:
        raise PermanentError(f"cannot read the inventory {url}: the manifest says not when it"
                             " was made (no creationTimestamp)", url=url)
    return min(times)


def open_inventory(mirror: S3Backend, location: str,
                   options: Optional[BackendOptions] = None) -> Inventory:
    """The inventory report at ``location`` (a manifest.json, or the prefix of a
    configuration's reports: the newest one) of ``mirror``'s bucket, its manifest read."""
    return Inventory(mirror, location, options)
