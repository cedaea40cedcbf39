"""The session viewer, `/ui/`: a page for people to watch their sessions live.

Plain HTML, CSS and JavaScript served from the package (no build step, no CDN: it works
offline). The page talks to the API with the key a person gives it, and follows a
session's events with a stream token. It is read-only. Every path under /ui/ but the
assets answers the same page, which routes itself, so that /ui/sessions/<id> is a link
one can share.
"""
from flask import Blueprint, send_from_directory

bp = Blueprint("ui", __name__, url_prefix="/ui", static_folder="static/ui",
               static_url_path="/assets")
# Served without the database, and not an API operation.
bp.without_database = True
bp.in_openapi = False

# The page's policy: its own scripts, styles and API only; nothing inline, nothing framed.
PAGE_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
               "connect-src 'self'; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'")


@bp.after_request
def page_policy(response):
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    return response


@bp.get("/")
@bp.get("/sessions/<session_id>")
def page(session_id=None):
    """The viewer's one page (it reads the path itself)."""
    return send_from_directory(bp.static_folder, "index.html", max_age=0)
