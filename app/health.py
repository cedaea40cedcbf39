"""GET /healthz: no credential; 200 when the database answers, else 503."""
from flask import Blueprint

from .models import PurgeState
from .schemas import health_schema

from . import clock
from .errors import ApiError
from .http import answers

bp = Blueprint("health", __name__)
bp.openapi_tag = "operations"
bp.description = "The service's health, and this document"


@bp.get("/healthz")
@answers(200, health_schema, description="The database answers", errors=(503,))
def healthz():
    """Report whether the service can reach its database, and how the purge is doing.

    No credential. 503 while the database does not answer.
    """
    try:
        purge = PurgeState.status(clock.now_ms())
    except Exception:  # any failure to answer means "unavailable", never a 500
        raise ApiError(503, "Database unavailable") from None
    return {"status": "ok", "purge": purge}
