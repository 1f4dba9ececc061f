"""Read a signature file safely: zstd-compressed JSON (bitbake >= 2.0) or a legacy pickle.

Signature files come from mirrors shared by many builds, so they are untrusted input. Reading
one must never run code (pickles go through :mod:`.safepickle`), never exhaust memory (bytes
and structure are capped per file by :class:`Limits`, and files are decoded on
:data:`~.bounds.DECODE_THREADS` threads of the process) and never fail with anything but
:class:`~sstate_mirror.errors.SignatureError` naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple, Union

from ..errors import SignatureError
from .bounds import DECODER, StructureError, check_json_structure
from .model import Encoding, NameCollection, Signature, VarValue
from .safepickle import PickleLimitError, UnsafePickleError, loads_plain
from .zstdframes import ZstdFormatError, ZstdLimitError, decompress_frames, is_zstd

MiB = 1024 * 1024

#: Old key names (bitbake <= 1.52) and the names bitbake uses since 2.0.
KEY_RENAMES = {"basewhitelist": "basehash_ignore_vars", "taskwhitelist": "taskhash_ignore_tasks"}

#: The JSON object bitbake writes for a Python set.
SET_KEY = "_set_object"


class SignatureLimitError(SignatureError):
    """The file goes past a cap of :class:`Limits`: refused unread, not judged malformed
    (``verify`` reports it as a warning that ``--fix`` never deletes for)."""


@dataclass(frozen=True)
class Limits:
    """Caps for one file, by bytes and by structure.

    Real signature files are a few KiB to tens of KiB: the largest in the project's test data
    (written by bitbake 2.18 and 1.52) is 38 KiB on disk (a legacy pickle), 59 KiB of JSON
    after decompression, with about 2,400 pickle opcodes or 4,000 JSON values, nested 4
    deep. The caps leave a margin of 50 times and more, and bound what one file may cost
    while it is read (see docs/reliability.md): bytes in flight, then the objects built.
    """

    max_compressed: int = 2 * MiB
    """Bytes of the file as stored (a legacy pickle is not compressed)."""
    max_decompressed: int = 4 * MiB
    """Bytes of JSON after zstd decompression."""
    max_objects: int = 200_000
    """JSON values, or pickle opcodes (each builds at most one object)."""
    max_depth: int = 32
    """Nesting of JSON arrays and objects."""


DEFAULT_LIMITS = Limits()


def read_signature_file(path: Union[str, os.PathLike[str]], limits: Limits = DEFAULT_LIMITS
                        ) -> Signature:
    """Read and parse the signature file at ``path``."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            data = f.read(limits.max_compressed + 1)
    except OSError as exc:
        raise SignatureError(f"{name}: cannot read signature file: {exc.strerror or exc}") from exc
    return read_signature(data, source=name, limits=limits)


def read_signature(data: bytes, source: str = "<bytes>", limits: Limits = DEFAULT_LIMITS
                   ) -> Signature:
    """Parse the bytes of a ``.siginfo`` / ``.sigdata`` file into a :class:`Signature`."""
    return DECODER.run(_decode_signature, data, source, limits)


def _decode_signature(data: bytes, source: str, limits: Limits) -> Signature:
    raw, encoding = decode_raw(data, source, limits)  # lives until the model is built
    return signature_from_dict(raw, encoding, source)


def decode_raw(data: bytes, source: str = "<bytes>", limits: Limits = DEFAULT_LIMITS
               ) -> Tuple[Dict[str, Any], Encoding]:
    """Decode the file into bitbake's dict (key renames applied) and say how it was stored.

    Callers that run in parallel decode on :data:`~.bounds.DECODER` (as
    :func:`read_signature` does).
    """
    if len(data) > limits.max_compressed:
        raise SignatureLimitError(
            f"{source}: signature file is larger than the limit of {limits.max_compressed} bytes")
    if not data:
        raise SignatureError(f"{source}: empty signature file")
    if data[0] == 0x80:
        raw = _load_pickle(data, source, limits)
        encoding = Encoding.PICKLE
    elif is_zstd(data):
        raw = _load_zstd_json(data, source, limits)
        encoding = Encoding.ZSTD_JSON
    else:
        raise SignatureError(
            f"{source}: not a signature file (neither zstd-compressed JSON nor a pickle)",
            hint="pass a .siginfo file or a stamp's .sigdata.<hash> file")
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise SignatureError(f"{source}: signature data is not a mapping of names")
    for old, new in KEY_RENAMES.items():
        if old in raw:
            raw[new] = raw.pop(old)
    return raw, encoding


def _load_pickle(data: bytes, source: str, limits: Limits) -> Any:
    if len(data) < 2 or not 2 <= data[1] <= 5:
        raise SignatureError(f"{source}: unsupported pickle protocol (expected 2 to 5)")
    try:
        return loads_plain(data, limits.max_objects)
    except PickleLimitError as exc:
        raise SignatureLimitError(f"{source}: legacy signature file refused: {exc}") from exc
    except UnsafePickleError as exc:
        raise SignatureError(f"{source}: unsafe legacy signature file refused: {exc}") from exc
    except Exception as exc:  # any malformed pickle: the unpickler raises many kinds
        raise SignatureError(f"{source}: malformed legacy (pickle) signature file: {exc}"
                             ) from exc


def _set_hook(obj: Dict[str, Any]) -> Any:
    if SET_KEY in obj and len(obj) == 1:
        items = obj[SET_KEY]
        if not isinstance(items, list):
            raise ValueError(f"{SET_KEY} holds {type(items).__name__}, not a list")
        return frozenset(items)
    return obj


