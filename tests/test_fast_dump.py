"""The answer schemas' fast dump (schemas/fast_dump.py) gives exactly what marshmallow's own
Schema.dump gives, for every answer schema and every shape of data (nulls, nested maps,
unicode, timestamps in and out of the cache, empty and long logs); a schema it cannot compile
dumps marshmallow's way. The reference is marshmallow's dump all the way down: nested schemas
too dump the general way while it runs (`reference_dump`)."""
import contextlib
from datetime import datetime, timezone

import pytest
from marshmallow import Schema, fields, post_dump

from gensessions.db import connected
from gensessions.models import Session
from gensessions.schemas import (event_page_schema, event_schema, health_schema,
                                 session_detail_schema, session_page_schema, session_schema)
from gensessions.schemas.base import CamelSchema, Timestamp, second_text, to_rfc3339
from gensessions.schemas.fast_dump import FastDump, compile_dump
from helpers import SESSIONS

ANSWER_SCHEMAS = [session_schema, session_detail_schema, session_page_schema, event_schema,
                  event_page_schema]

FULL_SESSION = {
    "prd": {"title": "ünïcode 🚀", "nested": {"list": [1, 2.5, None, True, {"a": []}]}},
    "catalogVersion": "cat-1", "schemaVersion": "v2",
}


def reachable_schemas(schema, found=None):
    """`schema` and every schema nested in it (Nested, List of Nested), each once."""
    found = {} if found is None else found
    if id(schema) not in found:
        found[id(schema)] = schema
        for field in schema.dump_fields.values():
            inner = field.inner if isinstance(field, fields.List) else field
            if isinstance(inner, fields.Nested):
                reachable_schemas(inner.schema, found)
    return list(found.values())


@contextlib.contextmanager
def general_dump(schema):
    """For the block, `schema` and the schemas nested in it dump marshmallow's general way
    (`Schema.dump` of the schema alone would still dump its nested schemas the fast way)."""
    saved = [(each, each.__dict__.get("_dumpers")) for each in reachable_schemas(schema)
             if isinstance(each, FastDump)]
    for each, _ in saved:
        each._dumpers = False  # what FastDump.dump takes as "use marshmallow's dump"
    try:
        yield
    finally:
        for each, steps in saved:
            if steps is None:
                del each._dumpers
            else:
                each._dumpers = steps


def reference_dump(schema, obj, many=None):
    """What marshmallow's own Schema.dump gives for `obj`, nested schemas included."""
    with general_dump(schema):
        return Schema.dump(schema, obj, many=many)


@pytest.fixture
def marshmallow_dumps(monkeypatch):
    """The schemas whose dump went through marshmallow's Schema.dump, in order."""
    seen = []
    general = Schema.dump

    def spy(self, obj, *, many=None):
        seen.append(self)
        return general(self, obj, many=many)
    monkeypatch.setattr(Schema, "dump", spy)
    return seen


@pytest.mark.parametrize("schema", ANSWER_SCHEMAS, ids=lambda s: type(s).__name__)
def test_every_answer_schema_takes_the_fast_path(schema):
    assert compile_dump(schema) is not False


def test_the_reference_dump_is_marshmallows_all_the_way_down(marshmallow_dumps):
    page = {"data": [{"id": "evt_1", "created_at": 0}],
            "pagination": {"limit": 1, "has_more": False, "next_cursor": None}}
    reference_dump(event_page_schema, page)
    assert {type(schema).__name__ for schema in marshmallow_dumps} == {
        "EventPageSchema", "EventSchema", "EventPaginationSchema"}
    del marshmallow_dumps[:]
    event_page_schema.dump(page)
    assert marshmallow_dumps == []  # and the schemas dump the fast way again afterwards


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
        assert session_schema.dump(session) == reference_dump(session_schema, session)
        assert session_detail_schema.dump(session) == reference_dump(session_detail_schema, session)
    assert len(session_detail_schema.dump(stored[0])["events"]) == 26  # 25 + status.changed


