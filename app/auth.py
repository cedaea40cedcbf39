"""Who is calling: a credential from the Authorization header, resolved to a principal.

Two kinds of credential, told apart by their form rather than by trying one
and then the other: API keys start with `gsk_`; anything else is taken as a
session token (a JWT) and verified as one, when a verification key is set.
"""
from dataclasses import dataclass
from functools import wraps

from flask import current_app, g, request

from .models import ApiKey
from .models import stream_token
from .models.api_key import KEY_PREFIX

from . import clock
from .errors import ApiError
from .http import openapi_info
from .logs import PRINCIPAL_KEY
from .tokens import TokenRefused, TokenVerifier

TOKENS_EXTENSION = "gensessions_tokens"


@dataclass(frozen=True)
class Principal:
    """The caller, as far as access is concerned."""

    user_id: str
    organization_id: str | None
    scope: str
    # Names the credential without revealing it: `key:<public id>`, `token:<user id>` or
    # `stream:<user id>`.
    credential_id: str
    # A stream token's one session: the credential reads that session's stream, nothing else.
    session_id: str | None = None


def unauthorized(reason):
    return ApiError(401, reason, headers={"WWW-Authenticate": 'Bearer realm="gensessions"'})


def credential_from_header(value):
    """Return the token of `Authorization: Bearer <token>` or of a bare `Authorization: <token>`."""
    scheme, _, rest = value.strip().partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip()
    return value.strip() if not rest else None


def resolve_principal(token, now):
    """Return the Principal a credential stands for; raise a 401 ApiError saying why not."""
    if token.startswith(KEY_PREFIX):
        key = ApiKey.authenticate(token, now)
        if key is None:
            raise unauthorized("Invalid, revoked or expired API key")
        return Principal(key.user_id, key.organization_id, key.scope, f"key:{key.id}")
    verifier = current_app.extensions.get(TOKENS_EXTENSION)
    if verifier is None:
        raise unauthorized(f"Not an API key ({KEY_PREFIX}...), and this server accepts "
                           "no session tokens (JWT_PUBLIC_KEY_FILE is not set)")
    try:
        identity = verifier.verify(token)
    except TokenRefused as refusal:
        raise unauthorized(str(refusal)) from None
    # A session token acts as its user, with full access to that user's sessions.
    return Principal(identity.user_id, identity.organization_id, "write",
                     f"token:{identity.user_id}")


def stream_principal(token, now):
    """The Principal of a stream token (`?access_token=`); raise a 401 ApiError if invalid."""
    granted = stream_token.verify(token, now)
    if granted is None:
        raise unauthorized("Invalid or expired stream token; ask POST .../stream-tokens "
                           "for a new one")
    return Principal(granted.user_id, granted.organization_id, "stream",
                     f"stream:{granted.user_id}", granted.session_id)


def takes_stream_tokens():
    """Whether this request's view takes a stream token in `access_token` (only the stream)."""
    view = current_app.view_functions.get(request.endpoint)
    return getattr(view, "takes_stream_tokens", False)


def current_principal():
    """The caller of this request, resolved once; raises a 401 ApiError."""
    if "principal" not in g:
        header = request.headers.get("Authorization")
        if not header and "access_token" in request.args and takes_stream_tokens():
            g.principal = request.environ[PRINCIPAL_KEY] = stream_principal(
                request.args["access_token"], clock.now_ms())
            return g.principal
        if not header:
            raise unauthorized("Missing credential; send Authorization: Bearer <key>")
        token = credential_from_header(header)
        if not token:
            raise unauthorized("Malformed Authorization header; send Authorization: Bearer <key>")
        g.principal = request.environ[PRINCIPAL_KEY] = resolve_principal(token, clock.now_ms())
    return g.principal


def authenticate():
    """before_request of the API: put the caller on `g.principal`, or answer 401.

    A CORS preflight (OPTIONS) carries no credential by design, so it passes.
    """
    if request.method != "OPTIONS":
        current_principal()


def require_scope(scope):
    """Decorator: answer 403 unless the caller's credential has `scope`."""
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if g.principal.scope != scope:
                raise ApiError(403, f"This credential has the {g.principal.scope!r} scope; "
                                    f"this request needs {scope!r}")
            return view(*args, **kwargs)
        openapi_info(wrapper)["scope"] = scope
        return wrapper
    return decorator


def stream_tokens_accepted(view):
    """Decorator: the view also takes a stream token in `?access_token=` (browsers'
    EventSource cannot send headers), for the token's own session only (`session_id`);
    any other session answers 404, as one that never existed."""
    @wraps(view)
    def wrapper(*args, **kwargs):
        granted = g.principal.session_id
        if granted is not None and granted != kwargs.get("session_id"):
            raise ApiError(404, "Not found")
        return view(*args, **kwargs)
    wrapper.takes_stream_tokens = True
    openapi_info(wrapper)["stream_token"] = True
    return wrapper


def init_auth(app):
    """Load the session-token verification key, if configured (fails at start when unusable)."""
    app.extensions[TOKENS_EXTENSION] = TokenVerifier.from_config(app.config)
