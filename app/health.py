"""GET /healthz: no credential; 200 when the database answers, else 503."""
from flask import Blueprint

from .models import PurgeState
from .schemas import health_schema

from . import clock
from .errors import ApiError
from .openapi import answers

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@answers(200, health_schema, "The database answers", public=True, errors=(503,))
def healthz():
    """Report whether the service can reach its database, and how the purge is doing."""
    try:
        purge = PurgeState.status(clock.now_ms())
    except Exception:  # any failure to answer means "unavailable", never a 500
        raise ApiError(503, "Database unavailable") from None
    return health_schema.dump({"status": "ok", "purge": purge})
