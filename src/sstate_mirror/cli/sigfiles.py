"""Signature files named on the command line: a local file, or one on a mirror by URL.

``dumpsig`` and ``diffsigs`` take a ``.siginfo`` wherever it lies. A URL is split into the
mirror (everything up to the last ``/``) and the file name, and read through that mirror's
backend, bounded like every other read. An sstate archive given where a signature file is
expected is named as such, with the file to give instead.
"""

from __future__ import annotations

import argparse
from typing import Optional

from ..backends import open_backend, scheme_of
from ..errors import UsageError
from ..naming import Kind, classify
from ..signatures import read_signature, read_signature_file
from ..signatures.model import Signature
from ..signatures.reader import DEFAULT_LIMITS
from .common import backend_options_from_args


def check_not_archive(name: str) -> None:
    """An sstate archive is not a signature file: say which file to give."""
    if classify(name.rstrip("/").rsplit("/", 1)[-1]) is Kind.ARCHIVE:
        raise UsageError(f"{name} is an sstate archive, not a signature file",
                         hint=f"give its signature file: {name}.siginfo")


def load_signature(name: str, args: Optional[argparse.Namespace] = None) -> Signature:
    """The signature in ``name``: a path, or a URL of a file on a mirror."""
    check_not_archive(name)
    if scheme_of(name, "FILE") == "file":
        return read_signature_file(name)
    base, _, filename = name.rpartition("/")
    if not filename:
        raise UsageError(f"{name!r} names a directory, not a signature file")
    options = backend_options_from_args(args) if args is not None else None
    with open_backend(base, options) as mirror:
        data = mirror.read(filename, DEFAULT_LIMITS.max_compressed)
    return read_signature(data, source=name)
