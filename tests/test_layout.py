"""The module layout of the backends is described in one paragraph (the package docstring),
and that paragraph names every module, so a newcomer finds where a request is built, sent,
retried and parsed."""

from __future__ import annotations

from pathlib import Path

import sstate_mirror.backends as backends


def test_the_backends_docstring_names_every_module() -> None:
    doc = backends.__doc__ or ""
    modules = sorted(p.stem for p in Path(backends.__file__).parent.glob("*.py")
                     if p.stem != "__init__")
    assert [m for m in modules if f":mod:`.{m}`" not in doc] == []
    for job in ("built", "sent", "retried", "parsed"):
        assert job in doc