def test_events_and_pages_dump_as_marshmallow_does(stored):
    events = stored[0].event_log
    for event in events:
        assert event_schema.dump(event) == reference_dump(event_schema, event)
    assert event_schema.dump(events, many=True) == reference_dump(event_schema, events, many=True)
    page = {"data": events, "pagination": {"limit": 5, "has_more": True, "next_cursor": None}}
    assert event_page_schema.dump(page) == reference_dump(event_page_schema, page)
    sessions = {"data": stored, "pagination": {"limit": 20, "offset": 0, "total": 2,
                                               "has_more": False, "next_cursor": "abc"}}
    assert session_page_schema.dump(sessions) == reference_dump(session_page_schema, sessions)
    empty = {"data": [], "pagination": {"limit": 20, "offset": 0, "total": 0,
                                        "has_more": False, "next_cursor": None}}
    assert session_page_schema.dump(empty) == reference_dump(session_page_schema, empty)


def test_a_key_absent_from_a_dict_is_left_out_as_marshmallow_does():
    partial = {"data": [], "pagination": {"limit": 1}}
    assert event_page_schema.dump(partial) == reference_dump(event_page_schema, partial)


@pytest.mark.parametrize("ms", [0, 999, 1_795_425_330_123, 1_795_425_330_999, 253_402_300_799_999])
def test_timestamps_are_rfc3339_with_milliseconds(ms):
    second = datetime.fromtimestamp(ms // 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    expected = f"{second}.{ms % 1000:03d}Z"
    second_text.cache_clear()
    event = {"id": "evt_1", "session_id": "sess_1", "created_at": ms}
    # Out of the cache, then from it (the second text cached), and through an answer's fast
    # dump: the contract's text each time, and what marshmallow's general dump gives.
    assert to_rfc3339(ms) == expected
    assert second_text.cache_info().misses == 1
    assert to_rfc3339(ms) == expected
    assert second_text.cache_info().hits == 1
    fast = event_schema.dump(event)
    assert fast["createdAt"] == expected
    assert fast == reference_dump(event_schema, event)


class HookedSchema(CamelSchema):
    """A schema with a post_dump hook, which the fast path does not run."""

    created_at = Timestamp()
    note = fields.String()

    @post_dump
    def stamp(self, data, **kwargs):
        return {**data, "dumpedBy": "marshmallow"}


class FloatSchema(CamelSchema):
    """A schema with a field type the fast path does not know (Float)."""

    created_at = Timestamp()
    score = fields.Float()


def test_a_schema_with_a_dump_hook_dumps_the_marshmallow_way(marshmallow_dumps):
    schema = HookedSchema()
    assert compile_dump(schema) is False
    body = {"created_at": 1_795_425_330_123, "note": "n"}
    assert schema.dump(body) == {"createdAt": "2026-11-23T09:15:30.123Z", "note": "n",
                                 "dumpedBy": "marshmallow"}
    assert marshmallow_dumps == [schema]  # it fell back: marshmallow's dump ran
    assert schema.dump([body], many=True) == [reference_dump(schema, body)]


def test_a_schema_with_a_field_the_fast_path_does_not_know_dumps_the_marshmallow_way(
        marshmallow_dumps):
    schema = FloatSchema()
    assert compile_dump(schema) is False
    body = {"created_at": 0, "score": 1}
    dumped = schema.dump(body)
    assert marshmallow_dumps == [schema]
    assert dumped == {"createdAt": "1970-01-01T00:00:00.000Z", "score": 1.0}
    assert isinstance(dumped["score"], float)  # Float's own conversion, not the value as given
    assert dumped == reference_dump(schema, body)


def test_the_health_answer_dumps_as_marshmallow_does():
    for body in ({"status": "ok", "purge": None},
                 {"status": "ok", "purge": {"running": False, "runs": 2, "last_trigger": "cli",
                                            "last_started_at": 0, "last_finished_at": None,
                                            "last_purged": 3, "last_duration_ms": 4,
                                            "last_error": None}}):
        assert health_schema.dump(body) == reference_dump(health_schema, body)
