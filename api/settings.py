"""Settings of the OGC API service, read from ``USM_*`` environment variables.

Settings are made by :func:`api.main.create_app`, never at import time, so tests build apps
with explicit settings and no environment patching.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Settings of the geo-usm OGC API - Features service.

    Every field can be set by an environment variable with the ``USM_`` prefix, e.g.
    ``USM_BUILD_DIR=out/camden`` or ``USM_CORS_ORIGINS=https://a.org,https://b.org``.

    Attributes
    ----------
    build_dir
        The build to serve: the directory ``usm build`` published (or a link to it), or a copy
        of its ``public/`` part alone. A link is resolved once, at startup.
    title
        Title of the landing page; by default derived from the city name in the manifest.
    description
        Description of the landing page; by default derived from the manifest.
    default_limit
        Number of features per page when a request gives no ``limit``.
    max_limit
        Largest page size; larger ``limit`` values are clamped to it.
    cors_origins
        Origins allowed to call the API from a browser; empty disables CORS headers.

    """

    model_config = SettingsConfigDict(env_prefix="USM_", extra="forbid")

    build_dir: Path
    title: str | None = None
    description: str | None = None
    default_limit: int = Field(default=10, ge=1)
    max_limit: int = Field(default=10_000, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _check_limits(self) -> Self:
        if self.default_limit > self.max_limit:
            msg = f"default_limit ({self.default_limit}) exceeds max_limit ({self.max_limit})"
            raise ValueError(msg)
        return self
