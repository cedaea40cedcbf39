"""The /v1 API: one parent blueprint that authenticates every request under it."""
from flask import Blueprint

from .auth import authenticate
from .events import bp as events_bp
from .sessions import bp as sessions_bp

bp = Blueprint("api", __name__, url_prefix="/v1")
bp.before_request(authenticate)
bp.register_blueprint(sessions_bp)
bp.register_blueprint(events_bp)
