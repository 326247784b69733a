"""How planned trials travel: in chunks of a study's `chunk_size`, families kept whole."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tunefleet_contract.families import families
from tunefleet_contract.messages import TrialSpec

__all__ = ["chunked", "family_chunks"]


T = TypeVar("T")


def chunked(items: Iterator[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def family_chunks(trials: Iterable[TrialSpec], size: int) -> Iterator[list[TrialSpec]]:
    """Chunks of up to `size` trials that never split a family (`tunefleet_contract.families`):
    a worker scores a family with one fit per fold only when it has all of it. A family larger
    than `size` is a chunk of its own."""
    chunk: list[TrialSpec] = []
    for family in families(trials):
        if chunk and len(chunk) + len(family) > size:
            yield chunk
            chunk = []
        chunk.extend(family)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
