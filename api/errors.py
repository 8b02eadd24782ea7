"""The one map from exceptions to HTTP statuses, and the helper that installs it.

Every error response is a problem details document (RFC 7807, media type
``application/problem+json``): ``type`` (``about:blank``), ``title`` (the HTTP status phrase),
``status``, ``detail``, plus the members of the OGC API exception document ``code`` and
``description`` (the same text as ``detail``), so that clients of either convention read it.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.responses import PROBLEM_JSON
from geo_usm.errors import (
    BuildError,
    CityFileError,
    GeoUsmError,
    InputError,
    LayerDefinitionError,
    NotFoundError,
)

logger = logging.getLogger(__name__)


class InvalidParameterError(GeoUsmError):
    """A request parameter is unknown or has an invalid value (HTTP 400)."""


#: Exception type -> HTTP status. The most specific class in an exception's MRO wins.
STATUS_CODES: dict[type[Exception], int] = {
    InvalidParameterError: 400,
    NotFoundError: 404,
    BuildError: 500,
    CityFileError: 500,
    InputError: 500,
    LayerDefinitionError: 500,
    GeoUsmError: 500,
}

#: HTTP status -> OGC exception ``code``.
ERROR_CODES: dict[int, str] = {
    400: "InvalidParameterValue",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    500: "ServerError",
}


def status_for(exc: Exception) -> int:
    """Return the HTTP status of an exception, looked up along its MRO.

    Parameters
    ----------
    exc
        Any exception.

    Returns
    -------
    int
        The status from :data:`STATUS_CODES`, or 500 for exceptions not in the map.

    """
    for klass in type(exc).__mro__:
        if klass in STATUS_CODES:
            return STATUS_CODES[klass]
    return 500


def error_response(status: int, description: str) -> JSONResponse:
    """Return a problem details document (RFC 7807, with the OGC ``code``) as a response.

    Parameters
    ----------
    status
        HTTP status code.
    description
        Human-readable description of the problem.

    Returns
    -------
    fastapi.responses.JSONResponse

    """
    phrase = HTTPStatus(status).phrase
    code = ERROR_CODES.get(status) or phrase.replace(" ", "")
    body = {
        "type": "about:blank",
        "title": phrase,
        "status": status,
        "detail": description,
        "code": code,
        "description": description,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


def _describe(exc: GeoUsmError, status: int) -> str:
    # Never leak server paths: ``exc.path`` is left out; 5xx bodies say nothing internal.
    if status >= 500:
        return "internal error; see the server log"
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message


async def _geo_usm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GeoUsmError)
    status = status_for(exc)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc)
    return error_response(status, _describe(exc, status))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    response = error_response(exc.status_code, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg")))
    return error_response(400, "; ".join(parts) or "invalid request")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error; see the server log")


def install_error_handlers(app: FastAPI) -> None:
    """Install the exception handlers that turn errors into OGC exception documents.

    Parameters
    ----------
    app
        The application to equip.

    """
    app.add_exception_handler(GeoUsmError, _geo_usm_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
