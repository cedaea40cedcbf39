"""GET /healthz: no credential; 200 when the database answers, else 503."""
from flask import Blueprint

from models import db

from .errors import ApiError

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Report whether the service can reach its database."""
    try:
        db.execute_sql("SELECT 1")
    except Exception:  # any failure to answer means "unavailable", never a 500
        raise ApiError(503, "Database unavailable") from None
    return {"status": "ok"}
