"""Storage backends, and the one place that looks at a URL scheme.

``open_backend(url)`` picks the backend for a URL whose scheme is in the table below, or for a
plain path. Backends are imported lazily so that a command on a directory never pays for boto3.

Module layout. :mod:`.base` is the interface every backend implements (list, stat, open,
put, delete, touch; ``check`` then ``settle``, after which ``properties`` never change),
checked by one contract suite. One module per store: :mod:`.local`, :mod:`.s3` (with
:mod:`.s3_config`, and :mod:`.s3_inventory` reading a bucket's S3 Inventory reports as its
listing, their ORC and Parquet files with :mod:`.s3_inventory_columnar`), :mod:`.gcs` and
:mod:`.azure` (sharing :mod:`.cloud`, and :mod:`.prefix_listing` for parallel listings,
whose idea of the ``hh/hh`` layout comes from :mod:`sstate_mirror.naming`), :mod:`.webdav`.
Their byte streams are the one adapter of :mod:`sstate_mirror.chunkstream` (:mod:`.streams`
for the object stores). The WebDAV backend is split by job: a request's URL is built in
:mod:`.davpaths` and its XML body in :mod:`.davxml`; it is sent by :mod:`.davtransport`
(httpx, or the pipeline of :mod:`.httppipe`), retried by the one policy of
:mod:`sstate_mirror.retry`, its failure classified and worded in :mod:`.daverrors`, its body
streamed by :mod:`.davio` and parsed by :mod:`.davxml`; credentials come from
:mod:`.davauth`; listing, pruning and touching are :mod:`.davlisting`, :mod:`.davprune` and
:mod:`.davtouch`. Retries, fallbacks and warnings reach the user through
:mod:`sstate_mirror.events`; no backend prints.
"""

from __future__ import annotations

import difflib
import importlib
import re
from typing import Dict, Optional, Tuple

from ..errors import BackendUnavailable, UsageError
from .base import Backend, BackendOptions, Entry, Inventory, Properties, redact_url

__all__ = [
    "SUPPORTED_SCHEMES",
    "Backend",
    "BackendOptions",
    "Entry",
    "Inventory",
    "Properties",
    "check_inventory_location",
    "open_backend",
    "open_inventory",
    "redact_url",
    "scheme_of",
    "supported_locations",
]

#: The one table of supported schemes: scheme -> (module, class). A scheme listed here whose
#: module does not exist yet reads as "not available", never as a local directory named
#: "https:". Everything else (help texts, the list in error messages, did-you-mean) derives
#: from it, so adding a backend is one line here.
_BACKENDS: Dict[str, Tuple[str, str]] = {
    "file": ("local", "LocalBackend"),
    "s3": ("s3", "S3Backend"),
    "http": ("webdav", "WebDAVBackend"),
    "https": ("webdav", "WebDAVBackend"),
    "gs": ("gcs", "GCSBackend"),
    "az": ("azure", "AzureBackend"),
}

#: The supported URL schemes, in the order messages list them.
SUPPORTED_SCHEMES: Tuple[str, ...] = tuple(_BACKENDS)

#: scheme -> (the extra that installs its client, the client's package name)
_EXTRAS: Dict[str, Tuple[str, str]] = {"gs": ("gcs", "google-cloud-storage"),
                                       "az": ("azure", "azure-storage-blob")}

_URL_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCHEME_COLON_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_SCHEME_SLASHES_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)//")


def supported_locations() -> str:
    """'a directory, file://, http://, https:// or s3://' (for help and messages)."""
    urls = [f"{s}://" for s in SUPPORTED_SCHEMES]
    return "a directory, " + ", ".join(urls[:-1]) + " or " + urls[-1]


#: Names people give WebDAV URLs; the server speaks HTTP, so they mean http(s)://.
_ALIASES = {"dav": "http", "webdav": "http", "davs": "https", "webdavs": "https"}


def _did_you_mean(scheme: str) -> str:
    """A supported scheme one typo away (a letter wrong, missing, extra or swapped)."""
    close = [_ALIASES[scheme]] if scheme in _ALIASES else [
        s for s in difflib.get_close_matches(scheme, SUPPORTED_SCHEMES, n=3, cutoff=0.4)
        if _one_typo_apart(scheme, s)]
    return f"did you mean {close[0]}://? " if close else ""


