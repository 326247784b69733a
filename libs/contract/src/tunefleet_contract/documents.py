"""What every message and spec must look like to become a document in any store.

MongoDB 5 and later store keys that start with `$` or contain `.`; FerretDB refuses them, and
query paths misread them on both. Nesting is bounded because a parser recurses: a body nested
100,000 levels deep is a `RecursionError`, not a message. The contract checks both, whatever
the store, so that nothing relies on the test server's refusals.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "DocumentError", "check_document", "finite", "load_json"]

# Deepest legitimate message: spec -> search -> library -> space -> param -> when -> value list.
MAX_DEPTH = 32


class DocumentError(ValueError):
    """The value cannot be a document: the text says where and why."""


def check_key(key: object, where: str) -> None:
    if not isinstance(key, str):
        raise DocumentError(f"{where}: keys must be strings, not {type(key).__name__}")
    if key.startswith("$") or "." in key or "\x00" in key:
        raise DocumentError(
            f"{where}: key {key[:80]!r} is not allowed (no leading '$', no '.', no NUL)"
        )


def check_document(value: object, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse keys a store would read as operators or paths, and nesting over `max_depth`.

    Iterative, so that checking a hostile value cannot itself overflow the stack.
    """
    if not _nested(value):
        return
    stack: list[tuple[object, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if depth >= max_depth:
            raise DocumentError(f"{path or 'the value'}: nested deeper than {max_depth} levels")
        if isinstance(item, Mapping):
            where = path or "the document"
            for key, child in item.items():
                check_key(key, where)
                # A scalar needs no more than its key checked: only what nests goes on.
                if _nested(child):
                    stack.append((child, depth + 1, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list | tuple):
            stack.extend(
                (child, depth + 1, f"{path}.{i}") for i, child in enumerate(item) if _nested(child)
            )


def _nested(value: object) -> bool:
    # In this order: what documents are made of, cheap to test, before the abstract Mapping.
    return isinstance(value, dict | list | tuple | Mapping)


def load_json(data: bytes | str) -> Any:
    """`json.loads` without NaN/Infinity, that fails with `ValueError` on any bad input,
    including nesting too deep for the parser."""
    try:
        return json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(
            f"nested deeper than the parser allows (over {MAX_DEPTH} is refused)"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(str(exc)) from None


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def finite(value: Any) -> Any:
    """The value with every NaN and infinity (at any depth) replaced by None: neither JSON nor
    FerretDB has them, and a message can still carry one (`1e999` parses as infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
