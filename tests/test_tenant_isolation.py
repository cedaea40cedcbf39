"""Tenant isolation, route by route: to user B, user A's session is exactly a missing one.

The walk takes every route of the app that has a session id in its path, and every method of
it but HEAD and OPTIONS, from `app.url_map` (so a route added later is walked too). For each,
with bodies valid for the method, with and without `If-Match` (PATCH, DELETE: A's current
ETag, `*`, a stale one), with an `Idempotency-Key` (POST) and with query strings (GET), B's
answer on A's session is compared with B's answer on two well-formed ids that name nothing
(one of B's own sessions, deleted, and a fresh id made by the function real ids come from):
same status (404), same JSON, same headers but `X-Request-Id`. Bodies the endpoint refuses
(an empty PATCH, a field the client may not set, an invalid event) may be refused before the
session is looked up (400), but again exactly as on an id that names nothing. B's read-scope
key gets the same answers as B's write key on GETs. A's session and events are unchanged by
the walk. Long polls (`wait`) and streams (`Last-Event-ID`) are walked too, and B's answer on
A's session never waits. B's stream token (for B's own session) opens none of A's: on every
route, as `access_token`, it gets what it gets on an id that names nothing.

Then the routes without a session id: B's list (with and without a status filter) never shows
A's sessions and counts none, and A's `nextCursor` used by B shows none of A's sessions.
"""
import secrets
import time

from gensessions.models.session import is_id, new_id
from helpers import SESSIONS, STATUSES

SESSION = SESSIONS + "/<session_id>"
EVENTS = SESSION + "/events"
STREAM = EVENTS + "/stream"
STREAM_TOKENS = SESSION + "/stream-tokens"
# The (route, method) pairs the walk must reach, whatever else the app grows.
REQUIRED = {(SESSION, "GET"), (SESSION, "PATCH"), (SESSION, "DELETE"),
            (EVENTS, "POST"), (EVENTS, "GET"), (STREAM, "GET"), (STREAM_TOKENS, "POST")}
# Seconds B's answer on A's session may take: a long poll must not wait for A's events.
PROMPT_SECONDS = 1
# A body valid for each endpoint (a route added later gets its method's default).
BODIES = {
    "api.sessions.update_session": {"status": "planning", "prd": {"owner": "user_2"}},
    "api.events.append_event": {"type": "info", "message": "x"},
}
DEFAULT_BODIES = {"POST": {}, "PATCH": {"status": "planning"}, "PUT": {}}
# Bodies each endpoint refuses, whoever sends them: (label, body).
INVALID_BODIES = {
    "api.sessions.update_session": [("empty-body", {}), ("sets-user-id", {"userId": "user_2"})],
    "api.events.append_event": [("invalid-event", {})],
}
# An ETag no revision of any session has.
STALE_ETAG = '"0000000000000000"'
# What may differ between two answers to the same request.
VOLATILE_HEADERS = {"x-request-id", "date"}


def api_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/v1/")]


def session_routes(app):
    """Every (rule, method) of the app whose path takes a session id; HEAD/OPTIONS left out.

    Fails if an API route has a path parameter other than `session_id`: the walk would not
    know what to put there, so it must be taught before that route can pass unwalked.
    """
    pairs = []
    for rule in api_rules(app):
        if "<" not in rule.rule:
            continue
        assert rule.arguments == {"session_id"}, \
            f"{rule.rule} takes {sorted(rule.arguments)}: teach the walk what to send there"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            pairs.append((rule, method))
    return pairs


def variants(rule, method, etag, event_id):
    """(label, query, body, headers, valid) for one route and method; `valid` is False for
    a body the endpoint refuses."""
    body = BODIES.get(rule.endpoint, DEFAULT_BODIES.get(method))
    found = [("plain", "", body, {}, True)]
    if method in ("PATCH", "DELETE", "PUT"):
        found += [("if-match-star", "", body, {"If-Match": "*"}, True),
                  ("if-match-etag", "", body, {"If-Match": etag}, True),
                  ("if-match-stale", "", body, {"If-Match": STALE_ETAG}, True)]
    if method in ("POST", "PUT", "PATCH"):
        found.append(("idempotency-key", "", body, {"Idempotency-Key": None}, True))
        found += [(label, "", invalid, {}, False)
                  for label, invalid in INVALID_BODIES.get(rule.endpoint, [])]
    if method == "GET":
        found += [("after-event-id", f"?after={event_id}", None, {}, True),
                  ("after-sequence", "?after=1&limit=1", None, {}, True),
                  ("wait", "?wait=2", None, {}, True),
                  ("wait-after-event-id", f"?after={event_id}&wait=2", None, {}, True),
                  ("wait-after-sequence", "?after=1&wait=2", None, {}, True),
                  ("last-event-id", "", None, {"Last-Event-ID": "0"}, True),
                  ("last-event-id-and-after", f"?after={event_id}", None,
                   {"Last-Event-ID": "1"}, True),
                  # Refused as malformed on the stream (400), before any lookup.
                  ("last-event-id-malformed", "", None, {"Last-Event-ID": "x"}, False)]
    return found


