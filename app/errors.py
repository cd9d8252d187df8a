"""One JSON error shape for every failure; never a stack trace or a path in a response."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, jsonify
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from app.state import NotReadyError, state

log = logging.getLogger(__name__)


def error_response(
    status: int, error: str, message: str, fields: list[dict[str, str]] | None = None
) -> Response:
    """Build the JSON error body shared by every endpoint.

    Args:
        status: HTTP status.
        error: Short machine-readable kind.
        message: One line for a person.
        fields: The request fields at fault.

    Returns:
        The response, status set.
    """
    body: dict[str, Any] = {"error": error, "message": message, "fields": fields or []}
    body["request_id"] = g.get("request_id")
    response = jsonify(body)
    response.status_code = status
    return response


def unknown_model(name: str) -> Response | None:
    """A JSON 404 when a compatibility route names a model this service does not serve."""
    if name != state().settings.model_name:
        return error_response(
            404,
            "not_found",
            f"unknown model name; this service serves {state().settings.model_name!r}",
        )
    return None


def validation_error(err: ValidationError) -> Response:
    """422 naming each field (pydantic's own report echoes whole inputs back; this does not)."""
    fields = [
        {
            "field": ".".join(str(p) for p in item["loc"]) or "body",
            "message": item["msg"].removeprefix("Value error, "),
        }
        for item in err.errors(include_input=False, include_url=False)
    ]
    return error_response(422, "invalid_request", "the request body is invalid", fields)


def register_error_handlers(app: Flask) -> None:
    """JSON for every HTTP error and for unexpected exceptions (logged, not shown)."""

    @app.errorhandler(HTTPException)
    def http_error(err: HTTPException) -> Response:
        status = err.code or 500
        messages = {
            404: "no such endpoint; see /openapi/openapi.json",
            405: "method not allowed on this endpoint",
            413: "request body too large",
        }
        name = (err.name or "error").lower().replace(" ", "_")
        response = error_response(status, name, messages.get(status, err.description or name))
        for header, value in err.get_headers():  # e.g. Allow on 405 (RFC 9110)
            if header.lower() != "content-type":
                response.headers[header] = value
        return response

    @app.errorhandler(NotReadyError)
    def not_ready(_: NotReadyError) -> Response:
        return error_response(503, "not_ready", "the model is not loaded yet")

    @app.errorhandler(Exception)
    def unexpected(err: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the service log")
