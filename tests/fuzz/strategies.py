"""Generated and mutated inputs: arbitrary JSON, valid messages and specs with one part
replaced, bytes, text, and hostile nesting."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import strategies as st

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
KEYS = st.text(max_size=12) | st.sampled_from(["$where", "a.b", "\x00", "kind", "trials", ""])
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5),
    max_leaves=25,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _paths(child, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> Any:
    """`valid` with one to three parts replaced, removed or given a sibling."""
    value = copy.deepcopy(valid)
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(value)
        path = draw(st.sampled_from(paths))
        if not path:
            value = draw(JSON)
            continue
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "remove", "add", "deepen"]))
        last = path[-1]
        if action == "replace":
            parent[last] = draw(JSON)
        elif action == "remove":
            del parent[last]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(KEYS)] = draw(JSON)
        else:
            depth = draw(st.integers(1, 60))
            nested: Any = parent[last]
            for _ in range(depth):
                nested = [nested] if draw(st.booleans()) else {"k": nested}
            parent[last] = nested
    return value


def nested_bytes(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> bytes:
    return opener * depth + closer * depth


HOSTILE_BODIES = st.one_of(
    st.binary(max_size=200),
    st.integers(1, 200_000).map(nested_bytes),
    st.integers(1, 50_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, 50_000).map(
        lambda n: b'{"schema_version":1,"kind":"trial.result","params":' + b"[" * n
    ),
    JSON.map(lambda v: json.dumps(v).encode()),
)


def text_mutations(text: str) -> st.SearchStrategy[str]:
    """`text` with characters inserted, deleted or replaced at a few places."""

    @st.composite
    def mutate(draw: st.DrawFn) -> str:
        chars = list(text)
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(chars)))
            action = draw(st.sampled_from(["insert", "delete", "replace"]))
            piece = draw(st.text(alphabet=":-[]{}#&*!|>'\"\n\t ,0123456789ab.$", max_size=8))
            if action == "insert" or at == len(chars):
                chars[at:at] = list(piece)
            elif action == "delete":
                del chars[at : at + len(piece) + 1]
            else:
                chars[at : at + len(piece)] = list(piece)
        return "".join(chars)

    return mutate()
