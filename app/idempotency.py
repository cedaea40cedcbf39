"""Idempotency-Key on POST: a retry gets the first answer again and creates nothing."""
import hashlib
import re
import string
from functools import wraps

from flask import current_app, g, make_response, request

from .models import IdempotencyRecord

from . import clock
from .errors import validation_error
from .http import openapi_info, request_body

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


# What stands for itself in a regular expression's character class, in Python and ECMA-262.
PLAIN_IN_CLASS = frozenset(string.ascii_letters + string.digits + " !\"#$%&'()*+,./:;<=>?@_`{|}~")


def char_class(chars):
    """A regular expression's class of `chars`, in ranges, the same in Python and in
    ECMA-262 (JSON Schema's dialect); other characters as \\uXXXX."""
    ranges = []
    for code in sorted(map(ord, chars)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])

    def text(code):
        return chr(code) if chr(code) in PLAIN_IN_CLASS else f"\\u{code:04x}"
    return "[" + "".join(text(low) if low == high else f"{text(low)}-{text(high)}"
                         for low, high in ranges) + "]"


# A header value reaches the app as Latin-1 text without spaces at either end (servers strip
# them). A key may hold the printable ones: no control characters (nor U+00A0, U+00AD).
KEY_CHARS = [chr(code) for code in range(256) if chr(code).isprintable()]
KEY_PATTERN = "^{edge}(?:{inner}{{0,{middle}}}{edge})?$".format(
    edge=char_class([char for char in KEY_CHARS if char != " "]), inner=char_class(KEY_CHARS),
    middle=MAX_KEY_LENGTH - 2)
KEY = re.compile(KEY_PATTERN)
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
    that a retry runs again. It keeps the answer the view makes, so it goes above
    `@answers` (which makes it); above `@require_scope` it would claim keys for
    requests that the scope then refuses.
    """
    if "success" not in openapi_info(view):
        raise TypeError(f"{view.__name__}: put @idempotent above @answers")

    @wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not 1 <= len(key) <= MAX_KEY_LENGTH:
            raise validation_error("OUT_OF_RANGE", "Idempotency-Key must be 1 to 255 characters",
                                   HEADER, "Use a UUID or another unique string.")
        if KEY.fullmatch(key) is None:
            # (A server strips spaces at the ends of a header; a WSGI test client may not.)
            problem = ("may not begin or end with a space" if key.strip(" ") != key
                       else "may not hold control characters")
            raise validation_error("INVALID_FORMAT", f"Idempotency-Key {problem}", HEADER,
                                   "Use a UUID or another unique string.")
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