def call(client, rule, method, session_id, query, body, headers, credential):
    url = rule.rule.replace("<session_id>", session_id) + query
    sent = dict(credential)
    for name, value in headers.items():
        # A fresh Idempotency-Key per request: a kept one would answer from its record.
        sent[name] = f"idem-{secrets.token_hex(8)}" if value is None else value
    return client.open(url, method=method, json=body, headers=sent)


def snapshot(response):
    """What B may see of an answer: status, JSON, body bytes, headers but the volatile ones."""
    headers = sorted((name.lower(), value) for name, value in response.headers.items()
                     if name.lower() not in VOLATILE_HEADERS)
    return response.status_code, response.get_json(silent=True), response.get_data(), headers


def state_of(client, session_id, headers):
    """A's view of its session: the session JSON, its ETag, and its events."""
    session = client.get(f"{SESSIONS}/{session_id}", headers=headers)
    events = client.get(f"{SESSIONS}/{session_id}/events?limit=1000", headers=headers)
    assert session.status_code == 200 and events.status_code == 200
    return session.json, session.headers["ETag"], events.json


def test_every_session_route_answers_another_users_session_like_a_missing_one(
        client, make_key, auth_headers, other_headers, create_session):
    app = client.application
    other_read = make_key(user_id="user_2", organization_id="org_2", scope="read")
    victim = create_session({"prd": {"name": "secret"}})
    event = client.post(f"{SESSIONS}/{victim['id']}/events",
                        json={"type": "info", "message": "A's"}, headers=auth_headers)
    assert event.status_code == 201
    before = state_of(client, victim["id"], auth_headers)
    etag, event_id = before[1], event.json["id"]
    # An id that was real and is gone: one of B's own sessions, deleted by B.
    deleted = create_session(headers=other_headers)["id"]
    assert client.delete(f"{SESSIONS}/{deleted}", headers=other_headers).status_code == 204
    assert client.get(f"{SESSIONS}/{deleted}", headers=other_headers).status_code == 404
    fresh = new_id("sess_")
    for session_id in (deleted, fresh):
        assert is_id(session_id) and session_id[:5] == victim["id"][:5]
        assert len(session_id) == len(victim["id"])

    covered, mismatches, answers = set(), [], 0
    for rule, method in session_routes(app):
        covered.add((rule.rule, method))
        for label, query, body, headers, valid in variants(rule, method, etag, event_id):
            what = f"{method} {rule.rule}{query} [{label}]"
            started = time.monotonic()
            foreign = call(client, rule, method, victim["id"], query, body, headers,
                           other_headers)
            if time.monotonic() - started > PROMPT_SECONDS:
                mismatches.append(f"{what}: B's answer on A's session waited")
            answers += 1
            if foreign.status_code not in ((404,) if valid else (400, 404)):
                mismatches.append(f"{what}: B got {foreign.status_code} on A's session: "
                                  f"{foreign.get_data(as_text=True)[:200]}")
            for missing in (deleted, fresh):
                other = call(client, rule, method, missing, query, body, headers,
                             other_headers)
                if snapshot(other) != snapshot(foreign):
                    mismatches.append(f"{what}: A's session {snapshot(foreign)} != "
                                      f"missing {missing} {snapshot(other)}")
            read_foreign = call(client, rule, method, victim["id"], query, body, headers,
                                other_read)
            read_missing = call(client, rule, method, fresh, query, body, headers, other_read)
            if snapshot(read_foreign) != snapshot(read_missing):
                mismatches.append(f"{what}: B's read key: A's session "
                                  f"{snapshot(read_foreign)} != missing {snapshot(read_missing)}")
            if method == "GET" and snapshot(read_foreign) != snapshot(foreign):
                mismatches.append(f"{what}: B's read key {snapshot(read_foreign)} != "
                                  f"B's write key {snapshot(foreign)}")
    assert not mismatches, "\n".join(mismatches)
    assert REQUIRED <= covered, f"the walk missed {REQUIRED - covered}"
    assert answers >= 20
    after = state_of(client, victim["id"], auth_headers)
    assert after == before
    assert [item["message"] for item in after[2]["data"]] == ["A's"]


