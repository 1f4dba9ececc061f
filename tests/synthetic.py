"""benchmarks/gencache.py as a module, for tests that need realistic listings."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def gencache() -> ModuleType:
    """The generator module (loaded once; dataclasses look their module up by name)."""
    if "gencache" in sys.modules:
        return sys.modules["gencache"]
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "gencache.py"
    spec = importlib.util.spec_from_file_location("gencache", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gencache"] = module
    spec.loader.exec_module(module)
    return module
