"""The OpenAPI document, built from the same marshmallow schemas and routes that serve.

Views carry what the document needs as attributes set by their decorators
(`use_body`, `use_query`, `use_if_match`, `require_scope`, `idempotent`, and
`answers`, app/http.py); `build_spec` walks the app's URL map and turns each view into an
operation, adding the error answers its decorators and its blueprints make possible.
Everything else comes from the blueprints themselves: an operation's tag is its
blueprint's name (or `openapi_tag`) and the tag's description the blueprint's
`description` (or its module's first docstring line); it needs the credential when a
blueprint it is in authenticates (app/api.py), may answer 429 when one is
`rate_limited`, and 503 unless one is `without_database`.
"""
import inspect
import re
import sys

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app
from flask_swagger_ui import get_swaggerui_blueprint
from marshmallow import fields
from werkzeug.exceptions import MethodNotAllowed

from .models.session import ID_PATTERN
from .schemas import error_schema
from .schemas.base import JSONObject, Timestamp
from .schemas.errors import ValidationErrorSchema

from . import __version__
from .auth import authenticate
from .http import IF_MATCH, answers, blueprint_chain, blueprint_setting, openapi_info
from .idempotency import KEY_PATTERN, MAX_KEY_LENGTH
from .ratelimit import is_rate_limited

OPENAPI_PATH = "/v1/openapi.json"
DOCS_PATH = "/docs"

bp = Blueprint("openapi", __name__)
docs_bp = get_swaggerui_blueprint(DOCS_PATH, OPENAPI_PATH, config={
    "app_name": "gensessions API", "deepLinking": True, "displayRequestDuration": True,
    "persistAuthorization": True})
# Neither needs the database: they serve while it is down (app/db.py).
bp.without_database = docs_bp.without_database = True
bp.openapi_tag = "operations"
# The page is no operation of the API.
docs_bp.in_openapi = False


DESCRIPTION = """\
Product generation sessions: the state of an AI product being generated (its PRD,
plan, product object, assembly progress and status) and an append-only log of
events about it, per user.

**Authentication.** `Authorization: Bearer <credential>` (a bare `Authorization:
<credential>` works too), where the credential is either an API key made by
`gensessions create-key` (`gsk_...`; `read` keys may only read: GET, and POST
`.../stream-tokens`), or, when the server
has `JWT_PUBLIC_KEY_FILE`, an RS256 session token from your identity provider (e.g.
Clerk): `sub` is the user, `org_id` or `o.id` the organization. A refused credential
answers 401 with a short reason; another user's session answers 404, as a missing one.

**Browsers.** With `CORS_ORIGINS` set, the listed origins may call the API (preflights
are answered and cached for 10 minutes). Authenticated answers are `Cache-Control: no-store`.

**Errors.** Every error is JSON with an `error` text; a 400 also has `details`, one per
problem, each with a stable `code`, a `message`, the dotted `path` of the field (`""` for
the body) and, where useful, a `suggestion`. A method a path does not list answers 405
with `Allow`.

**Input.** Every string of a request body is refused (400 `INVALID_FORMAT`) when it, or a
key, holds a NUL character (U+0000), and every integer outside -2^63..2^64-1 (400
`OUT_OF_RANGE`), wherever it is in the body: in a free-form object too, where the schema
cannot say so. Free-form objects nest at most 64 levels deep.

**Concurrency.** Session answers carry an `ETag` of the session's own fields; send it
back in `If-Match` on PATCH or DELETE to get `412` instead of overwriting a newer change.
Both POSTs take an `Idempotency-Key` header (1-255 characters): a retry with the same key
and body within 24 hours replays the first answer (`Idempotent-Replayed: true`).
"""

