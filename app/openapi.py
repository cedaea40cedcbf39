"""The OpenAPI document, built from the same marshmallow schemas and routes that serve.

Views carry what the document needs as attributes set by their decorators
(`use_body`, `use_query`, `require_scope`, `idempotent`, and `answers` here);
`build_spec` walks the app's URL map and turns each view into an operation,
adding the error answers its decorators make possible.
"""
import re

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, current_app
from flask_swagger_ui import get_swaggerui_blueprint

from .schemas import error_schema
from .schemas.base import JSONObject, Timestamp
from .schemas.errors import ValidationErrorSchema

from . import __version__
from .http import openapi_info

OPENAPI_PATH = "/v1/openapi.json"
DOCS_PATH = "/docs"

bp = Blueprint("openapi", __name__)
docs_bp = get_swaggerui_blueprint(DOCS_PATH, OPENAPI_PATH, config={
    "app_name": "gensessions API", "deepLinking": True, "displayRequestDuration": True,
    "persistAuthorization": True})
# Neither needs the database: they serve while it is down (app/db.py).
bp.without_database = docs_bp.without_database = True


def answers(status, schema=None, description="", headers=(), example=None, links=None,
            public=False, errors=None):
    """Decorator: document the view's success answer (the view still dumps it itself).

    `public` views need no credential; `errors` replaces the error statuses
    otherwise derived from the view's other decorators.
    """
    def decorator(view):
        info = openapi_info(view)
        info["success"] = dict(status=status, schema=schema, headers=headers,
                               description=description, example=example, links=links)
        info["public"] = public
        if errors is not None:
            info["errors"] = errors
        return view
    return decorator


def example(body):
    """Decorator: an example request body for the document."""
    def decorator(view):
        openapi_info(view)["example"] = body
        return view
    return decorator


