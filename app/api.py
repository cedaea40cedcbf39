"""The /v1 API: one parent blueprint that authenticates every request under it.

What holds for the API holds for every blueprint nested in it, now and later, decided
from the blueprints themselves: the credential (this blueprint's before_request), the
rate limit (`rate_limited`, app/ratelimit.py), and the OpenAPI document, where each
nested blueprint is a tag named after it (app/openapi.py).
"""
from flask import Blueprint

from .auth import authenticate
from .events import bp as events_bp
from .live import bp as live_bp
from .sessions import bp as sessions_bp

bp = Blueprint("api", __name__, url_prefix="/v1")
bp.before_request(authenticate)
bp.rate_limited = True
bp.register_blueprint(sessions_bp)
bp.register_blueprint(events_bp)
bp.register_blueprint(live_bp)
