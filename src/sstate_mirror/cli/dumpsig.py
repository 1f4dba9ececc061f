"""``sstate-mirror dumpsig FILE``: print a signature file the way ``bitbake-dumpsig`` does.

FILE is a path or the file's URL on a mirror (``https://host/sstate/aa/bb/sstate:...siginfo``).
The same lines bitbake prints (sets in a stable sorted order), so a dump can be compared with
bitbake's own. ``--json`` prints the signature itself, with the recomputed hashes, for tools.
A recorded hash that cannot be recomputed from the file's content is reported on stderr.
"""

from __future__ import annotations

import argparse
from typing import Any, List

from ..errors import EXIT_OK
from ..signatures import check_hashes
from ..signatures.dump import dump_text
from .common import add_backend_options, add_command
from .sigfiles import load_signature
from .ui import UI


def register(subparsers: Any, parents: List[argparse.ArgumentParser]) -> None:
    parser = add_command(
        subparsers, parents, "dumpsig", run, target=None,
        help="print a .siginfo/.sigdata file like bitbake-dumpsig",
        description="Print the content of a signature file (.siginfo in an sstate cache, or a"
        " stamp's .sigdata.<hash>) the way bitbake-dumpsig does. Legacy (pickle) files are read"
        " without running any code in them.",
    )
    parser.add_argument("file", metavar="FILE",
                        help="the signature file: a path, or its URL on a mirror")
    add_backend_options(parser)


def run(args: argparse.Namespace, ui: UI) -> int:
    sig = load_signature(args.file, args)
    check = check_hashes(sig)
    if not check.basehash_ok:
        ui.warn(f"{args.file}: recorded basehash {sig.basehash} does not match the content"
                f" ({check.computed_basehash})")
    if check.taskhash_ok is False:
        ui.warn(f"{args.file}: recorded taskhash {sig.taskhash} does not match the content"
                f" ({check.computed_taskhash})")
    if ui.json_mode:
        data = sig.to_json()
        data["file"] = args.file
        data["computed_basehash"] = check.computed_basehash
        data["computed_taskhash"] = check.computed_taskhash
        data["hashes_match"] = check.ok
        ui.emit_json(data)
    else:
        ui.result(dump_text(sig))
    return EXIT_OK
