"""ASGI middleware of the API: HEAD on every GET route, the allowed ``Host`` names, gzip.

All are plain ASGI middleware installed by :func:`api.main.create_app`; the error a refused
host gets is made by :func:`api.errors.error_response`, like every other error.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware as StarletteGZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response


class HeadMiddleware:
    """Answer ``HEAD`` as ``GET`` without the body (RFC 9110, section 9.3.2).

    The request is routed as a ``GET``, so a ``HEAD`` gets exactly the status and headers
    (``Content-Type``, ``Content-Length``) the ``GET`` would, and no body. A ``405`` lists
    ``HEAD`` in ``Allow`` wherever it lists ``GET``.

    Parameters
    ----------
    app
        The application to wrap.

    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "HEAD":
            await self.app(scope, receive, _allowing_head(send))
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, _allowing_head(send_headers_only))


def _allowing_head(send: Send) -> Send:
    """Wrap ``send`` so that a 405 whose ``Allow`` lists ``GET`` also lists ``HEAD``."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 405:
            headers = [
                (name, _with_head(value) if name.lower() == b"allow" else value)
                for name, value in message.get("headers", [])
            ]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _with_head(allow: bytes) -> bytes:
    methods = [m.strip() for m in allow.decode("latin-1").split(",") if m.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.insert(methods.index("GET") + 1, "HEAD")
    return ", ".join(methods).encode("latin-1")


class AllowedHostsMiddleware:
    """Refuse requests whose ``Host`` header is not an allowed host name (400).

    Like Starlette's ``TrustedHostMiddleware``, but the refusal is an OGC exception document
    as every other error of the API.

    Parameters
    ----------
    app
        The application to wrap.
    allowed_hosts
        Lower-case host names; ``*.example.org`` matches ``example.org`` and its subdomains,
        ``*`` matches every host.

    """

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]):
        self.app = app
        self.allowed_hosts = allowed_hosts

    def allows(self, host: str) -> bool:
        """Return whether ``host`` (a ``Host`` header value, port included) is allowed."""
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        name = name.lower().rstrip(".")
        for pattern in self.allowed_hosts:
            if pattern == "*" or name == pattern:
                return True
            if pattern.startswith("*.") and (name == pattern[2:] or name.endswith(pattern[1:])):
                return True
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = Headers(scope=scope).get("host", "")
        if self.allows(host):
            await self.app(scope, receive, send)
            return
        msg = f"this service does not answer to host '{host}'"
        await error_response(400, msg)(scope, receive, send)


class GZipMiddleware(StarletteGZipMiddleware):
    """Starlette's gzip middleware, out of the way of clients that do not accept gzip.

    A request without ``gzip`` in ``Accept-Encoding`` goes straight to the application
    (Starlette would still wrap it to inspect the response headers), so that clients sending
    no ``Accept-Encoding``, such as load generators and some GIS clients, pay nothing.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"accept-encoding" and b"gzip" in value.lower():
                    break
            else:
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
