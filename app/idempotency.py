"""Idempotency-Key on POST: a retry gets the first answer again and creates nothing."""
import hashlib
from functools import wraps

from flask import current_app, g, make_response, request

from .models import IdempotencyRecord

from . import clock
from .errors import validation_error
from .http import openapi_info, request_body

HEADER = "Idempotency-Key"
# Headers of the first answer that its replays carry again.
REPLAYED_HEADERS = ("Location", "ETag")


def request_fingerprint():
    """SHA-256 of what makes two requests "the same": method, path and body."""
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request_body())
    return digest.hexdigest()


def replay(record):
    response = current_app.response_class(
        record.response_body, status=record.response_status,
        content_type="application/json; charset=utf-8")
    response.headers.update(record.response_headers or {})
    response.headers["Idempotent-Replayed"] = "true"
    return response


def idempotent(view):
    """Decorator: honour an Idempotency-Key header, as the contract's section says.

    Only successful answers are kept; a failed request releases its key so
    that a retry runs again.
    """
    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= 255:
            raise validation_error("OUT_OF_RANGE", "Idempotency-Key must be 1 to 255 characters",
                                   HEADER, "Use a UUID or another unique string.")
        if not key.isprintable():
            raise validation_error("INVALID_FORMAT", "Idempotency-Key may not hold control "
                                   "characters", HEADER, "Use a UUID or another unique string.")
        user_id = g.principal.user_id
        record = IdempotencyRecord.claim(user_id, key, request_fingerprint(), clock.now_ms())
        if record is not None:
            return replay(record)
        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            IdempotencyRecord.release(user_id, key)
            raise
        if 200 <= response.status_code < 300:
            headers = {name: response.headers[name] for name in REPLAYED_HEADERS
                       if name in response.headers}
            IdempotencyRecord.complete(user_id, key, response.status_code,
                                       response.get_data(as_text=True), headers)
        else:
            IdempotencyRecord.release(user_id, key)
        return response
    openapi_info(wrapper)["idempotent"] = True
    return wrapper
