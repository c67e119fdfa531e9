"""One error envelope for every failure the gateway reports:

    {"success": false, "error": "<message>", "error_type": "<kind>", "response": null}

(the seed's ``{"success": false, "error", "response": null}`` plus a machine-readable kind).
Every exception handler below produces it, including FastAPI's own validation errors, so a
client never has to parse two shapes. Unexpected exceptions become a 500 in the same envelope
(and a log line with the traceback) — tests and fuzzing assert that never happens.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("gateway.errors")


class ErrorEnvelope(BaseModel):
    success: bool = False
    error: str
    error_type: str
    response: None = None


class ApiError(Exception):
    status_code = 400
    error_type = "bad_request"

    def __init__(self, message: str, *, status_code: int | None = None, error_type: str | None = None,
                 headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if error_type is not None:
            self.error_type = error_type
        self.headers = headers
        self.extra = extra or {}


class AuthenticationError(ApiError):
    status_code, error_type = 401, "authentication"


class PermissionDenied(ApiError):
    status_code, error_type = 403, "permission_denied"


class NotFound(ApiError):
    status_code, error_type = 404, "not_found"


class ValidationFailed(ApiError):
    status_code, error_type = 422, "validation"


class Conflict(ApiError):
    status_code, error_type = 409, "conflict"


class RateLimited(ApiError):
    status_code, error_type = 429, "rate_limited"


class ServiceUnavailable(ApiError):
    status_code, error_type = 503, "service_unavailable"


class GatewayTimeout(ApiError):
    status_code, error_type = 504, "timeout"


def error_response(status_code: int, message: str, error_type: str, *, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> JSONResponse:
    body = {"success": False, "error": message, "error_type": error_type, "response": None, **(extra or {})}
    return JSONResponse(body, status_code=status_code, headers=headers)


_STATUS_TYPES = {400: "bad_request", 401: "authentication", 403: "permission_denied", 404: "not_found",
                 405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "payload_too_large",
                 415: "unsupported_media_type", 422: "validation", 429: "rate_limited", 503: "service_unavailable"}


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.message, exc.error_type, headers=exc.headers, extra=exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "Invalid JSON in request body", "invalid_json")
        if any(tuple(e.get("loc", ())) == ("body",) and e.get("type") in ("model_attributes_type", "dict_type")
               for e in errors):
            # Not a JSON object at all (wrong content type, a list, a bare string...).
            return error_response(400, "Request body must be a JSON object", "invalid_json")
        missing = [e for e in errors if e.get("type") == "missing"]
        kind = "missing_fields" if missing and len(missing) == len(errors) else "validation"
        return error_response(422 if kind == "validation" else 400, _describe(errors), kind)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, message, _STATUS_TYPES.get(exc.status_code, "error"),
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "Internal error", "internal")


def json_body_or_error(raw: bytes) -> Any:
    """Parse a JSON body ourselves where a route accepts several shapes."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError("Invalid JSON in request body", error_type="invalid_json") from exc


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` entries: every listed status answers in the error envelope."""
    text = {400: "Invalid JSON, missing fields or a bad request", 401: "No or invalid API key",
            403: "Not allowed (admin only)", 404: "Not found, or not yours", 409: "Conflict or replay",
            413: "Body too large", 422: "Validation failed", 429: "Rate limited (see Retry-After)",
            503: "A dependency (Kafka, metrics) is unavailable", 504: "The run did not finish in time"}
    return {code: {"model": ErrorEnvelope, "description": text.get(code, "Error")} for code in codes}
