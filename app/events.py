"""A session's append-only event log: append, and poll incrementally."""
from flask import Blueprint, g

from .models import Session
from .schemas import examples
from .schemas import event_create_schema, event_list_query, event_page_schema, event_schema

from .auth import require_scope
from . import clock
from .http import use_body, use_query
from .idempotency import idempotent
from .openapi import answers, example

bp = Blueprint("events", __name__, url_prefix="/products/generation/sessions/<session_id>/events")


@bp.post("")
@answers(201, event_schema, "Event appended", example=examples.EVENT)
@example(examples.APPEND_EVENT)
@require_scope("write")
@idempotent
@use_body(event_create_schema)
def append_event(session_id, body):
    """Append an event to a session."""
    event = Session.append_event(session_id, g.principal.user_id, clock.now_ms(), **body)
    return event_schema.dump(event), 201


@bp.get("")
@answers(200, event_page_schema, "Events, oldest first", example=examples.EVENT_PAGE)
@use_query(event_list_query)
def list_events(session_id, query):
    """List a session's events, oldest first, after an event id or sequence number."""
    limit = query["limit"]
    session = Session.get_live(session_id, g.principal.user_id, clock.now_ms())
    events = session.events_after(query.get("after"), limit + 1)
    return event_page_schema.dump({"data": events[:limit], "pagination": {
        "limit": limit, "has_more": len(events) > limit,
        "next_cursor": events[:limit][-1].id if events else None}})
