"""Generation sessions: create, read, list, update, delete."""
from flask import Blueprint, current_app, g, url_for

from .models import Session
from .schemas import examples
from .schemas import (encode_cursor, session_create_schema, session_detail_schema,
                      session_list_query, session_page_schema, session_patch_schema,
                      session_schema)

from .auth import require_scope
from . import clock
from .http import if_match, use_body, use_query
from .idempotency import idempotent
from .openapi import answers, example

bp = Blueprint("sessions", __name__, url_prefix="/products/generation/sessions")


def etag_header(session):
    return {"ETag": f'"{session.etag}"'}


SESSION_LINKS = {
    name: {"operationId": operation_id, "parameters": {"session_id": "$response.body#/id"}}
    for name, operation_id in (("GetSession", "getSession"), ("UpdateSession", "updateSession"),
                               ("DeleteSession", "deleteSession"),
                               ("AppendEvent", "appendEvent"), ("ListEvents", "listEvents"))}


@bp.post("")
@answers(201, session_schema, "Session created", ("Location", "ETag"),
         examples.SESSION, SESSION_LINKS)
@example(examples.CREATE_SESSION)
@require_scope("write")
@idempotent
@use_body(session_create_schema)
def create_session(body):
    """Create a generation session."""
    principal = g.principal
    session = Session.start(principal.user_id, principal.organization_id, clock.now_ms(),
                            current_app.config["SESSION_TTL"], **body)
    location = url_for(".get_session", session_id=session.id)
    return session_schema.dump(session), 201, {"Location": location, **etag_header(session)}


@bp.get("/<session_id>")
@answers(200, session_detail_schema, "The session with its events", ("ETag",),
         examples.SESSION_WITH_EVENTS)
def get_session(session_id):
    """Get a session with its events, oldest first."""
    session = Session.get_live_with_events(session_id, g.principal.user_id, clock.now_ms())
    return session_detail_schema.dump(session), 200, etag_header(session)


@bp.get("")
@answers(200, session_page_schema, "A page of sessions", example=examples.SESSION_PAGE)
@use_query(session_list_query)
def list_sessions(query):
    """List the caller's sessions, newest first, optionally filtered by status."""
    limit, offset = query["limit"], query["offset"]
    sessions, total, has_more = Session.page(
        g.principal.user_id, clock.now_ms(), query.get("status"), limit, offset,
        query.get("cursor"))
    next_cursor = encode_cursor(sessions[-1]) if has_more else None
    return session_page_schema.dump({"data": sessions, "pagination": {
        "limit": limit, "offset": offset, "total": total,
        "has_more": has_more, "next_cursor": next_cursor}})


@bp.patch("/<session_id>")
@answers(200, session_schema, "The updated session", ("ETag",), examples.SESSION)
@example(examples.UPDATE_SESSION)
@require_scope("write")
@use_body(session_patch_schema)
def update_session(session_id, body):
    """Update a session: each given field replaces the stored one."""
    session = Session.update_live(session_id, g.principal.user_id, clock.now_ms(), body, if_match())
    return session_schema.dump(session), 200, etag_header(session)


@bp.delete("/<session_id>")
@answers(204, None, "Deleted, with its events")
@require_scope("write")
def delete_session(session_id):
    """Delete a session and all its events."""
    Session.delete_live(session_id, g.principal.user_id, clock.now_ms(), if_match())
    return "", 204
