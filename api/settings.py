"""Settings of the OGC API service, read from ``USM_*`` environment variables.

Settings are made by :func:`api.main.create_app`, never at import time, so tests build apps
with explicit settings and no environment patching.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

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
    extra_build_dirs
        Further builds to serve (env ``USM_EXTRA_BUILD_DIRS``, separated by the system's path
        separator, ``:`` on Unix): every build, ``build_dir`` first, is served under
        ``/cities/{cityId}`` and ``build_dir`` also at the root (see :mod:`api.main`).
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
    base_url
        Public URL of the landing page, e.g. ``https://example.org/usm`` (env
        ``USM_BASE_URL``): every link the API writes (``self``, ``alternate``, ``next``,
        ``prev``, ``collection``, the landing page's links, ``servers`` of ``/api``) starts with
        it. Set it whenever the service is reached through a proxy or a public name. Unset, links
        are made from the request (its scheme, ``Host`` header and ASGI ``root_path``), which is
        right for local use but lets a client choose the host written in the links it receives.
    allowed_hosts
        Host names the service answers to (env ``USM_ALLOWED_HOSTS``, comma-separated; a
        leading ``*.`` matches subdomains, ``*`` any host). A request whose ``Host`` header is
        not listed gets a 400 error. Empty (the default) accepts any host.

    """

    model_config = SettingsConfigDict(env_prefix="USM_", extra="forbid")

    build_dir: Path
    extra_build_dirs: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    title: str | None = None
    description: str | None = None
    default_limit: int = Field(default=10, ge=1)
    max_limit: int = Field(default=10_000, ge=1)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    base_url: str | None = None
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("extra_build_dirs", mode="before")
    @classmethod
    def _split_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part.strip()]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if host != "*" and ("*" in host[2:] or (host.startswith("*") and host[:2] != "*.")):
                msg = f"allowed host '{host}': a wildcard may only start a name ('*.example.org')"
                raise ValueError(msg)
        return [host.lower() for host in value]

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            msg = (
                "base_url must be an absolute http(s) URL such as https://example.org/usm, "
                f"not '{value}'"
            )
            raise ValueError(msg)
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            msg = f"base_url must have no query or fragment: '{value}'"
            raise ValueError(msg)
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_limits(self) -> Self:
        if self.default_limit > self.max_limit:
            msg = f"default_limit ({self.default_limit}) exceeds max_limit ({self.max_limit})"
            raise ValueError(msg)
        return self
