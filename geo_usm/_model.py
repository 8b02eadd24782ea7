"""Shared pieces of the declarative models (city file, layer kinds, output catalogue)."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, ValidationError

#: Names of layers, kinds and fields: lower_snake_case.
NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
NAME_RE = re.compile(NAME_PATTERN)


class Strict(BaseModel):
    """A frozen pydantic model that refuses unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrictInput(Strict):
    """A model of a hand-written file, without type coercion.

    ``"yes"`` is not ``true`` and ``true`` is not ``1``: a typo is an error rather than a
    silently different build.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def format_validation_errors(exc: ValidationError) -> list[str]:
    """Return one plain sentence per problem of a pydantic validation error."""
    out = []
    for err in exc.errors():
        # union tags ('#parts') and validator frames ('function-after[...]') are not keys
        parts = [str(p) for p in err["loc"] if not str(p).startswith("#") and "[" not in str(p)]
        loc = ".".join(parts) or "(top level)"
        if err["type"] == "extra_forbidden":
            out.append(f"unknown key '{loc}'")
        elif err["type"] == "missing":
            out.append(f"missing required key '{loc}'")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"].endswith("_type") or err["type"] in ("literal_error", "path_type"):
                got = repr(err.get("input"))
                msg += f" (got {got[:60]})"
            out.append(f"'{loc}': {msg}")
    return out