def test_another_users_stream_token_opens_none_of_their_sessions(
        client, auth_headers, other_headers, create_session):
    """B's stream token, for B's own session, as `access_token` on every route of A's
    session: exactly what it gets on ids that name nothing (404 on the stream, 401 where
    no stream token is taken). A's session and events are unchanged."""
    app = client.application
    victim = create_session({"prd": {"name": "secret"}})
    assert client.post(f"{SESSIONS}/{victim['id']}/events", json={"type": "info"},
                       headers=auth_headers).status_code == 201
    before = state_of(client, victim["id"], auth_headers)
    own = create_session(headers=other_headers)["id"]
    issued = client.post(f"{SESSIONS}/{own}/stream-tokens", headers=other_headers)
    assert issued.status_code == 201, issued.json
    token = issued.json["token"]
    stream = client.get(f"{SESSIONS}/{own}/events/stream?access_token={token}",
                        buffered=False)
    assert stream.status_code == 200  # the token is good for B's own session
    stream.close()
    deleted = create_session(headers=other_headers)["id"]
    assert client.delete(f"{SESSIONS}/{deleted}", headers=other_headers).status_code == 204
    mismatches, statuses = [], {}
    for rule, method in session_routes(app):
        for label, query, body, headers, valid in variants(rule, method, before[1],
                                                           "evt_" + "x" * 22):
            query = (query + "&" if query else "?") + f"access_token={token}"
            what = f"{method} {rule.rule}{query[:40]}... [{label}]"
            foreign = call(client, rule, method, victim["id"], query, body, headers, {})
            statuses.setdefault(rule.rule, set()).add(foreign.status_code)
            for missing in (deleted, new_id("sess_")):
                other = call(client, rule, method, missing, query, body, headers, {})
                if snapshot(other) != snapshot(foreign):
                    mismatches.append(f"{what}: A's session {snapshot(foreign)} != "
                                      f"missing {missing} {snapshot(other)}")
            if token in foreign.get_data(as_text=True):
                mismatches.append(f"{what}: the token is in the answer")
    assert not mismatches, "\n".join(mismatches)
    assert statuses[STREAM] <= {404, 400}, statuses
    assert all(found <= {401} for path, found in statuses.items() if path != STREAM), statuses
    assert state_of(client, victim["id"], auth_headers) == before


def test_session_routes_are_read_from_the_url_map(app):
    """The walk's list is the app's: adding a route to the map adds it to the walk."""
    listed = {(rule.rule, method) for rule, method in session_routes(app)}
    assert REQUIRED <= listed
    assert all("<session_id>" in path for path, _ in listed)
    assert not {method for _, method in listed} & {"HEAD", "OPTIONS"}
    app.add_url_rule(SESSIONS + "/<session_id>/artifacts", "artifacts", lambda session_id: "",
                     methods=["GET", "PUT"])
    added = {(rule.rule, method) for rule, method in session_routes(app)} - listed
    assert added == {(SESSIONS + "/<session_id>/artifacts", "GET"),
                     (SESSIONS + "/<session_id>/artifacts", "PUT")}


def list_as(client, headers, query=""):
    response = client.get(SESSIONS + query, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def test_another_users_list_never_shows_a_session(client, make_key, auth_headers,
                                                  other_headers, create_session):
    other_read = make_key(user_id="user_2", organization_id="org_2", scope="read")
    mine = [create_session()["id"] for _ in range(3)]
    planning = create_session()["id"]
    assert client.patch(f"{SESSIONS}/{planning}", json={"status": "planning"},
                        headers=auth_headers).status_code == 200
    mine.append(planning)
    queries = ["", "?limit=100", "?offset=1"] + [f"?status={status}" for status in STATUSES]
    for query in queries:
        own = list_as(client, auth_headers, query)
        shown = list_as(client, other_headers, query)
        assert shown["data"] == [], (query, shown)
        assert shown["pagination"]["total"] == 0, (query, shown)
        assert shown["pagination"]["hasMore"] is False
        assert list_as(client, other_read, query) == shown
        if query in ("", "?limit=100", "?status=intake", "?status=planning"):
            assert own["data"], query  # A does see sessions there: the filter matches
    assert {item["id"] for item in list_as(client, auth_headers)["data"]} == set(mine)


def test_another_users_cursor_shows_none_of_their_sessions(client, make_key, auth_headers,
                                                           other_headers, create_session):
    """On every route without a session id that lists (GET), B's use of A's cursor."""
    app = client.application
    other_read = make_key(user_id="user_2", organization_id="org_2", scope="read")
    own = {create_session(headers=other_headers)["id"] for _ in range(2)}
    mine = {create_session()["id"] for _ in range(4)}
    first = list_as(client, auth_headers, "?limit=1")
    cursor = first["pagination"]["nextCursor"]
    assert cursor and first["data"][0]["id"] in mine
    # The cursor is live: A gets the rest of A's sessions with it.
    rest = list_as(client, auth_headers, f"?cursor={cursor}")
    assert {item["id"] for item in rest["data"]} == mine - {first["data"][0]["id"]}

    listing_rules = [rule for rule in api_rules(app)
                     if "<" not in rule.rule and "GET" in rule.methods
                     and rule.endpoint.startswith("api.")]
    assert SESSIONS in {rule.rule for rule in listing_rules}
    for rule in listing_rules:
        for query in (f"?cursor={cursor}", f"?cursor={cursor}&limit=100",
                      f"?cursor={cursor}&status=intake"):
            shown = client.get(rule.rule + query, headers=other_headers)
            assert shown.status_code == 200, (rule.rule, query, shown.json)
            ids = {item["id"] for item in shown.json["data"]}
            assert not ids & mine, (rule.rule, query, shown.json)
            assert ids <= own
            assert {item["userId"] for item in shown.json["data"]} <= {"user_2"}
            assert shown.json["pagination"]["total"] == len(own)
            read = client.get(rule.rule + query, headers=other_read)
            assert snapshot(read) == snapshot(shown)
