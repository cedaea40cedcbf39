"""HTTP plumbing: strict JSON in, orjson out; the decorators that hand a view its validated
input and make its answer (both documented by app/openapi.py); request ids."""
import json
import re
import random
from functools import wraps

import orjson
from marshmallow import Schema
from flask import current_app, request
from flask.json.provider import JSONProvider
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response

from .errors import ApiError, validation_error

# A run of 19 digits may be an integer orjson would turn into a float (beyond 64 bits).
LONG_DIGITS = re.compile(rb"[0-9]{19}")
INT_RANGE = (-(2 ** 63), 2 ** 64 - 1)
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
JSON_CONTENT_TYPE = "application/json; charset=utf-8"
# RFC 9110's If-Match: `*`, or a list of entity tags (`"..."`, weak `W/"..."`), whose
# empty elements (`"a",,"b"`) a recipient accepts. Anything else names no current ETag.
ENTITY_TAG = r'(?:W/)?"[!#-~\u0080-\u00ff]*"'
IF_MATCH = re.compile(rf"\*|(?:,[ \t]*)*{ENTITY_TAG}(?:[ \t]*,(?:[ \t]*{ENTITY_TAG})?)*")
# RFC 8259's whitespace; bytes.strip() would also take \x0b and \x0c, which are not JSON.
JSON_WHITESPACE = b" \t\n\r"


class OrjsonProvider(JSONProvider):
    """Flask's JSON through orjson: strict (no NaN), fast, UTF-8 without escapes."""

    def dumps(self, obj, **kwargs):
        return orjson.dumps(obj).decode()

    def loads(self, s, **kwargs):
        return orjson.loads(s)

    def response(self, *args, **kwargs):
        body = orjson.dumps(self._prepare_response_obj(args, kwargs),
                            option=orjson.OPT_APPEND_NEWLINE)
        return self._app.response_class(body, content_type=JSON_CONTENT_TYPE)


def request_body():
    """Return the raw request body; raises RequestEntityTooLarge past MAX_CONTENT_LENGTH.

    Werkzeug refuses a Content-Length over the limit, but quietly cuts a
    chunked body at it; a byte left unread past the limit means "too large".
    """
    try:
        raw = request.get_data(cache=True)
        limit = request.max_content_length
        if limit is not None and len(raw) >= limit and request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    except HTTPException:
        raise
    except Exception:  # the server's framing parser refused the body (e.g. a bad chunk size)
        raise validation_error("INVALID_FORMAT", "Malformed request body framing", "") from None
    if request.content_length is not None and len(raw) < request.content_length:
        raise validation_error("INVALID_FORMAT", "The body ended before its Content-Length", "")
    return raw


def check_integer(text):
    """parse_int for the stdlib parser: refuse what orjson would not keep exactly."""
    value = int(text)
    if not INT_RANGE[0] <= value <= INT_RANGE[1]:
        raise OverflowError(text)
    return value


def nul_path(value):
    """The dotted path of the first string (or key) in `value` holding a NUL, or None.

    PostgreSQL can store no NUL in text or JSONB, so it is refused on every database alike.
    (A loop, not recursion: bodies may nest 1,024 levels deep.)
    """
    pending = [(value, "")]
    while pending:
        item, path = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path
            continue
        pairs = item.items() if isinstance(item, dict) else enumerate(item) \
            if isinstance(item, list) else ()
        for key, inner in pairs:
            inner_path = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return inner_path
            pending.append((inner, inner_path))
    return None


def read_json_body():
    """Return the request's JSON body ({} when empty).

    Raises ApiError 415 for a non-empty body that is not JSON, 413 past
    MAX_CONTENT_LENGTH, and 400 for malformed JSON (which includes NaN,
    Infinity, invalid UTF-8, lone surrogates and nesting past 1,024 levels)
    or integers beyond 64 bits, which could not be returned exactly, or
    strings holding NUL.
    """
    raw = request_body()
    if not raw.strip(JSON_WHITESPACE):
        return {}
    if not request.is_json:
        raise ApiError(415, "Unsupported media type; send the body as application/json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise validation_error("INVALID_FORMAT", f"Malformed JSON: {error.msg}", "",
                               "Send a valid JSON object (no NaN or Infinity).") from None
    if b"\\u0000" in raw:  # rare, so the walk below costs ordinary bodies nothing
        path = nul_path(body)
        if path is not None:
            raise validation_error(
                "INVALID_FORMAT", "Strings may not contain the NUL character (\\u0000)", path,
                "Remove NUL characters, or encode binary data as base64.")
    if LONG_DIGITS.search(raw):
        try:
            json.loads(raw, parse_int=check_integer)
        except (OverflowError, ValueError, RecursionError):
            raise validation_error(
                "OUT_OF_RANGE", "An integer is beyond the 64-bit range", "",
                "Send integers from -2^63 to 2^64-1, or send larger numbers as strings.") from None
    return body


