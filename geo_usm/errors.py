"""The one exception hierarchy of geo-usm.

Every error a user can fix derives from :class:`GeoUsmError` and carries a message that names
the file, row or column at fault and what to do. The CLI turns these into exit code 2 and the API
maps them to HTTP statuses in one place (``api/errors.py``).
"""

from __future__ import annotations

from pathlib import Path


class GeoUsmError(Exception):
    """Base class of every error a user can act on."""

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.message = message
        self.path = str(path) if path is not None else None
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        if self.hint:
            text += f"\n  -> {self.hint}"
        return text


class CityFileError(GeoUsmError):
    """The city file is missing, not TOML, or does not follow the city-file schema."""


class LayerDefinitionError(GeoUsmError):
    """A layer-kind definition in ``layers/`` is malformed."""


class InputError(GeoUsmError):
    """An input file cannot be used at all (missing, unreadable, mapped column absent, no CRS)."""


class BuildError(GeoUsmError):
    """A build cannot be published (for example the output directory is not a geo-usm build)."""


class NotFoundError(GeoUsmError):
    """A requested build, collection or feature does not exist."""


class ProblemsError(GeoUsmError):
    """Several problems found at once (``usm validate`` reports them all together)."""

    def __init__(self, problems: list[GeoUsmError]):
        self.problems = problems
        lines = [f"{len(problems)} problem(s) found:"]
        lines += [f"- {p}" for p in problems]
        super().__init__("\n".join(lines))
