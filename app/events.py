"""A session's append-only event log: append, and poll incrementally."""
from flask import Blueprint, g

from .models import Session
from .schemas import examples
from .schemas import event_create_schema, event_list_query, event_page_schema, event_schema

from .auth import require_scope
from . import clock
from .http import answers, use_body, use_query
from .idempotency import idempotent
from .streaming import wait_for_events

bp = Blueprint("events", __name__, url_prefix="/products/generation/sessions/<session_id>/events")


def events_page(session_id, user_id, limit, after=None, wait=0):
    """The session's events after `after`, oldest first, as event_page_schema dumps them;
    with `wait`, once one is there, or after `wait` seconds with none.

    `nextCursor` is the last event's id, or `after` as given when there is none, so that
    `after = nextCursor` is always the next poll.
    """
    def read():
        return Session.get_live(session_id, user_id, clock.now_ms()).events_after(
            after, limit + 1)
    events = wait_for_events(read, session_id, wait) if wait else read()
    page = events[:limit]
    return {"data": page, "pagination": {
        "limit": limit, "has_more": len(events) > limit,
        "next_cursor": page[-1].id if page else getattr(after, "text", after)}}


@bp.post("")
@require_scope("write")
@idempotent
@answers(201, event_schema, description="Event appended", example=examples.EVENT)
@use_body(event_create_schema, example=examples.APPEND_EVENT)
def append_event(session_id, body):
    """Append an event to a session.

    Events are numbered 1, 2, 3, ... per session (`sequence`), with no gap or repeat however
    many clients append at once. `stage` defaults to the session's status. Appending to a
    completed, failed or cancelled session is allowed.
    """
    return Session.append_event(session_id, g.principal.user_id, clock.now_ms(), **body)


@bp.get("")
@answers(200, event_page_schema, description="Events, oldest first",
         example=examples.EVENT_PAGE)
@use_query(event_list_query)
def list_events(session_id, query):
    """List a session's events, oldest first, after an event id or sequence number.

    To poll, pass each answer's `nextCursor` as the next `after`: no event is missed or read
    twice. With `wait`, an answer with no event yet waits up to that many seconds for one
    (a long poll); a worker that holds `STREAM_MAX` streams and waits already answers at once.
    """
    return events_page(session_id, g.principal.user_id, **query)
