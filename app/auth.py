"""Who is calling: a credential from the Authorization header, resolved to a principal."""
from dataclasses import dataclass
from functools import wraps

from flask import g, request

from models import ApiKey

from . import clock
from .errors import ApiError
from .http import openapi_info

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class Principal:
    """The caller, as far as access is concerned."""

    user_id: str
    organization_id: str | None
    scope: str
    credential_id: str


def unauthorized(reason):
    return ApiError(401, reason, headers={"WWW-Authenticate": 'Bearer realm="gensessions"'})


def credential_from_header(value):
    """Return the token of `Authorization: Bearer <token>` or of a bare `Authorization: <token>`."""
    scheme, _, rest = value.strip().partition(" ")
    if rest and scheme.lower() == "bearer":
        return rest.strip()
    return value.strip() if not rest else None


def resolve_principal(token, now):
    """Return the Principal a credential stands for, or None when it stands for nobody."""
    key = ApiKey.authenticate(token, now)
    if key is None:
        return None
    return Principal(key.user_id, key.organization_id, key.scope, key.id)


def authenticate():
    """before_request of the API: put the caller on `g.principal`, or answer 401."""
    header = request.headers.get("Authorization")
    if not header:
        raise unauthorized("Missing credential; send Authorization: Bearer <key>")
    token = credential_from_header(header)
    principal = resolve_principal(token, clock.now_ms()) if token else None
    if principal is None:
        raise unauthorized("Invalid, revoked or expired credential")
    g.principal = principal


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
