"""Generation sessions: create, read, list, update, delete."""
from flask import Blueprint, current_app, g, url_for

from .models import Session
from .schemas import examples
from .schemas import (encode_cursor, session_create_schema, session_detail_schema,
                      session_list_query, session_page_schema, session_patch_schema,
                      session_schema)

from .auth import require_scope
from . import clock
from .http import answers, use_body, use_if_match, use_query
from .idempotency import idempotent

bp = Blueprint("sessions", __name__, url_prefix="/products/generation/sessions")

# The answer that makes a session links to every operation on it (app/openapi.py).
SESSION_LINKS = {"session_id": "$response.body#/id"}


def etag_header(session):
    return {"ETag": f'"{session.etag}"'}


def sessions_page(user_id, now, limit, offset, status=None, cursor=None):
    """A page of the user's sessions, newest first, as session_page_schema dumps it."""
    sessions, total, has_more = Session.page(user_id, now, status, limit, offset, cursor)
    return {"data": sessions, "pagination": {
        "limit": limit, "offset": offset, "total": total, "has_more": has_more,
        "next_cursor": encode_cursor(sessions[-1]) if has_more else None}}


@bp.post("")
@require_scope("write")
@idempotent
@answers(201, session_schema, description="Session created", headers=("Location", "ETag"),
         example=examples.CREATED_SESSION, links=SESSION_LINKS)
@use_body(session_create_schema, example=examples.CREATE_SESSION)
def create_session(body):
    """Create a generation session.

    Every field is optional (an empty body creates a default session); fields not given come
    back null. The session starts in `intake` and expires `SESSION_TTL` seconds from now; its
    URL is in `Location`, its `ETag` for later `If-Match`.
    """
    session = Session.start(g.principal.user_id, g.principal.organization_id, clock.now_ms(),
                            current_app.config["SESSION_TTL"], **body)
    return session, {"Location": url_for(".get_session", session_id=session.id),
                     **etag_header(session)}


@bp.get("/<session_id>")
@answers(200, session_detail_schema, description="The session with its events",
         headers=("ETag",), example=examples.SESSION_WITH_EVENTS)
def get_session(session_id):
    """Get a session with its events, oldest first.

    404 when it never existed, is another user's or has expired.
    """
    session = Session.get_live_with_events(session_id, g.principal.user_id, clock.now_ms())
    return session, etag_header(session)


@bp.get("")
@answers(200, session_page_schema, description="A page of sessions",
         example=examples.SESSION_PAGE)
@use_query(session_list_query)
def list_sessions(query):
    """List the caller's sessions, newest first, optionally filtered by status.

    Page with `offset`, or with `cursor` (the previous page's `nextCursor`), which never skips
    or repeats a session while others are created; not both. `total` counts the caller's
    unexpired sessions matching the filter.
    """
    return sessions_page(g.principal.user_id, clock.now_ms(), **query)


@bp.patch("/<session_id>")
@require_scope("write")
@answers(200, session_schema, description="The updated session", headers=("ETag",),
         example=examples.SESSION, more_errors=(409,))
@use_if_match
@use_body(session_patch_schema, example=examples.UPDATE_SESSION)
def update_session(session_id, body, if_match):
    """Update a session: each given field replaces the stored one.

    `null` clears a field and `{}` changes nothing. A status change appends a `status.changed`
    event; `completed`, `failed` and `cancelled` are final (another status answers 409).
    `productObject` without `productObjectHash` sets the hash to the SHA-256 of its canonical
    JSON. With `If-Match`, a stale ETag answers 412.
    """
    session = Session.update_live(session_id, g.principal.user_id, clock.now_ms(), body, if_match)
    return session, etag_header(session)


@bp.delete("/<session_id>")
@require_scope("write")
@answers(204, description="Deleted, with its events")
@use_if_match
def delete_session(session_id, if_match):
    """Delete a session and all its events.

    With `If-Match`, a stale ETag answers 412.
    """
    Session.delete_live(session_id, g.principal.user_id, clock.now_ms(), if_match)
