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


def format_validation_errors(exc: ValidationError) -> list[str]:
    """Return one plain sentence per problem of a pydantic validation error."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            out.append(f"unknown key '{loc}'")
        elif err["type"] == "missing":
            out.append(f"missing required key '{loc}'")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            out.append(f"'{loc}': {msg}")
    return out