HEADERS = {
    "X-Request-Id": {"description": "The request's id: the client's X-Request-Id when it "
                     "sent a sane one, else a new one.",
                     "schema": {"type": "string"}, "required": True},
    "ETag": {"description": "Strong entity tag of the session's current fields.",
             "schema": {"type": "string"}, "required": True},
    "Location": {"description": "URL of the new session.", "schema": {"type": "string"},
                 "required": True},
    "WWW-Authenticate": {"description": "`Bearer`, naming the scheme to use.",
                         "schema": {"type": "string"}, "required": True},
    "Allow": {"description": "The methods the URL takes, e.g. `GET, HEAD, OPTIONS`.",
              "schema": {"type": "string"}, "required": True},
    "Retry-After": {"description": "Seconds to wait before retrying.",
                    "schema": {"type": "string"}},
    "RateLimit-Limit": {"description": "Requests allowed in the window (also as "
                        "X-RateLimit-Limit).", "schema": {"type": "string"}},
    "RateLimit-Remaining": {"description": "Requests left in the window (also as "
                            "X-RateLimit-Remaining).", "schema": {"type": "string"}},
    "RateLimit-Reset": {"description": "Seconds until the window resets (X-RateLimit-Reset "
                        "gives it as a Unix time).", "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "`true` when this is the stored first answer "
                            "to an earlier request with the same Idempotency-Key.",
                            "schema": {"type": "string", "enum": ["true"]}},
}

ERRORS = {
    400: "Validation error: see `details`.",
    401: "Missing, malformed, unknown or revoked credential.",
    403: "The credential's scope does not allow this request.",
    404: "No such session: it never existed, is another user's, or has expired.",
    405: "The URL does not take this method (a path parameter holding `/` can make the URL "
         "another route's); `Allow` lists the methods it takes.",
    409: "Conflict: a refused status transition (with `details`), or an Idempotency-Key "
         "reused with another body or while its first request still runs.",
    412: "If-Match names no current ETag: none of its entity tags is the session's current "
         "ETag (weak tags never match), or it is not `*` nor a list of entity tags.",
    413: "The body is larger than MAX_CONTENT_LENGTH.",
    415: "The body is not JSON.",
    429: "Too many requests for this credential (RATE_LIMIT); retry after `Retry-After` "
         "seconds.",
    500: "Internal error (never a traceback).",
    503: "The database is unavailable; retry after `Retry-After` seconds.",
}

# The headers of error answers, besides X-Request-Id.
ERROR_HEADERS = {
    401: ("WWW-Authenticate",),
    405: ("Allow",),
    429: ("Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"),
    503: ("Retry-After",),
}

IF_MATCH_PATTERN = f"^(?:{IF_MATCH.pattern})$"

# The answer of GET /v1/openapi.json: an object, with more keys than these.
DOCUMENT_SCHEMA = {
    "type": "object", "description": "An OpenAPI 3.0.3 document.",
    "required": ["openapi", "info", "paths"],
    "properties": {"openapi": {"type": "string", "example": "3.0.3"},
                   "info": {"type": "object", "additionalProperties": True},
                   "paths": {"type": "object", "additionalProperties": True},
                   "components": {"type": "object", "additionalProperties": True}},
    "additionalProperties": True,
}


def error_response(status):
    headers = {name: {"$ref": f"#/components/headers/{name}"}
               for name in ("X-Request-Id", *ERROR_HEADERS.get(status, ()))}
    schema = ValidationErrorSchema if status == 400 else error_schema
    return {"description": ERRORS[status], "headers": headers,
            "content": {"application/json": {"schema": schema}}}


class Route:
    """What the document needs to know about one view of the app, from its blueprints."""

    def __init__(self, app, rule):
        self.rule = rule
        self.view = app.view_functions[rule.endpoint]
        self.info = openapi_info(self.view)
        self.blueprints = blueprint_chain(rule.endpoint.rpartition(".")[0])
        self.blueprint = app.blueprints.get(self.blueprints[0]) if self.blueprints else None
        self.public = not any(authenticate in app.before_request_funcs.get(name, ())
                              for name in [None, *self.blueprints])
        self.rate_limited = is_rate_limited(app, self.blueprints)
        self.uses_database = not blueprint_setting(app, self.blueprints, "without_database")
        self.path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        self.parameters = re.findall(r"<(?:[^:<>]+:)?([^<>]+)>", rule.rule)
        self.in_openapi = rule.endpoint != "static" and blueprint_setting(
            app, self.blueprints, "in_openapi", True)

    @property
    def tag(self):
        """(name, description) of the tag of the view's blueprint."""
        if self.blueprint is None:
            return "operations", None
        name = getattr(self.blueprint, "openapi_tag", None) or self.blueprint.name
        description = getattr(self.blueprint, "description", None)
        if description is None:
            module = sys.modules.get(self.blueprint.import_name)
            description = ((module and module.__doc__) or "").strip().partition("\n")[0]
        return name, description or None


