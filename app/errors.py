"""Every error, whatever raised it, becomes the contract's JSON in one place."""
import logging

from flask import current_app, request
from marshmallow import ValidationError
from peewee import DatabaseError, IntegrityError, InterfaceError
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

from .models.exceptions import (IdempotencyConflict, NotFound, StaleRevision, TransitionRefused,
                                UnknownEvent)

log = logging.getLogger("gensessions.errors")

# The contract's short texts, by status.
ERROR_TEXT = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 412: "Precondition failed",
    413: "Payload too large", 415: "Unsupported media type", 429: "Too many requests",
    500: "Internal server error", 503: "Service unavailable",
}


class ApiError(Exception):
    """An error answer: status, short text, optional details and headers."""

    def __init__(self, status, message=None, details=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message or ERROR_TEXT.get(status, "Error")
        self.details = details
        self.headers = headers or {}


def detail(code, message, path="", suggestion=None):
    """One item of a 400's `details`."""
    item = {"code": code, "message": message, "path": path}
    if suggestion:
        item["suggestion"] = suggestion
    return item


def validation_error(code, message, path="", suggestion=None):
    """An ApiError for a single 400 problem."""
    return ApiError(400, "Validation error", [detail(code, message, path, suggestion)])


def error_response(status, message=None, details=None, headers=None):
    """Build the contract's error answer: `{"error": ..., "details"?: [...]}`."""
    body = {"error": message or ERROR_TEXT.get(status, "Error")}
    if details is not None:
        body["details"] = details
    response = current_app.json.response(body)
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def flatten_messages(messages, path=()):
    """Yield (dotted path, message) for marshmallow's nested error dict."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            step = () if key == "_schema" else (str(key),)
            yield from flatten_messages(value, path + step)
    elif isinstance(messages, list):
        for message in messages:
            yield from flatten_messages(message, path)
    else:
        yield ".".join(path), messages


def details_of(error):
    """Turn a marshmallow ValidationError into the contract's `details` list."""
    return [detail(getattr(message, "code", "VALIDATION_ERROR"), str(message), path,
                   getattr(message, "suggestion", None))
            for path, message in flatten_messages(error.messages)]


def transition_details(error):
    """The 409 details of a refused status change (only terminal sessions refuse)."""
    return [detail("CUSTOM_VALIDATION", str(error), "status",
                   f"A {error.current} session is final: its status can only be set to "
                   f"{error.current} again. Create a new session to start over.")]


def register_error_handlers(app):
    """Register, on the app, the handlers that make every error the contract's JSON."""

    @app.errorhandler(HTTPException)
    def http_error(error):
        if error.code is None or error.code < 400:  # redirects (e.g. /docs to /docs/)
            return error.get_response()
        headers = {name: value for name, value in error.get_response().headers.items()
                   if name in ("Allow", "WWW-Authenticate", "Retry-After")}
        return error_response(error.code, ERROR_TEXT.get(error.code, error.name), None, headers)

    @app.errorhandler(ApiError)
    def api_error(error):
        return error_response(error.status, error.message, error.details, error.headers)

    @app.errorhandler(ValidationError)
    def invalid_input(error):
        return error_response(400, "Validation error", details_of(error))

    @app.errorhandler(NotFound)
    def not_found(error):
        return error_response(404, "Session not found")

    @app.errorhandler(StaleRevision)
    def stale(error):
        return error_response(412, "The session has changed since the ETag in If-Match")

    @app.errorhandler(TransitionRefused)
    def refused_transition(error):
        return error_response(409, "Invalid status transition", transition_details(error))

    @app.errorhandler(UnknownEvent)
    def unknown_event(error):
        return error_response(400, "Validation error", [detail(
            "INVALID_FORMAT", "No event of this session has this id", "after",
            "Pass the id of an event of this session, or a sequence number.")])

    @app.errorhandler(IdempotencyConflict)
    def idempotency_conflict(error):
        return error_response(409, str(error))

    @app.errorhandler(IntegrityError)
    def integrity_error(error):
        log.warning("integrity error on %s %s: %s", request.method, request.path, error)
        return error_response(409, "Conflict with a concurrent change; retry the request")

    @app.errorhandler(DatabaseError)  # unreachable, locked, corrupt: IntegrityError is above
    @app.errorhandler(InterfaceError)
    @app.errorhandler(MaxConnectionsExceeded)  # PostgreSQL: the pool stayed full too long
    def database_unavailable(error):
        log.error("database error on %s %s: %s", request.method, request.path, error)
        return error_response(503, "Database unavailable; retry later", None, {"Retry-After": "1"})

    @app.errorhandler(Exception)
    def internal_error(error):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500)
