"""Storage backends, and the one place that looks at a URL scheme.

``open_backend(url)`` picks the backend for ``s3://``, ``gs://``, ``az://``, ``http(s)://``,
``file://`` or a plain path. Backends are imported lazily so that a command on a directory
never pays for boto3.
"""

from __future__ import annotations

import importlib
import re
from typing import Dict, Optional, Tuple

from ..errors import BackendUnavailable, UsageError
from .base import Backend, BackendOptions, Entry, Properties, redact_url

__all__ = [
    "Backend",
    "BackendOptions",
    "Entry",
    "Properties",
    "open_backend",
    "redact_url",
    "scheme_of",
]

#: scheme -> (module, class). A scheme listed here whose module does not exist yet reads as
#: "not available", never as a local directory named "https:".
_BACKENDS: Dict[str, Tuple[str, str]] = {
    "file": ("local", "LocalBackend"),
    "s3": ("s3", "S3Backend"),
    "http": ("webdav", "WebDAVBackend"),
    "https": ("webdav", "WebDAVBackend"),
    "gs": ("gcs", "GCSBackend"),
    "az": ("azure", "AzureBackend"),
}

#: scheme -> (the extra that installs its client, the client's package name)
_EXTRAS: Dict[str, Tuple[str, str]] = {"gs": ("gcs", "google-cloud-storage"),
                                       "az": ("azure", "azure-storage-blob")}

#: Schemes people type that we do not serve; reject them instead of making a directory.
_OTHER_URL_SCHEMES = {"ftp", "ftps", "sftp", "ssh", "scp", "gcs", "azure", "dav",
                      "davs", "webdav", "webdavs", "rsync", "git", "nfs", "smb", "hf"}

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")


def scheme_of(url: str) -> str:
    """The backend scheme of a target: ``file`` for plain paths."""
    m = _SCHEME_RE.match(url)
    if m is None:
        return "file"
    scheme = m.group(1).lower()
    if scheme in _BACKENDS or scheme in _OTHER_URL_SCHEMES:
        if m.group(2) is None:
            raise UsageError(
                f"malformed URL {redact_url(url)!r}: expected {scheme}://...",
                hint="for a local directory whose name contains ':', write ./" + url,
            )
        return scheme
    return "file"  # e.g. "sstate:zlib..." or "dir:with:colons" is a relative path


def open_backend(url: str, options: Optional[BackendOptions] = None) -> Backend:
    """The backend for ``url`` (not yet contacted: call ``check()`` before relying on it)."""
    scheme = scheme_of(url)
    if scheme not in _BACKENDS:
        raise BackendUnavailable(
            f"unsupported mirror URL scheme {scheme}:// in {redact_url(url)}",
            hint="use a directory path, file://, http://, https://, s3://, gs:// or az://",
        )
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
