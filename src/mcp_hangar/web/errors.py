"""Error mapping at the HTTP edge: every error leaves in the spec's envelope."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import HangarError, RateLimitExceeded

log = logging.getLogger(__name__)

_HTTP_ERROR_NAMES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "AccessDeniedError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    406: "NotAcceptableError",
    413: "PayloadTooLargeError",
    415: "UnsupportedMediaTypeError",
}


class PayloadTooLargeError(HangarError):
    """A REST request body over the limit (raised at the HTTP edge only)."""

    status_code = 413


def retry_after(seconds: float) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) of a rate-limit refusal."""
    return str(max(1, math.ceil(seconds)))


def envelope(error: str, message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, "status_code": status_code}, status_code=status_code)


def describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        raw_loc = tuple(err.get("loc", ()))
        loc = [str(p) for p in raw_loc if p != "body"]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "json_invalid":
            msg = "request body is not valid JSON"
            loc = []
        elif err.get("type") == "missing" and raw_loc == ("body",):
            msg = "a JSON request body is required"
        elif err.get("type") == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def _allowed_methods(routes: Iterable[Any], path: str) -> set[str]:
    """Every method some route serves at ``path`` (Starlette's 405 names only the first route's)."""
    methods: set[str] = set()
    for route in routes:
        nested = getattr(route, "original_router", None)  # FastAPI's included routers
        if nested is not None:
            methods |= _allowed_methods(nested.routes, path)
        elif getattr(route, "path_regex", None) is not None and route.path_regex.match(path):
            methods |= set(getattr(route, "methods", None) or ())
    return methods


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HangarError)
    async def _hangar(_: Request, exc: HangarError) -> JSONResponse:
        response = envelope(exc.error_name, exc.message, exc.status_code)
        if isinstance(exc, RateLimitExceeded):
            response.headers["Retry-After"] = retry_after(exc.retry_after_s)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return envelope("ValidationError", describe_validation(exc), 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI turns any failure while reading the body into a generic 400; answer by the cause.
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, HangarError):
            return envelope(cause.error_name, cause.message, cause.status_code)
        if exc.status_code == 400 and isinstance(cause, UnicodeDecodeError):
            return envelope("ValidationError", "request body is not valid JSON (not UTF-8)", 422)
        name = _HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
        message = str(exc.detail)
        headers = dict(exc.headers or {})
        if exc.status_code == 404:  # routes raise McpServerNotFoundError; this is the router's miss
            message = f"no route for {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"method {request.method} is not allowed on {request.url.path}"
            allowed = _allowed_methods(request.app.router.routes, request.scope["path"])
            if allowed:
                headers = {k: v for k, v in headers.items() if k.lower() != "allow"}
                headers["Allow"] = ", ".join(sorted(allowed))
        response = envelope(name, message, exc.status_code)
        response.headers.update(headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return envelope("InternalServerError", f"unexpected error: {type(exc).__name__}", 500)