def _load_zstd_json(data: bytes, source: str, limits: Limits) -> Any:
    try:
        text = decompress_frames(data, limits.max_decompressed)
    except ZstdLimitError as exc:
        raise SignatureLimitError(f"{source}: {exc}") from exc
    except ZstdFormatError as exc:
        raise SignatureError(f"{source}: {exc}") from exc
    try:
        check_json_structure(text, limits.max_objects, limits.max_depth)
    except StructureError as exc:
        raise SignatureLimitError(f"{source}: signature JSON {exc}: not a real signature file"
                             ) from exc
    try:
        decoded = text.decode("utf-8")
        del text  # one copy at a time
        return json.loads(decoded, object_hook=_set_hook)
    except (ValueError, TypeError, RecursionError) as exc:
        # UnicodeDecodeError and json.JSONDecodeError are ValueErrors; TypeError: unhashable
        # set member; RecursionError: absurdly deep nesting.
        raise SignatureError(f"{source}: malformed signature JSON: {exc}") from exc


# --- turning bitbake's dict into the typed model ----------------------------------------


class _Check:
    """Type checks that name the file and the field in their message."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, expected: str, value: Any) -> SignatureError:
        return SignatureError(
            f"{self.source}: field {key!r} should be {expected}, not {type(value).__name__}")

    def string(self, key: str, value: Any, optional: bool = False) -> Optional[str]:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(key, "a string", value)
        return value

    def names(self, key: str, value: Any) -> NameCollection:
        if not isinstance(value, (set, frozenset, list, tuple)):
            raise self.fail(key, "a set or list of names", value)
        if not all(isinstance(v, str) for v in value):
            raise SignatureError(f"{self.source}: field {key!r} holds something not a string")
        return list(value) if isinstance(value, tuple) else value

    def mapping(self, key: str, value: Any) -> Dict[Any, Any]:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise self.fail(key, "a mapping of names", value)
        return value

    def varval(self, key: str, value: Any) -> VarValue:
        if value is None or isinstance(value, (str, int, float, bool)):
            return value  # type: ignore[no-any-return]
        raise self.fail(f"varvals[{key!r}]", "a string, number or null", value)


_REQUIRED = ("basehash_ignore_vars", "taskdeps", "basehash", "gendeps", "varvals")


def signature_from_dict(raw: Dict[str, Any], encoding: Encoding, source: str = "<bytes>"
                        ) -> Signature:
    """Validate bitbake's dict (renames already applied) and build the model."""
    check = _Check(source)
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise SignatureError(f"{source}: not a signature file, missing {', '.join(missing)}")
    gendeps = {k: check.names(f"gendeps[{k!r}]", v)
               for k, v in check.mapping("gendeps", raw["gendeps"]).items()}
    varvals = {k: check.varval(k, v) for k, v in check.mapping("varvals", raw["varvals"]).items()}
    sig = Signature(
        task=check.string("task", raw.get("task"), optional=True),
        basehash_ignore_vars=check.names("basehash_ignore_vars", raw["basehash_ignore_vars"]),
        taskhash_ignore_tasks=check.string(
            "taskhash_ignore_tasks", raw.get("taskhash_ignore_tasks"), optional=True),
        taskdeps=check.names("taskdeps", raw["taskdeps"]),
        basehash=check.string("basehash", raw["basehash"]) or "",
        gendeps=gendeps,
        varvals=varvals,
        encoding=encoding,
        source=source,
    )
    if "runtaskdeps" in raw:
        deps = check.names("runtaskdeps", raw["runtaskdeps"])
        sig.runtaskdeps = list(deps)
    if "runtaskhashes" in raw:
        hashes = check.mapping("runtaskhashes", raw["runtaskhashes"])
        for k, v in hashes.items():
            check.string(f"runtaskhashes[{k!r}]", v)
        sig.runtaskhashes = dict(hashes)
    if "file_checksum_values" in raw:
        sig.file_checksum_values = _checksums(check, raw["file_checksum_values"])
    for key in ("taskhash", "unihash", "taint"):
        if key in raw:
            setattr(sig, key, check.string(key, raw[key], optional=True))
    _check_consistent(sig, source)
    return sig


def _checksums(check: _Check, value: Any) -> List[Tuple[str, Optional[str]]]:
    if isinstance(value, dict):  # very old files: a mapping path -> checksum
        value = [(os.path.basename(k), v) for k, v in value.items()]
    if not isinstance(value, list):
        raise check.fail("file_checksum_values", "a list of [name, checksum] pairs", value)
    pairs: List[Tuple[str, Optional[str]]] = []
    for item in value:
        if (not isinstance(item, (list, tuple)) or len(item) != 2
                or not isinstance(item[0], str) or not isinstance(item[1], (str, type(None)))):
            raise SignatureError(
                f"{check.source}: field 'file_checksum_values' holds a malformed entry")
        pairs.append((item[0], item[1]))
    return pairs


def _check_consistent(sig: Signature, source: str) -> None:
    """Every runtime dependency needs a hash: the hash check and the comparison look it up."""
    if sig.runtaskdeps is not None:
        hashes = sig.runtaskhashes or {}
        missing = [d for d in sig.runtaskdeps if d not in hashes]
        if missing:
            raise SignatureError(
                f"{source}: runtaskdeps lists {missing[0]!r} without a hash in runtaskhashes")
