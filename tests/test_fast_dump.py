"""The answer schemas' fast dump (schemas.base.CamelSchema.dump) gives exactly what
marshmallow's own Schema.dump gives, for every answer schema and every shape of data
(nulls, nested maps, unicode, timestamps in and out of the cache, empty and long logs)."""
import pytest
from marshmallow import Schema

from gensessions.db import connected
from gensessions.models import Session
from gensessions.schemas import (event_page_schema, event_schema, health_schema,
                                 session_detail_schema, session_page_schema, session_schema)
from gensessions.schemas.base import to_rfc3339
from gensessions.schemas.fast_dump import compile_dump
from helpers import SESSIONS

ANSWER_SCHEMAS = [session_schema, session_detail_schema, session_page_schema, event_schema,
                  event_page_schema]

FULL_SESSION = {
    "prd": {"title": "ünïcode 🚀", "nested": {"list": [1, 2.5, None, True, {"a": []}]}},
    "catalogVersion": "cat-1", "schemaVersion": "v2",
}


@pytest.mark.parametrize("schema", ANSWER_SCHEMAS, ids=lambda s: type(s).__name__)
def test_every_answer_schema_takes_the_fast_path(schema):
    assert compile_dump(schema) is not False


@pytest.fixture
def stored(app, client, auth_headers):
    """Two sessions (one full, one bare) with events of every shape; their models."""
    full = client.post(SESSIONS, json=FULL_SESSION, headers=auth_headers).json
    bare = client.post(SESSIONS, json={}, headers=auth_headers).json
    client.patch(f"{SESSIONS}/{full['id']}", headers=auth_headers, json={
        "status": "planning", "plan": {"steps": ["a"]}, "productObject": {"k": "v"},
        "assemblyState": {}})
    for n in range(25):
        client.post(f"{SESSIONS}/{full['id']}/events", headers=auth_headers,
                    json={"type": "progress", "message": None if n % 3 else f"m{n}",
                          "stage": None if n == 4 else "x", "payload": {"n": n} if n % 2 else None})
    with connected(app):
        sessions = [Session.get_live_with_events(s["id"], "user_1", 0)
                    for s in (full, bare)]
    return sessions


def test_sessions_dump_as_marshmallow_does(stored):
    for session in stored:
        assert session_schema.dump(session) == Schema.dump(session_schema, session)
        assert session_detail_schema.dump(session) == Schema.dump(session_detail_schema, session)
    assert len(session_detail_schema.dump(stored[0])["events"]) == 26  # 25 + status.changed


def test_events_and_pages_dump_as_marshmallow_does(stored):
    events = stored[0].event_log
    for event in events:
        assert event_schema.dump(event) == Schema.dump(event_schema, event)
    assert event_schema.dump(events, many=True) == Schema.dump(event_schema, events, many=True)
    page = {"data": events, "pagination": {"limit": 5, "has_more": True, "next_cursor": None}}
    assert event_page_schema.dump(page) == Schema.dump(event_page_schema, page)
    sessions = {"data": stored, "pagination": {"limit": 20, "offset": 0, "total": 2,
                                               "has_more": False, "next_cursor": "abc"}}
    assert session_page_schema.dump(sessions) == Schema.dump(session_page_schema, sessions)
    empty = {"data": [], "pagination": {"limit": 20, "offset": 0, "total": 0,
                                        "has_more": False, "next_cursor": None}}
    assert session_page_schema.dump(empty) == Schema.dump(session_page_schema, empty)


def test_a_key_absent_from_a_dict_is_left_out_as_marshmallow_does():
    partial = {"data": [], "pagination": {"limit": 1}}
    assert event_page_schema.dump(partial) == Schema.dump(event_page_schema, partial)


@pytest.mark.parametrize("ms", [0, 999, 1_795_425_330_123, 1_795_425_330_999, 253_402_300_799_999])
def test_timestamps_are_rfc3339_with_milliseconds(ms):
    from datetime import datetime, timezone
    expected = datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    assert to_rfc3339(ms) == f"{expected}.{ms % 1000:03d}Z"
    assert to_rfc3339(ms) == to_rfc3339(ms)  # the cached second gives the same text


def test_a_schema_the_fast_path_does_not_know_dumps_the_marshmallow_way():
    # The health answer has a field type outside the fast path's list, or not: either way
    # its dump is marshmallow's.
    body = {"status": "ok", "purge": None}
    assert health_schema.dump(body) == Schema.dump(health_schema, body)