def answers_405(app, route, method):
    """Whether `method` on `route` can answer 405: when a path parameter, empty or holding a
    `/` (which clients send as %2F and servers decode), turns the URL into one of a route
    that does not take the method."""
    if not route.rule.arguments:
        return False
    adapter = app.url_map.bind("localhost")
    spread = re.compile(re.sub(r"<[^<>]+>", ".*", re.escape(route.rule.rule)))
    urls = [re.sub(r"<[^<>]+>", "", route.rule.rule)]
    urls += [url for url in (re.sub(r"<[^<>]+>", "x", rule.rule)
                             for rule in app.url_map.iter_rules() if rule is not route.rule)
             if spread.fullmatch(url)]
    for url in urls:
        try:
            adapter.match(url, method)
        except MethodNotAllowed:
            return True
        except Exception:  # another route took it (404, a redirect): no 405
            continue
    return False


def error_statuses(app, route, method):
    """The error answers a view can give, derived from what guards it."""
    info = route.info
    if "errors" in info:
        return info["errors"]
    statuses = {500} | info["more_errors"]
    if not route.public:
        statuses.add(401)
    if route.rate_limited:
        statuses.add(429)
    if route.uses_database:
        statuses.add(503)
    if route.rule.arguments:
        statuses.add(404)
    if info.get("body") is not None or info.get("query") is not None or route.rule.arguments:
        statuses.add(400)
    if info.get("body") is not None:
        statuses |= {413, 415}
    if info.get("scope") == "write":
        statuses.add(403)
    if info.get("if_match"):
        statuses.add(412)
    if info.get("idempotent"):
        statuses.add(409)
    if answers_405(app, route, method.upper()):
        statuses.add(405)
    return statuses


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def body_required(schema):
    """A body is required when its schema requires a field (else empty means `{}`)."""
    return any(field.required for field in schema.fields.values())


