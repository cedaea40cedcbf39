"""Live events: a session's event stream (Server-Sent Events), and stream tokens for it."""
import re

from flask import Blueprint, current_app, g, request

from .models import stream_token
from .schemas import event_stream_query, stream_token_schema

from . import clock
from .auth import stream_tokens_accepted
from .errors import validation_error
from .http import answers, openapi_info, use_query
from .schemas.session import SequenceNumber
from .streaming import open_stream

bp = Blueprint("live", __name__, url_prefix="/products/generation/sessions/<session_id>")
bp.description = "Follow a session's events as they happen"

LAST_EVENT_ID = re.compile(r"[0-9]{1,18}")
# One message of the stream, as OpenAPI 3.0 tools read a text/event-stream schema (3.2's
# itemSchema): the fields of one SSE message.
STREAM_MESSAGE = {
    "type": "object", "required": ["data"],
    "description": "One message of the stream. It opens with `retry: <ms>`; then each event "
                   "after the resume point, then each new event as it is appended, in "
                   "order; `: keep-alive` comments while nothing happens.",
    "properties": {
        "event": {"type": "string", "enum": ["message", "end", "gone"],
                  "description": "None (`message`): an event. `end`: the session is "
                                 "completed, failed or cancelled and every event is sent; "
                                 "the stream closes. `gone`: the session was deleted or "
                                 "expired; the stream closes."},
        "id": {"type": "string", "pattern": "^[0-9]+$",
               "description": "The event's `sequence` (what Last-Event-ID resumes after)."},
        "data": {"type": "string",
                 "description": "JSON: the Event (as in the events list); for `end`, the "
                                "Session without its events; for `gone`, `{}`."},
        "retry": {"type": "integer", "format": "int32",
                  "description": "Milliseconds to wait before "
                                 "reconnecting."}}}


def resume_point(after):
    """Where a stream resumes: the Last-Event-ID header (a sequence number) when sent, as a
    reconnecting EventSource sends it, else `after`."""
    header = request.headers.get("Last-Event-ID")
    if header is None:
        return after
    if not LAST_EVENT_ID.fullmatch(header):
        raise validation_error("INVALID_FORMAT", "Last-Event-ID is not a sequence number",
                               "Last-Event-ID", "Send the id of the last message received.")
    return SequenceNumber(header)


@bp.get("/events/stream")
@stream_tokens_accepted
@answers(200, STREAM_MESSAGE,
         description="The session's events, live", media_type="text/event-stream",
         also={204: "The session is completed, failed or cancelled and nothing is after "
                    "the resume point: nothing to follow (EventSource stops reconnecting)."},
         more_errors=(503,))
@use_query(event_stream_query)
def stream_events(session_id, query):
    """Follow a session's events as they happen (Server-Sent Events).

    Resumes after `Last-Event-ID` (what a reconnecting EventSource sends) or `after`, so a
    client that reconnects misses nothing and sees nothing twice. Browsers, whose
    EventSource sends no headers, pass a stream token as `access_token`. The server closes
    the stream after `STREAM_MAX_SECONDS` and when it stops; reconnect with Last-Event-ID.
    Over `STREAM_MAX` open streams in the worker: 503 with Retry-After.
    """
    return open_stream(session_id, g.principal.user_id, resume_point(query.get("after")))


openapi_info(stream_events)["header_parameters"] = [{
    "in": "header", "name": "Last-Event-ID", "required": False,
    "description": "Resume after this sequence number (a reconnecting EventSource sends "
                   "the last `id:` it received); wins over `after`.",
    "schema": {"type": "string", "pattern": f"^{LAST_EVENT_ID.pattern}$"}}]


@bp.post("/stream-tokens")
@answers(201, stream_token_schema, description="A stream token for this session")
def create_stream_token(session_id):
    """Get a token that reads this session's event stream, and nothing else.

    For browsers' EventSource, which cannot send an Authorization header: pass it as
    `access_token`. It expires after `STREAM_TOKEN_TTL` seconds (a stream open by then runs
    on); any credential of the session's owner may ask for one, a read key too.
    """
    return stream_token.issue_for_session(session_id, g.principal.user_id, clock.now_ms(),
                                          current_app.config["STREAM_TOKEN_TTL"])
