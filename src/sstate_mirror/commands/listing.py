"""Listing a backend into classified artifacts (the input of every plan)."""

from __future__ import annotations

from typing import Callable, List, Optional

from ..backends.base import Backend
from ..naming import Artifact, make_artifact
from ..transfer import Progress


def list_artifacts(
    backend: Backend,
    *,
    on_skip: Optional[Callable[[str, str], None]] = None,
    progress: Optional[Progress] = None,
) -> List[Artifact]:
    """Every file of ``backend`` as an :class:`Artifact`.

    A listing that fails raises; callers never see a partial list as if it were complete.
    """
    progress = progress or Progress()
    progress.phase(f"listing {backend.url}", 0)
    artifacts: List[Artifact] = []
    for entry in backend.list(on_skip=on_skip):
        artifacts.append(make_artifact(entry.path, entry.size, entry.mtime, entry.atime))
        progress.advance(1, entry.size)
    progress.done()
    return artifacts