def operation(app, method, route):
    """The OpenAPI operation object of one view."""
    info, view = route.info, route.view
    summary, _, details = inspect.cleandoc(view.__doc__ or "").partition("\n")
    op = {"operationId": camel(view.__name__), "summary": summary.strip(),
          "tags": [route.tag[0]], "responses": {}}
    if details.strip():
        op["description"] = details.strip()
    parameters = [{"in": "path", "name": name, "required": True,
                   "description": f"The {name.removesuffix('_id')}'s id.",
                   "schema": {"type": "string", "pattern": f"^{ID_PATTERN.pattern}$"}}
                  for name in route.parameters]
    if info.get("query") is not None:
        parameters.append({"in": "query", "schema": info["query"]})
    parameters += info.get("header_parameters", [])
    if info.get("if_match"):
        parameters.append({"in": "header", "name": "If-Match", "required": False,
                           "description": "Answer 412 unless the session's ETag is one of "
                           "these entity tags (or `*`).",
                           "schema": {"type": "string", "pattern": IF_MATCH_PATTERN}})
    if info.get("idempotent"):
        parameters.append({"in": "header", "name": "Idempotency-Key", "required": False,
                           "description": "Makes retries safe: the same key and body within "
                           "24 hours replay the first answer. Printable characters (Latin-1, "
                           "no control characters), no space at either end.",
                           "schema": {"type": "string", "minLength": 1,
                                      "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN}})
    if parameters:
        op["parameters"] = parameters
    if info.get("body") is not None:
        content = {"schema": info["body"]}
        if info.get("example") is not None:
            content["example"] = info["example"]
        op["requestBody"] = {"required": body_required(info["body"]),
                             "content": {"application/json": content}}
    if route.public:
        op["security"] = []
    elif info.get("stream_token"):
        op["security"] = [{"bearerAuth": []}, {"streamToken": []}]
    success = info["success"]
    response = {"description": success["description"] or "Success",
                "headers": {name: {"$ref": f"#/components/headers/{name}"}
                            for name in ("X-Request-Id", *success["headers"])}}
    if success["schema"] is not None:
        content = response["content"] = {success["media_type"]: {"schema": success["schema"]}}
        if success["example"] is not None:
            content[success["media_type"]]["example"] = success["example"]
    if info.get("idempotent"):
        response["headers"]["Idempotent-Replayed"] = {
            "$ref": "#/components/headers/Idempotent-Replayed"}
    op["responses"][str(success["status"])] = response
    for status, description in success["also"].items():
        op["responses"][str(status)] = {"description": description, "headers": {
            "X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}}
    for status in sorted(error_statuses(app, route, method)):
        op["responses"][str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return op


def add_links(operations):
    """Links from an answer to every operation that takes the path parameter it names."""
    for _, _, route, op in operations:
        wanted = route.info["success"]["links"]
        if not wanted:
            continue
        links = {}
        for _, _, other, other_op in operations:
            for parameter, expression in wanted.items():
                if parameter in other.rule.arguments and other_op is not op:
                    name = other_op["operationId"]
                    links[name[0].upper() + name[1:]] = {
                        "operationId": name, "parameters": {parameter: expression}}
        op["responses"][str(route.info["success"]["status"])]["links"] = links


def extra_keywords(self, field, ret, **kwargs):
    """apispec attribute function: what a field's own rules do not say (app/openapi.py)."""
    extra = {}
    for key, value in getattr(field, "openapi", {}).items():
        if not (key == "pattern" and "enum" in ret):  # an enum says it all
            extra[key] = value
    if isinstance(field, fields.Integer) and "format" not in ret:
        low, high = ret.get("minimum"), ret.get("maximum")
        extra["format"] = ("int32" if low is not None and high is not None
                           and -2 ** 31 <= low and high < 2 ** 31 else "int64")
    if isinstance(field, JSONObject):
        extra["description"] = " ".join(filter(None, [ret.get("description"), JSONObject.RULES]))
    return extra


def build_spec(app):
    """Return the OpenAPI 3.0.3 document of `app` as a dict."""
    plugin = MarshmallowPlugin()
    routes = [Route(app, rule) for rule in app.url_map.iter_rules()]
    routes = [route for route in routes if route.in_openapi]
    for route in routes:
        if "success" not in route.info:
            raise ValueError(f"{route.rule.endpoint} ({route.rule.rule}) is not documented: "
                             "give its view @answers (app/openapi.py)")
    tags = {}
    # The API's tags first, in the order their blueprints were registered; public ones last.
    for route in sorted(routes, key=lambda route: route.public):
        name, description = route.tag
        if name not in tags or (description and not tags[name].get("description")):
            tags[name] = {"name": name, **({"description": description} if description else {})}
    spec = APISpec(title="gensessions", version=__version__, openapi_version="3.0.3",
                   plugins=[plugin],
                   info={"description": DESCRIPTION, "license": {
                       "name": "MIT", "url": "https://opensource.org/licenses/MIT"}},
                   servers=[{"url": "/", "description": "This server"}],
                   security=[{"bearerAuth": []}], tags=list(tags.values()))
    plugin.map_to_openapi_type(Timestamp, "string", "date-time")
    plugin.map_to_openapi_type(JSONObject, "object", None)
    plugin.converter.add_attribute_function(extra_keywords)
    spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer",
        "description": "An API key (`gsk_<id>_<secret>`) or, when the server is configured "
                       "for them, an RS256 session token (JWT) from the identity provider. "
                       "A bare `Authorization: <credential>` works too."})
    spec.components.security_scheme("streamToken", {
        "type": "apiKey", "in": "query", "name": "access_token",
        "description": "A stream token from POST .../stream-tokens: reads one session's "
                       "event stream, on that endpoint only (for browsers' EventSource)."})
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for status in ERRORS:
        spec.components.response(f"Error{status}", error_response(status))
    operations = []
    for route in routes:
        for method in sorted(route.rule.methods - {"HEAD", "OPTIONS"}):
            operations.append((route.path, method.lower(), route,
                               operation(app, method.lower(), route)))
    add_links(operations)
    paths = {}
    for path, method, _, op in operations:
        paths.setdefault(path, {})[method] = op
    for path, item in sorted(paths.items()):
        spec.path(path=path, operations=item)
    return spec.to_dict()


@bp.get(OPENAPI_PATH)
@answers(200, DOCUMENT_SCHEMA, description="This document (OpenAPI 3.0.3)", errors=())
def openapi_document():
    """Serve the OpenAPI document.

    No credential. Generated from the marshmallow schemas that validate the requests.
    """
    spec = current_app.extensions.get("openapi")
    if spec is None:
        spec = current_app.extensions["openapi"] = build_spec(current_app)
    return spec
