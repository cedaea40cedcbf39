"""Per-credential rate limiting (Flask-Limiter), answered in the contract's error shape.

Counts live in each worker process unless RATE_LIMIT_STORAGE_URI names a shared
store (e.g. redis://host:6379/0), so with N workers and memory storage a client
can get up to N times the limit: approximate, and documented as such.
"""
import time

from flask import current_app, request
from flask_limiter import HeaderNames, Limiter
from limits import parse_many
from peewee import DatabaseError, InterfaceError

from .auth import current_principal
from .errors import ApiError
from .http import blueprint_setting

# A blueprint with `rate_limited = True` is limited, and so is every blueprint nested in it
# (the API's, app/api.py), unless it says `rate_limited = False` itself; health, the
# document and the docs page are not.
ATTRIBUTE = "rate_limited"
# Where the limiter writes its Retry-After: it would send one on every answer (the seconds
# until its window resets), and overwrite a 503's own. Only a 429 gets it, as Retry-After.
LIMITER_RETRY_AFTER = "X-Gensessions-Limiter-Retry-After"


def is_rate_limited(app, blueprints):
    """Whether a request to a view of `blueprints` (innermost first, as request.blueprints
    gives them) counts against its credential's limit."""
    return bool(blueprint_setting(app, blueprints, ATTRIBUTE, False))


def exempt():
    return request.method == "OPTIONS" or not is_rate_limited(current_app, request.blueprints)


def credential_key():
    """The bucket of a request: its credential's public name, else the client's address.

    An API key counts as itself; session tokens count as their user (an identity
    provider issues a fresh token every minute or so). A request whose credential
    is refused counts against its address, which also slows down key guessing.
    """
    try:
        return current_principal().credential_id
    except (ApiError, DatabaseError, InterfaceError):
        # The request is answered 401 (or 503) by the API's own check right after.
        return "address:" + (request.remote_addr or "unknown")


def check_rate_limit(expression):
    """Return the limit, or None for `off`; raise ValueError for one `limits` can't parse."""
    if expression.strip().lower() == "off":
        return None
    try:
        parse_many(expression)
    except ValueError:
        raise ValueError(f"RATE_LIMIT={expression!r} is not a rate limit: use e.g. "
                         "'600/minute', '10/second;600/hour', or 'off'") from None
    return expression


def add_ietf_headers(response):
    """Mirror X-RateLimit-* as the IETF draft's RateLimit-* (reset as seconds from now);
    Retry-After only on a 429 (a 503 keeps its own)."""
    retry_after = response.headers.pop(LIMITER_RETRY_AFTER, None)
    if response.status_code == 429 and retry_after is not None:
        response.headers["Retry-After"] = retry_after
    for name in ("Limit", "Remaining"):
        if f"X-RateLimit-{name}" in response.headers:
            response.headers[f"RateLimit-{name}"] = response.headers[f"X-RateLimit-{name}"]
    reset = response.headers.get("X-RateLimit-Reset")
    if reset is not None:
        response.headers["RateLimit-Reset"] = str(max(0, int(float(reset) - time.time())))
    return response


def init_rate_limit(app):
    """Limit every API request per credential to RATE_LIMIT (fails at start when malformed)."""
    limit = check_rate_limit(app.config["RATE_LIMIT"])
    if limit is None:
        return
    # after_request hooks run last-registered first: this one must see the limiter's headers.
    app.after_request(add_ietf_headers)
    limiter = Limiter(
        credential_key, app=app, headers_enabled=True,
        header_name_mapping={HeaderNames.RETRY_AFTER: LIMITER_RETRY_AFTER},
        # One bucket per credential for all API routes (default_limits would count per route).
        application_limits=[limit],
        storage_uri=app.config["RATE_LIMIT_STORAGE_URI"], strategy="moving-window",
        application_limits_exempt_when=exempt,
        # A shared store that is down must not take the API down with it.
        swallow_errors=True, in_memory_fallback_enabled=True)
    app.extensions["gensessions_limiter"] = limiter
