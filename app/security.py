"""Response headers fit for a JSON API, and CORS for browser clients (off by default)."""
import re

from flask_cors import CORS

# A JSON answer is never a page: nothing in it may load, run or be framed.
JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
# scheme://host[:port], as a browser sends it in the Origin header; `:*` stands for any
# port (http://localhost:* for a front end's development server, wherever it runs).
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5}|:\*)?$")
# What a browser client may send beyond the simple headers, and what it may read.
CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "If-Match", "Idempotency-Key",
                      "X-Request-Id", "Last-Event-ID"]
CORS_EXPOSE_HEADERS = ["ETag", "Location", "X-Request-Id", "Idempotent-Replayed",
                       "Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
                       "RateLimit-Reset", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                       "X-RateLimit-Reset"]
CORS_MAX_AGE = 600


def security_headers(environ, headers):
    """The headers to add to an answer's `headers` (WSGI name-value pairs) that it lacks."""
    present = {name.lower(): value for name, value in headers}
    added = []
    if "x-content-type-options" not in present:
        added.append(("X-Content-Type-Options", "nosniff"))
    if "referrer-policy" not in present:
        added.append(("Referrer-Policy", "no-referrer"))
    mimetype = present.get("content-type", "").partition(";")[0].strip().lower()
    if mimetype != "text/html" and "content-security-policy" not in present:
        added.append(("Content-Security-Policy", JSON_POLICY))
    # What one caller was shown must not be kept by a cache and shown to another.
    if "cache-control" not in present and (
            "HTTP_AUTHORIZATION" in environ or environ.get("PATH_INFO", "").startswith("/v1/")):
        added.append(("Cache-Control", "no-store"))
    return added


def parse_origins(value):
    """CORS_ORIGINS as `*` or a list of origins; None when unset; ValueError when malformed."""
    if not value or not value.strip():
        return None
    if value.strip() == "*":
        return "*"
    origins = [item.strip() for item in value.split(",") if item.strip()]
    for origin in origins:
        if not ORIGIN.match(origin):
            raise ValueError(f"CORS_ORIGINS: {origin!r} is not an origin such as "
                             "https://app.example.com, http://localhost:3000 or "
                             "http://localhost:* (no path, no trailing slash), nor '*'")
    return [any_port(origin) if origin.endswith(":*") else origin for origin in origins]


def any_port(origin):
    """`scheme://host:*` as the pattern Flask-Cors matches origins against."""
    return re.compile("^" + re.escape(origin[:-2]) + r":[0-9]{1,5}$")


def init_security(app):
    origins = parse_origins(app.config.get("CORS_ORIGINS"))
    if origins is None:
        return
    # Credentials travel in the Authorization header, never in cookies, so no
    # Access-Control-Allow-Credentials: a page of another origin gains nothing it
    # could not do with the token it already holds.
    CORS(app, resources={r"/v1/*": {}, r"/healthz": {}}, origins=origins,
         methods=["GET", "POST", "PATCH", "DELETE"], allow_headers=CORS_ALLOW_HEADERS,
         expose_headers=CORS_EXPOSE_HEADERS, max_age=CORS_MAX_AGE,
         supports_credentials=False, send_wildcard=origins == "*", vary_header=True,
         always_send=False)
