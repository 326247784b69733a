"""What each library's parameters may be, checked before anything is published.

A static catalogue rather than the estimators' own `get_params()`: the CLI and the publisher must
reject a mistyped name or a value of the wrong type without importing three ML libraries, and
`get_params()` defaults (often ``None``) say nothing about the accepted type. Each library's
rules are one module of `tunefleet_contract.libraries`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from tunefleet_contract.libraries import catalogues
from tunefleet_contract.rules import ParamError, ParamRule, Scalar

__all__ = [
    "LIBRARIES",
    "THREAD_PARAM",
    "ParamError",
    "ParamRule",
    "Scalar",
    "check_param",
    "param_problem",
]

LIBRARIES: Mapping[str, Mapping[str, ParamRule]] = {
    name: catalogue.params for name, catalogue in catalogues().items()
}
# The parameter each library takes its thread count from (see LibraryCatalogue.thread_param).
THREAD_PARAM: Mapping[str, str] = {
    name: catalogue.thread_param for name, catalogue in catalogues().items()
}


def check_param(library: str, name: str, value: Scalar) -> None:
    """Raise ParamError naming the parameter unless `library` accepts `name=value`."""
    catalogue = catalogues().get(library)
    if catalogue is None:
        raise ParamError(f"unknown library {library!r}; choose from {', '.join(LIBRARIES)}")
    if name in catalogue.platform:
        raise ParamError(
            f"{name}: set by the platform, not by a study (threads come from "
            f"{catalogue.thread_param}, capped by the worker; no output files are written)"
        )
    rule = catalogue.params.get(name)
    if rule is None:
        near = difflib.get_close_matches(name, list(catalogue.params), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ParamError(f"{name}: unknown parameter for {library}{hint}")
    rule.check(name, value)


def param_problem(where: str, library: str, name: str, value: Scalar) -> str | None:
    """`check_param`'s refusal as a spec problem at `where` (`library.where.name: what`)."""
    try:
        check_param(library, name, value)
    except ParamError as exc:
        return f"{where}.{exc}"
    return None
