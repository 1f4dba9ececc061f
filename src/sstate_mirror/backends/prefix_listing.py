"""Listing an object store's flat key space fast: size estimates and parallel prefix ranges.

Object stores (S3, Google Cloud Storage, Azure Blob) list keys in pages, in key order, one
request after the other. A big mirror is listed faster as several key ranges at once; the
mirror's layout (``hh/hh/NAME`` below the root, and full ``hh/hh`` trees below a few named
directories such as ``universal/``) tells where to cut. The stores differ only in how a
page is fetched, so the cutting, the cost model and the thread pool live here once, for
every object-store backend. Which directory names are hash fan-out levels is
:func:`sstate_mirror.naming.is_hash_directory`'s to say.
"""

from __future__ import annotations

import concurrent.futures
import math
from collections.abc import Iterator, Sequence
from typing import Callable, Dict, Generic, List, Optional, Tuple, TypeVar, cast

from ..naming import is_hash_directory

__all__ = [
    "estimate_from_first_page",
    "list_in_ranges",
    "listing_requests",
    "prefer_probes",
    "range_prefixes",
]

#: A listing record as the store's client gives it (a dict, a blob object, ...).
R = TypeVar("R")


def listing_requests(object_count: int, page_size: int = 1000) -> int:
    """Requests a complete listing of ``object_count`` objects costs (at least one).

    A parallel listing costs one or two more per range, but it only runs where the mirror is
    so large that this is small next to the pages themselves.
    """
    return max(1, math.ceil(object_count / page_size))


def prefer_probes(local_count: int, mirror_estimate: Optional[int], page_size: int = 1000
                  ) -> bool:
    """Whether one metadata request per local file costs fewer requests than a listing.

    ``mirror_estimate`` is the (estimated) number of objects on the mirror, None when unknown;
    then the listing is chosen, because it is always correct and at worst costs pages.
    """
    if mirror_estimate is None:
        return False
    return local_count < listing_requests(mirror_estimate, page_size)


def estimate_from_first_page(count: int, truncated: bool, last_key: str) -> Optional[int]:
    """Estimate a mirror's size from its first listing page (``last_key`` relative to it).

    Paths start with hash fan-out directories (``hh/hh/``) whose names are uniformly spread,
    so the share of that key space the first page covers tells the share of the mirror it
    holds. Returns None when the first key levels are not hex digits.
    """
    if not truncated:
        return count
    digits = ""
    for part in last_key.split("/")[:2]:
        if not is_hash_directory(part):
            break
        digits += part
    if not digits:
        return None
    covered = (int(digits, 16) + 1) / 16 ** len(digits)
    return max(count + 1, int(count / covered))


def range_prefixes(level: str, objects: Sequence[str], prefixes: Sequence[str]) -> List[str]:
    """The prefixes that list everything in ``prefixes`` (the "directories" directly below
    ``level``, as a delimiter listing gives them) as few ranges.

    Hash directories (``3f/``) sharing their first character become one range (``3``):
    16 ranges of 16 directories instead of 256 of one. That is fewer requests (the pages
    are fuller) and on servers whose listing cost grows with the number of keys below the
    prefix it is still a narrow prefix. A character is grouped only when nothing else below
    ``level`` starts with it (``objects``: names of the files directly below ``level``),
    so that no key is listed twice; other directories stay ranges of their own.
    """
    by_char: Dict[str, List[str]] = {}
    others: List[str] = []
    for p in prefixes:
        name = p[len(level):].rstrip("/")
        if is_hash_directory(name):
            by_char.setdefault(name[0], []).append(p)
        else:
            others.append(p)
    taken = {n[:1] for n in objects} | {p[len(level):len(level) + 1] for p in others}
    out: List[str] = []
    for char, group in sorted(by_char.items()):
        if char in taken or len(group) == 1:
            out.extend(group)
        else:
            out.append(level + char)
    return out + others


class RangeLister(Generic[R]):
    """How one store lists a prefix; :func:`list_in_ranges` drives it.

    ``split(prefix)``: the records directly below ``prefix`` and its sub-"directories"
    (a delimiter listing, every page); ``everything(prefix)``: every record below
    ``prefix`` (every page); ``key(record)``: the record's full key. Both listing functions
    raise the project's errors: a failed range fails the whole listing.
    """

    def __init__(self, split: Callable[[str], Tuple[List[R], List[str]]],
                 everything: Callable[[str], List[R]], key: Callable[[R], str]) -> None:
        self.split = split
        self.everything = everything
        self.key = key


def list_in_ranges(base: str, lister: RangeLister[R], workers: int,
                   thread_name: str) -> Iterator[List[R]]:
    """Every record below ``base``, in batches, listed as parallel prefix ranges.

    One range per group of first-level hash directories (see :func:`range_prefixes`), and
    the same one level further down below first-level names that are not a hash fan-out
    level (``universal/``, ``debian-12/`` hold a full ``hh/hh`` tree each). Batches are
    yielded in the caller's thread as ranges complete; any failed range re-raises here.
    """
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                 thread_name_prefix=thread_name)
    pending: Dict[concurrent.futures.Future[object], Tuple[str, str]] = {}

    def submit_level(objects: List[R], prefixes: List[str], level: str,
                     split_others: bool) -> None:
        names = [lister.key(o)[len(level):] for o in objects]
        for p in range_prefixes(level, names, prefixes):
            name = p[len(level):].rstrip("/")
            if split_others and p.endswith("/") and not is_hash_directory(name):
                pending[pool.submit(lister.split, p)] = ("split", p)
            else:
                pending[pool.submit(lister.everything, p)] = ("range", p)

    try:
        objects, prefixes = lister.split(base)
        yield objects
        submit_level(objects, prefixes, base, split_others=True)
        while pending:
            done, _ = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in done:
                kind, level = pending.pop(fut)
                result: object = fut.result()  # re-raises a failed range: the listing fails
                if kind == "split":
                    sub_objects, sub_prefixes = cast("Tuple[List[R], List[str]]", result)
                    yield sub_objects
                    submit_level(sub_objects, sub_prefixes, level, split_others=False)
                else:
                    yield cast("List[R]", result)
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True)