def openapi_info(view):
    """The OpenAPI facts a view's decorators collect (functools.wraps shares the dict)."""
    return view.__dict__.setdefault("openapi", {})


def use_body(schema, *, example=None):
    """Decorator: load the JSON body with `schema` and pass it to the view as `body`.

    `example` is an example request body for the document.
    """
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            return view(*args, body=schema.load(read_json_body()), **kwargs)
        info = openapi_info(wrapper)
        info["body"] = schema
        if example is not None:
            info["example"] = example
        return wrapper
    return decorator


def use_query(schema):
    """Decorator: load the query string with `schema` and pass it to the view as `query`."""
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            return view(*args, query=schema.load(request.args.to_dict()), **kwargs)
        openapi_info(wrapper)["query"] = schema
        return wrapper
    return decorator


def if_match():
    """Return a test of an entity tag against the request's If-Match, or None without one.

    A value that is not `*` nor a list of entity tags matches nothing (werkzeug would read
    a bare `abc` as the tag "abc"), as the document says.
    """
    value = request.headers.get("If-Match")
    if value is None:
        return None
    if IF_MATCH.fullmatch(value.strip(" \t")) is None:
        return never
    return request.if_match.contains


def never(etag):
    return False


def use_if_match(view):
    """Decorator: pass the view `if_match`, a test of an entity tag against the request's
    If-Match (None without the header); the document gains If-Match and the 412 answer."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        return view(*args, if_match=if_match(), **kwargs)
    openapi_info(wrapper)["if_match"] = True
    return wrapper


def blueprint_chain(name):
    """The names of a blueprint and of the blueprints it is nested in, innermost first
    (what `request.blueprints` gives): "api.sessions" -> ["api.sessions", "api"]."""
    if not name:
        return []
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(len(parts), 0, -1)]


def blueprint_setting(app, names, attribute, default=None):
    """The `attribute` of the innermost blueprint among `names` (innermost first) that sets
    it, else `default`: a blueprint nested in another inherits the other's setting."""
    for name in names:
        value = getattr(app.blueprints.get(name), attribute, None)
        if value is not None:
            return value
    return default


def request_id_of(environ):
    """The client's X-Request-Id when it is sane, else a new one."""
    given = environ.get("HTTP_X_REQUEST_ID", "")
    if REQUEST_ID_PATTERN.match(given):
        return given
    # 128 random bits in uuid4().hex's form, without its urandom() system call per request:
    # an id must be unique, not secret (random reseeds itself in each forked worker).
    return f"{random.getrandbits(128):032x}"


def register_http(app):
    """Install the JSON provider on the app."""
    app.json = OrjsonProvider(app)


def answers(status, schema=None, *, description="", headers=(), example=None, links=None,
            errors=None, more_errors=(), media_type="application/json", also=None):
    """Decorator: the view's success answer, made here and documented.

    The view returns what to send: an object (a model, a dict) or (object, headers).
    This dumps the object with `schema` (a marshmallow schema; a dict is an OpenAPI
    schema for a value sent as it is; None sends no body) and answers it with
    `status`, adding the headers. A view that makes its own Response (a stream, say,
    with `media_type="text/event-stream"`) returns it, and it is sent as it is. Options:

    - `description`, `headers` (names of the success headers, from HEADERS), `example`,
      `media_type` of the documented answer;
    - `links`: {path parameter: runtime expression}, e.g. {"session_id":
      "$response.body#/id"}: a link to every operation that takes that parameter;
    - `errors` replaces the error statuses otherwise derived from the view's decorators
      and blueprints; `more_errors` adds to them (e.g. 409 for a refused transition);
    - `also`: {status: description} of other successful answers without a body (a 204).

    Order: put it below `@idempotent`, which keeps the answer made here (the
    decorators check this), and above `@use_body` / `@use_query` / `@use_if_match`,
    which hand the view its input (their order among themselves does not matter).
    """
    dump = schema.dump if isinstance(schema, Schema) else None

    def decorator(view):
        info = openapi_info(view)
        if info.get("idempotent"):
            raise TypeError(f"{view.__name__}: put @answers below @idempotent")

        @wraps(view)
        def wrapper(*args, **kwargs):
            result, extra = view(*args, **kwargs), None
            if isinstance(result, Response):
                return result
            if isinstance(result, tuple):
                result, extra = result
            if schema is None:
                response = current_app.response_class(status=status)
            else:
                response = current_app.json.response(dump(result) if dump else result)
                response.status_code = status
            if extra:
                response.headers.update(extra)
            return response
        info = openapi_info(wrapper)
        info["success"] = dict(status=status, schema=schema, headers=headers,
                               description=description, example=example, links=links,
                               media_type=media_type, also=also or {})
        if errors is not None:
            info["errors"] = set(errors)
        info["more_errors"] = set(more_errors)
        return wrapper
    return decorator