DESCRIPTION = """\
Product generation sessions: the state of an AI product being generated (its PRD,
plan, product object, assembly progress and status) and an append-only log of
events about it, per user.

**Authentication.** `Authorization: Bearer <credential>` (a bare `Authorization:
<credential>` works too), where the credential is either an API key made by
`flask --app wsgi create-key` (`gsk_...`; `read` keys may only GET), or, when the server
has `JWT_PUBLIC_KEY_FILE`, an RS256 session token from your identity provider (e.g.
Clerk): `sub` is the user, `org_id` or `o.id` the organization. A refused credential
answers 401 with a short reason; another user's session answers 404, as a missing one.

**Browsers.** With `CORS_ORIGINS` set, the listed origins may call the API (preflights
are answered and cached for 10 minutes). Authenticated answers are `Cache-Control: no-store`.

**Errors.** Every error is JSON with an `error` text; a 400 also has `details`, one per
problem, each with a stable `code`, a `message`, the dotted `path` of the field (`""` for
the body) and, where useful, a `suggestion`.

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
    "Allow": {"description": "The methods the URL accepts.", "schema": {"type": "string"}},
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
    409: "Conflict: a refused status transition (with `details`), or an Idempotency-Key "
         "reused with another body or while its first request still runs.",
    412: "If-Match named an ETag that is no longer current.",
    413: "The body is larger than MAX_CONTENT_LENGTH.",
    415: "The body is not JSON.",
    429: "Too many requests for this credential (RATE_LIMIT); retry after `Retry-After` "
         "seconds.",
    500: "Internal error (never a traceback).",
    503: "The database is unavailable.",
}


def error_response(status):
    headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if status == 401:
        headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WWW-Authenticate"}
    if status in (429, 503):
        headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
    if status == 429:
        for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
            headers[name] = {"$ref": f"#/components/headers/{name}"}
    schema = ValidationErrorSchema if status == 400 else error_schema
    return {"description": ERRORS[status], "headers": headers,
            "content": {"application/json": {"schema": schema}}}


def error_statuses(method, info, path_params):
    """The error answers a view can give, derived from what guards it."""
    statuses = {401, 429, 500, 503}
    if path_params:
        statuses.add(404)
    if info.get("body") is not None or info.get("query") is not None or path_params:
        statuses.add(400)
    if info.get("body") is not None:
        statuses |= {413, 415}
    if info.get("scope") == "write":
        statuses.add(403)
    if method in ("patch", "delete"):
        statuses.add(412)
    if method == "patch" or info.get("idempotent"):
        statuses.add(409)
    return statuses


def default_tag(view):
    module = view.__module__.rsplit(".", 1)[-1]
    return {"sessions": "sessions", "events": "events"}.get(module, "operations")


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def operation(method, view, path_params):
    """The OpenAPI operation object of one view."""
    info = openapi_info(view)
    summary, _, details = (view.__doc__ or "").strip().partition("\n")
    op = {"operationId": camel(view.__name__), "summary": summary.strip(),
          "tags": [info.get("tag") or default_tag(view)], "responses": {}}
    if details.strip():
        op["description"] = details.strip()
    parameters = [{"in": "path", "name": name, "required": True,
                   "description": "The session's id (`sess_...`).",
                   "schema": {"type": "string"}} for name in path_params]
    if info.get("query") is not None:
        parameters.append({"in": "query", "schema": info["query"]})
    if method in ("patch", "delete"):
        parameters.append({"in": "header", "name": "If-Match", "required": False,
                           "description": "Answer 412 unless the session's ETag is one of "
                           "these (or `*`).", "schema": {"type": "string"}})
    if info.get("idempotent"):
        parameters.append({"in": "header", "name": "Idempotency-Key", "required": False,
                           "description": "Makes retries safe: the same key and body within "
                           "24 hours replay the first answer.",
                           "schema": {"type": "string", "minLength": 1, "maxLength": 255}})
    if parameters:
        op["parameters"] = parameters
    if info.get("body") is not None:
        content = {"schema": info["body"]}
        if info.get("example") is not None:
            content["example"] = info["example"]
        op["requestBody"] = {"required": False, "content": {"application/json": content}}
    if info.get("public"):
        op["security"] = []
    success = info["success"]
    response = {"description": success["description"] or "Success",
                "headers": {name: {"$ref": f"#/components/headers/{name}"}
                            for name in ("X-Request-Id", *success["headers"])}}
    if success["schema"] is not None:
        response["content"] = {"application/json": {"schema": success["schema"]}}
        if success["example"] is not None:
            response["content"]["application/json"]["example"] = success["example"]
    if success["links"]:
        response["links"] = success["links"]
    if info.get("idempotent"):
        response["headers"]["Idempotent-Replayed"] = {
            "$ref": "#/components/headers/Idempotent-Replayed"}
    op["responses"][str(success["status"])] = response
    statuses = info["errors"] if "errors" in info else error_statuses(method, info, path_params)
    for status in sorted(statuses):
        op["responses"][str(status)] = {"$ref": f"#/components/responses/Error{status}"}
    return op


def build_spec(app):
    """Return the OpenAPI 3.0.3 document of `app` as a dict."""
    plugin = MarshmallowPlugin()
    spec = APISpec(title="gensessions", version=__version__, openapi_version="3.0.3",
                   plugins=[plugin], info={"description": DESCRIPTION},
                   servers=[{"url": "/", "description": "This server"}],
                   security=[{"bearerAuth": []}],
                   tags=[{"name": "sessions", "description": "Generation sessions"},
                         {"name": "events", "description": "A session's event log"},
                         {"name": "operations", "description": "Health"}])
    plugin.map_to_openapi_type(Timestamp, "string", "date-time")
    plugin.map_to_openapi_type(JSONObject, "object", None)
    spec.components.security_scheme("bearerAuth", {
        "type": "http", "scheme": "bearer",
        "description": "An API key (`gsk_<id>_<secret>`) or, when the server is configured "
                       "for them, an RS256 session token (JWT) from the identity provider. "
                       "A bare `Authorization: <credential>` works too."})
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for status in ERRORS:
        spec.components.response(f"Error{status}", error_response(status))
    paths = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if "success" not in openapi_info(view):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = operation(
                method.lower(), view, list(rule.arguments))
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    return spec.to_dict()


@bp.get(OPENAPI_PATH)
@answers(200, {"type": "object", "description": "An OpenAPI 3.0.3 document."},
         "This document (OpenAPI 3.0.3)", public=True, errors=())
def openapi_document():
    """Serve the OpenAPI document."""
    spec = current_app.extensions.get("openapi")
    if spec is None:
        spec = current_app.extensions["openapi"] = build_spec(current_app)
    return spec