def _one_typo_apart(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def scheme_of(url: str, what: str = "TARGET") -> str:
    """The backend scheme of a location: ``file`` for plain paths.

    Decided from the text alone, before anything is read or written. An empty location, a
    ``WORD://`` URL whose scheme is not supported, a supported scheme without ``//``
    (``s3:bucket``; ``file:/path`` is a valid file URL) and a path that starts with a
    scheme's name and ``//`` (``s3//bucket``: nobody means a directory named ``s3`` there) are
    usage errors that quote what was typed. ``what`` names the argument in messages.
    """
    if not url.strip():
        raise UsageError(f"{what} is empty",
                         hint="is a variable unset? give a directory or a URL"
                              f" ({supported_locations()})")
    m = _URL_RE.match(url)
    if m is not None:
        scheme = m.group(1).lower()
        if scheme not in _BACKENDS:
            raise UsageError(
                f"{what} {url!r}: unsupported URL scheme {m.group(1)}://",
                hint=f"{_did_you_mean(scheme)}supported: {supported_locations()}")
        return scheme
    m = _SCHEME_SLASHES_RE.match(url)
    if m is not None and m.group(1).lower() in _BACKENDS:
        scheme = m.group(1).lower()
        raise UsageError(
            f"{what} {url!r} is not a valid URL: ':' is missing after {m.group(1)}",
            hint=f"write {scheme}://{url[m.end():]} (or ./{url} for a local directory)")
    m = _SCHEME_COLON_RE.match(url)
    if m is not None and m.group(1).lower() in _BACKENDS:
        scheme = m.group(1).lower()
        if scheme == "file" and url[m.end():].startswith("/"):
            return "file"  # file:/srv/x (RFC 8089)
        raise UsageError(
            f"{what} {url!r} is not a valid URL: expected {scheme}://...",
            hint=f"for a local directory whose name contains ':', write ./{url}")
    return "file"  # e.g. "sstate:zlib..." or "dir:with:colons" is a relative path


def open_backend(url: str, options: Optional[BackendOptions] = None) -> Backend:
    """The backend for ``url`` (not yet contacted: call ``check()`` before relying on it)."""
    scheme = scheme_of(url)
    module_name, class_name = _BACKENDS[scheme]
    try:
        module = importlib.import_module(f"{__name__}.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"{__name__}.{module_name}":
            raise BackendUnavailable(
                f"the {scheme}:// backend is not available yet in this version"
                f" of sstate-mirror ({redact_url(url)})"
            ) from None
        if scheme in _EXTRAS:
            extra, package = _EXTRAS[scheme]
            raise BackendUnavailable(
                f"the {scheme}:// backend needs the Python package {package}, which is missing",
                hint=f"pip install 'sstate-mirror[{extra}]'",
            ) from exc
        raise BackendUnavailable(
            f"the {scheme}:// backend needs the Python package {exc.name!r}, which is missing",
            hint=f"pip install {exc.name}",
        ) from exc
    cls = getattr(module, class_name)
    if scheme == "file":
        backend: Backend = cls(url)
    else:
        backend = cls(url, options or BackendOptions())
    return backend


def check_inventory_location(location: str, target: str) -> None:
    """Refuse an ``--inventory`` that cannot list the mirror at ``target``; it needs neither
    opened, so a command checks it before it touches anything."""
    if scheme_of(location, "--inventory") != "s3" or scheme_of(target) != "s3":
        raise UsageError(f"--inventory {location}: S3 Inventory reports (s3://) list s3://"
                         f" mirrors only, not {target}")


def open_inventory(location: str, target: Backend,
                   options: Optional[BackendOptions] = None) -> Inventory:
    """The S3 Inventory report at ``location`` as a listing of ``target`` (an s3:// mirror).

    Its manifest is read (and checked) here; its data files when it is listed.
    """
    check_inventory_location(location, target.url)
    from .s3 import S3Backend
    from .s3_inventory import open_inventory as open_report

    if not isinstance(target, S3Backend):
        raise UsageError(f"--inventory lists s3:// mirrors only, not {target.url}")
    return open_report(target, location, options)
