"""Session event logs through HTTP: append, poll, concurrency, and Idempotency-Key retries."""
import re
import threading

import pytest

from helpers import (JSON_HEADERS, SESSIONS, TIMESTAMP, assert_error, events_url, iso, nest,
                     session_url)

EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_-]{20,}$")
EVENT_KEYS = {"id", "sessionId", "userId", "organizationId", "sequence", "type", "stage",
              "message", "payload", "createdAt"}


@pytest.fixture
def session_id(create_session):
    return create_session()["id"]


@pytest.fixture
def append(client, auth_headers):
    """POST an event; return the response."""
    def append_(sid, body, headers=None):
        return client.post(events_url(sid), json=body, headers={**auth_headers, **(headers or {})})
    return append_


@pytest.fixture
def append_ok(append):
    """POST an event that must be created; return its JSON."""
    def append_ok_(sid, body=None):
        response = append(sid, body or {"type": "info"})
        assert response.status_code == 201, response.json
        return response.json
    return append_ok_


@pytest.fixture
def poll(client, auth_headers):
    """GET the event list with a query string; return the 200 JSON."""
    def poll_(sid, query=""):
        response = client.get(f"{events_url(sid)}?{query}", headers=auth_headers)
        assert response.status_code == 200, response.json
        return response.json
    return poll_


def sequences(page):
    return [event["sequence"] for event in page["data"]]


# --- append --------------------------------------------------------------------------------

def test_append_answers_201_with_the_event(append, session_id):
    response = append(session_id, {"type": "info"})
    assert response.status_code == 201
    event = response.json
    assert set(event) == EVENT_KEYS
    assert EVENT_ID.match(event["id"]), event["id"]
    assert TIMESTAMP.match(event["createdAt"])
    assert event["type"] == "info"
    assert event["message"] is None and event["payload"] is None


def test_append_copies_ids_from_the_session(append_ok, create_session):
    session = create_session()
    event = append_ok(session["id"])
    assert event["sessionId"] == session["id"]
    assert (event["userId"], event["organizationId"]) == (session["userId"],
                                                          session["organizationId"])
    assert (event["userId"], event["organizationId"]) == ("user_1", "org_1")


def test_append_copies_a_null_organization(client, make_key):
    headers = make_key(user_id="solo", organization_id=None)
    sid = client.post(SESSIONS, json={}, headers=headers).json["id"]
    event = client.post(events_url(sid), json={"type": "info"}, headers=headers).json
    assert event["organizationId"] is None and event["userId"] == "solo"


def test_event_ids_are_unique(append_ok, session_id):
    ids = [append_ok(session_id)["id"] for _ in range(5)]
    assert len(set(ids)) == 5


def test_sequences_count_from_one(append_ok, session_id):
    assert [append_ok(session_id)["sequence"] for _ in range(4)] == [1, 2, 3, 4]


def test_sequences_are_per_session(append_ok, create_session):
    first, second = create_session()["id"], create_session()["id"]
    append_ok(first)
    append_ok(first)
    assert append_ok(second)["sequence"] == 1
    assert append_ok(first)["sequence"] == 3


@pytest.mark.parametrize("status", ["intake", "planning", "generating", "assembling",
                                    "completed", "failed", "cancelled"])
def test_stage_defaults_to_the_session_status(append_ok, set_status, session_id, status):
    if status != "intake":
        set_status(session_id, status)
    assert append_ok(session_id)["stage"] == status


def test_explicit_stage_is_kept(append_ok, session_id):
    assert append_ok(session_id, {"type": "info", "stage": "custom-stage"})["stage"] == \
        "custom-stage"


def test_message_and_payload_round_trip(append_ok, session_id, poll, client, auth_headers):
    body = {"type": "progress", "stage": "generating", "message": "Généré 3/4 🚀 生成",
            "payload": {"done": 3, "nested": {"list": [1, None, True, {"x": "ü"}]},
                        "ratio": 0.75, "big": 2 ** 63 - 1}}
    event = append_ok(session_id, body)
    assert {key: event[key] for key in body} == body
    [listed] = poll(session_id)["data"]
    assert listed == event
    assert client.get(session_url(session_id), headers=auth_headers).json["events"] == [event]


def test_null_message_and_payload_are_accepted(append_ok, session_id):
    event = append_ok(session_id, {"type": "info", "message": None, "payload": None})
    assert event["message"] is None and event["payload"] is None


@pytest.mark.parametrize("body", [
    {"type": "t" * 64}, {"type": "x"}, {"type": "info", "message": "m" * 10_000},
    {"type": "info", "message": ""}, {"type": "info", "stage": "s" * 64},
    {"type": "info", "payload": {}},
], ids=["type-64", "type-1", "message-10000", "message-empty", "stage-64", "payload-empty"])
def test_append_bounds_that_are_accepted(append_ok, session_id, body):
    event = append_ok(session_id, body)
    assert {key: event[key] for key in body} == body


@pytest.mark.parametrize("body, code, path", [
    ({}, "MISSING_REQUIRED_FIELD", "type"),
    ({"message": "no type"}, "MISSING_REQUIRED_FIELD", "type"),
    ({"type": ""}, "OUT_OF_RANGE", "type"),
    ({"type": "t" * 65}, "OUT_OF_RANGE", "type"),
    ({"type": None}, "INVALID_TYPE", "type"),
    ({"type": 5}, "INVALID_TYPE", "type"),
    ({"type": "info", "message": "m" * 10_001}, "OUT_OF_RANGE", "message"),
    ({"type": "info", "message": 5}, "INVALID_TYPE", "message"),
    ({"type": "info", "stage": "s" * 65}, "OUT_OF_RANGE", "stage"),
    ({"type": "info", "stage": ["a"]}, "INVALID_TYPE", "stage"),
    ({"type": "info", "payload": [1, 2]}, "INVALID_TYPE", "payload"),
    ({"type": "info", "payload": "text"}, "INVALID_TYPE", "payload"),
    ({"type": "info", "payload": 1}, "INVALID_TYPE", "payload"),
    ({"type": "info", "payload": nest(100)}, "OUT_OF_RANGE", "payload"),
    ({"type": "info", "bogus": 1}, "UNRECOGNIZED_KEYS", "bogus"),
    ({"type": "info", "sequence": 7}, "UNRECOGNIZED_KEYS", "sequence"),
    ({"type": "info", "createdAt": "2026-01-01T00:00:00.000Z"}, "UNRECOGNIZED_KEYS", "createdAt"),
], ids=["missing", "missing-with-message", "type-empty", "type-65", "type-null", "type-number",
        "message-10001", "message-number", "stage-65", "stage-list", "payload-list",
        "payload-string", "payload-number", "payload-too-deep", "unknown-key", "sequence-key",
        "createdAt-key"])
def test_append_errors(append, poll, session_id, body, code, path):
    assert_error(append(session_id, body), 400, code, path)
    assert poll(session_id)["data"] == []


@pytest.mark.parametrize("data, code", [
    ("[]", "INVALID_TYPE"), ('"info"', "INVALID_TYPE"), ("{", "INVALID_FORMAT"),
    ('{"type": "info", "payload": {"x": NaN}}', "INVALID_FORMAT"),
])
def test_append_body_errors(client, auth_headers, session_id, data, code):
    response = client.post(events_url(session_id), data=data,
                           headers={**auth_headers, **JSON_HEADERS})
    assert_error(response, 400, code, "")


def test_append_without_body_is_missing_type(client, auth_headers, session_id):
    response = client.post(events_url(session_id), headers=auth_headers)
    assert_error(response, 400, "MISSING_REQUIRED_FIELD", "type")


def test_append_several_problems_give_several_details(append, session_id):
    response = append(session_id, {"message": 1, "payload": [], "x": 1})
    assert_error(response, 400)
    assert sorted((d["code"], d["path"]) for d in response.json["details"]) == [
        ("INVALID_TYPE", "message"), ("INVALID_TYPE", "payload"),
        ("MISSING_REQUIRED_FIELD", "type"), ("UNRECOGNIZED_KEYS", "x")]


def test_append_non_json_is_415(client, auth_headers, session_id):
    response = client.post(events_url(session_id), data="type=info",
                           headers={**auth_headers, "Content-Type": "text/plain"})
    assert_error(response, 415)


def test_append_to_unknown_session_is_404(append):
    assert_error(append("sess_" + "N" * 24, {"type": "info"}), 404)


@pytest.mark.parametrize("terminal", ["completed", "failed", "cancelled"])
def test_append_to_terminal_session_is_allowed(append_ok, set_status, session_id, terminal):
    set_status(session_id, terminal)
    event = append_ok(session_id, {"type": "info", "message": "post-mortem"})
    assert event["sequence"] == 2
    assert event["stage"] == terminal


def test_append_does_not_change_the_session(append_ok, client, auth_headers, session_id):
    before = client.get(session_url(session_id), headers=auth_headers)
    append_ok(session_id)
    after = client.get(session_url(session_id), headers=auth_headers)
    assert after.json["updatedAt"] == before.json["updatedAt"]
    assert after.json["status"] == before.json["status"]


def test_event_created_at_follows_the_clock(clock, append_ok, session_id):
    clock.advance(42)
    assert append_ok(session_id)["createdAt"] == iso(clock.ms)


def test_event_created_at_never_goes_backwards(clock, append_ok, set_status, session_id):
    times = [append_ok(session_id)["createdAt"]]
    clock.advance(-60)
    times.append(append_ok(session_id)["createdAt"])
    clock.advance(-3600)
    set_status(session_id, "planning")
    clock.advance(-1)
    times.append(append_ok(session_id)["createdAt"])
    clock.advance(7200)
    times.append(append_ok(session_id)["createdAt"])
    assert times == sorted(times)
    assert all(TIMESTAMP.match(t) for t in times)


def test_status_changed_event_created_at_never_goes_backwards(clock, append_ok, set_status,
                                                              poll, session_id):
    first = append_ok(session_id)["createdAt"]
    clock.advance(-30)
    set_status(session_id, "planning")
    [_, changed] = poll(session_id)["data"]
    assert changed["type"] == "status.changed"
    assert changed["createdAt"] >= first


def test_status_changes_share_the_sequence_series(append_ok, set_status, poll, session_id):
    append_ok(session_id)
    set_status(session_id, "planning")
    append_ok(session_id)
    set_status(session_id, "generating")
    assert append_ok(session_id)["sequence"] == 5
    page = poll(session_id)
    assert sequences(page) == [1, 2, 3, 4, 5]
    assert [event["type"] for event in page["data"]] == [
        "info", "status.changed", "info", "status.changed", "info"]


# --- list events ---------------------------------------------------------------------------

@pytest.fixture
def five_events(append_ok, session_id):
    """Five events of `session_id`, oldest first."""
    return [append_ok(session_id, {"type": f"t{n}"}) for n in range(1, 6)]


def test_list_events_oldest_first(poll, session_id, five_events):
    page = poll(session_id)
    assert page["data"] == five_events
    assert page["pagination"] == {"limit": 100, "hasMore": False,
                                  "nextCursor": five_events[-1]["id"]}


def test_list_events_of_a_new_session(poll, session_id):
    assert poll(session_id) == {"data": [], "pagination": {
        "limit": 100, "hasMore": False, "nextCursor": None}}


@pytest.mark.parametrize("after, expected", [
    ("0", [1, 2, 3, 4, 5]), ("1", [2, 3, 4, 5]), ("3", [4, 5]), ("4", [5]), ("5", []),
    ("99", []), ("000002", [3, 4, 5]),
])
def test_list_events_after_a_sequence(poll, session_id, five_events, after, expected):
    assert sequences(poll(session_id, f"after={after}")) == expected


@pytest.mark.parametrize("index, expected", [(0, [2, 3, 4, 5]), (2, [4, 5]), (4, [])])
def test_list_events_after_an_event_id(poll, session_id, five_events, index, expected):
    assert sequences(poll(session_id, f"after={five_events[index]['id']}")) == expected


@pytest.mark.parametrize("limit, expected, has_more", [
    (1, [1], True), (2, [1, 2], True), (4, [1, 2, 3, 4], True), (5, [1, 2, 3, 4, 5], False),
    (1000, [1, 2, 3, 4, 5], False),
])
def test_list_events_limit(poll, session_id, five_events, limit, expected, has_more):
    page = poll(session_id, f"limit={limit}")
    assert sequences(page) == expected
    assert page["pagination"] == {"limit": limit, "hasMore": has_more,
                                  "nextCursor": five_events[len(expected) - 1]["id"]}


def test_list_events_limit_with_after(poll, session_id, five_events):
    page = poll(session_id, "after=1&limit=2")
    assert sequences(page) == [2, 3]
    assert page["pagination"] == {"limit": 2, "hasMore": True, "nextCursor": five_events[2]["id"]}


def test_an_empty_page_gives_back_the_after_it_was_asked_with(poll, session_id, five_events):
    """`after = nextCursor` is always the next poll: an empty page keeps the place."""
    last = five_events[-1]["id"]
    page = poll(session_id, f"after={last}")
    assert page == {"data": [], "pagination": {"limit": 100, "hasMore": False,
                                               "nextCursor": last}}
    for given in ("5", "005", "99"):  # a sequence number comes back as it was written
        assert poll(session_id, f"after={given}")["pagination"]["nextCursor"] == given


def test_next_cursor_is_null_only_for_an_empty_log_read_without_after(poll, session_id):
    assert poll(session_id)["pagination"]["nextCursor"] is None


def test_list_events_default_limit_is_100(append_ok, poll, session_id):
    events = [append_ok(session_id) for _ in range(101)]
    page = poll(session_id)
    assert sequences(page) == list(range(1, 101))
    assert page["pagination"] == {"limit": 100, "hasMore": True, "nextCursor": events[99]["id"]}
    rest = poll(session_id, f"after={page['pagination']['nextCursor']}")
    assert sequences(rest) == [101]
    assert rest["pagination"]["hasMore"] is False


@pytest.mark.parametrize("query, code, path", [
    ("limit=0", "OUT_OF_RANGE", "limit"),
    ("limit=1001", "OUT_OF_RANGE", "limit"),
    ("limit=-5", "OUT_OF_RANGE", "limit"),
    ("limit=abc", "INVALID_TYPE", "limit"),
    ("limit=2.5", "INVALID_TYPE", "limit"),
    ("after=garbage", "INVALID_FORMAT", "after"),
    ("after=-1", "INVALID_FORMAT", "after"),
    ("after=1.5", "INVALID_FORMAT", "after"),
    ("after=", "INVALID_FORMAT", "after"),
    ("after=evt_", "INVALID_FORMAT", "after"),
    ("after=evt_unknown", "INVALID_FORMAT", "after"),
    ("after=evt_" + "A" * 24, "INVALID_FORMAT", "after"),
    ("after=sess_" + "A" * 24, "INVALID_FORMAT", "after"),
])
def test_list_events_query_errors(client, auth_headers, session_id, five_events, query, code,
                                  path):
    response = client.get(f"{events_url(session_id)}?{query}", headers=auth_headers)
    assert_error(response, 400, code, path)


def test_after_an_event_of_another_session_is_invalid(
        client, auth_headers, append_ok, create_session, session_id):
    foreign = append_ok(create_session()["id"])["id"]
    append_ok(session_id)
    response = client.get(f"{events_url(session_id)}?after={foreign}", headers=auth_headers)
    assert_error(response, 400, "INVALID_FORMAT", "after")


def test_list_events_ignores_unknown_parameters(poll, session_id, five_events):
    assert sequences(poll(session_id, "limit=2&order=desc&foo=1")) == [1, 2]


def test_list_events_of_unknown_session_is_404(client, auth_headers):
    assert_error(client.get(events_url("sess_" + "U" * 24), headers=auth_headers), 404)


def test_polling_with_next_cursor_collects_every_event_once(append_ok, set_status, poll,
                                                            session_id):
    collected, after, appended = [], None, 0
    for round_number in range(8):
        for _ in range(round_number % 3):
            append_ok(session_id)
            appended += 1
        if round_number == 4:
            set_status(session_id, "planning")
            appended += 1
        while True:
            page = poll(session_id, "limit=2" + (f"&after={after}" if after else ""))
            collected += page["data"]
            if page["pagination"]["nextCursor"] is not None:
                after = page["pagination"]["nextCursor"]
            if not page["pagination"]["hasMore"]:
                break
    assert [event["sequence"] for event in collected] == list(range(1, appended + 1))
    assert len({event["id"] for event in collected}) == appended


def test_polling_by_sequence_number(append_ok, poll, session_id):
    append_ok(session_id)
    first = poll(session_id, "after=0")
    last = first["data"][-1]["sequence"]
    append_ok(session_id)
    append_ok(session_id)
    assert sequences(poll(session_id, f"after={last}")) == [2, 3]


# --- concurrency ---------------------------------------------------------------------------

def test_concurrent_appends_get_gapless_sequences(app, auth_headers, session_id, poll):
    threads_count, per_thread = 8, 25
    barrier = threading.Barrier(threads_count)
    results = [None] * threads_count

    def worker(index):
        client = app.test_client()
        barrier.wait()
        outcomes = []
        for n in range(per_thread):
            response = client.post(events_url(session_id),
                                   json={"type": "progress", "payload": {"t": index, "n": n}},
                                   headers=auth_headers)
            outcomes.append((response.status_code, response.json.get("sequence")))
        results[index] = outcomes

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    outcomes = [outcome for result in results for outcome in result]
    assert {status for status, _ in outcomes} == {201}
    total = threads_count * per_thread
    assert sorted(sequence for _, sequence in outcomes) == list(range(1, total + 1))
    page = poll(session_id, "limit=1000")
    assert sequences(page) == list(range(1, total + 1))
    # Each thread's own appends keep their order in the log.
    for index in range(threads_count):
        mine = [e["payload"]["n"] for e in page["data"] if e["payload"]["t"] == index]
        assert mine == list(range(per_thread))


# --- Idempotency-Key -----------------------------------------------------------------------

def total_sessions(client, headers):
    return client.get(SESSIONS, headers=headers).json["pagination"]["total"]


def test_create_retry_with_same_key_replays_the_first_answer(client, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "create-1"}
    first = client.post(SESSIONS, json={"prd": {"a": 1}}, headers=headers)
    second = client.post(SESSIONS, json={"prd": {"a": 1}}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Location"] == first.headers["Location"]
    assert second.headers["ETag"] == first.headers["ETag"]
    assert total_sessions(client, auth_headers) == 1


def test_create_retry_without_body_replays(client, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "create-empty"}
    first = client.post(SESSIONS, headers=headers)
    second = client.post(SESSIONS, headers=headers)
    assert second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert total_sessions(client, auth_headers) == 1


def test_create_replay_within_a_day(clock, client, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "create-late"}
    first = client.post(SESSIONS, json={}, headers=headers)
    clock.advance(23 * 3600)
    second = client.post(SESSIONS, json={}, headers=headers)
    assert second.json == first.json
    assert second.headers["Idempotent-Replayed"] == "true"
    assert total_sessions(client, auth_headers) == 1


def test_create_same_key_different_body_is_409(client, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "create-2"}
    assert client.post(SESSIONS, json={"prd": {"a": 1}}, headers=headers).status_code == 201
    response = client.post(SESSIONS, json={"prd": {"a": 2}}, headers=headers)
    assert_error(response, 409)
    assert "Idempotent-Replayed" not in response.headers
    assert total_sessions(client, auth_headers) == 1


def test_different_keys_create_different_sessions(client, auth_headers):
    first = client.post(SESSIONS, json={}, headers={**auth_headers, "Idempotency-Key": "k-a"})
    second = client.post(SESSIONS, json={}, headers={**auth_headers, "Idempotency-Key": "k-b"})
    assert first.json["id"] != second.json["id"]
    assert total_sessions(client, auth_headers) == 2


def test_keys_are_scoped_to_the_user(client, auth_headers, other_headers):
    mine = client.post(SESSIONS, json={}, headers={**auth_headers, "Idempotency-Key": "shared"})
    theirs = client.post(SESSIONS, json={},
                         headers={**other_headers, "Idempotency-Key": "shared"})
    assert theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs.headers
    assert theirs.json["id"] != mine.json["id"]
    assert theirs.json["userId"] == "user_2"
    assert total_sessions(client, auth_headers) == total_sessions(client, other_headers) == 1


def test_same_key_on_another_endpoint_is_409(client, auth_headers, session_id):
    headers = {**auth_headers, "Idempotency-Key": "reused"}
    assert client.post(SESSIONS, json={}, headers=headers).status_code == 201
    response = client.post(events_url(session_id), json={}, headers=headers)
    assert_error(response, 409)


@pytest.mark.parametrize("key", ["k" * 256, "k" * 1000, ""], ids=["256", "1000", "empty"])
def test_key_outside_1_to_255_characters_is_400(client, auth_headers, key):
    response = client.post(SESSIONS, json={}, headers={**auth_headers, "Idempotency-Key": key})
    assert_error(response, 400)
    assert total_sessions(client, auth_headers) == 0


def test_key_of_255_characters_is_accepted(client, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "k" * 255}
    first = client.post(SESSIONS, json={}, headers=headers)
    assert first.status_code == 201
    assert client.post(SESSIONS, json={}, headers=headers).json == first.json


def test_failed_create_does_not_poison_the_key(client, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "retry-after-400"}
    first = client.post(SESSIONS, json={"prd": "not an object"}, headers=headers)
    assert_error(first, 400, "INVALID_TYPE", "prd")
    again = client.post(SESSIONS, json={"prd": "not an object"}, headers=headers)
    assert_error(again, 400, "INVALID_TYPE", "prd")
    assert "Idempotent-Replayed" not in again.headers
    fixed = client.post(SESSIONS, json={"prd": {}}, headers=headers)
    assert fixed.status_code == 201
    assert total_sessions(client, auth_headers) == 1


def test_event_retry_with_same_key_replays_the_first_answer(client, auth_headers, session_id,
                                                            poll):
    headers = {**auth_headers, "Idempotency-Key": "event-1"}
    body = {"type": "progress", "payload": {"done": 1}}
    first = client.post(events_url(session_id), json=body, headers=headers)
    second = client.post(events_url(session_id), json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.get_data() == first.get_data()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(poll(session_id)["data"]) == 1


def test_event_same_key_different_body_is_409(client, auth_headers, session_id, poll):
    headers = {**auth_headers, "Idempotency-Key": "event-2"}
    client.post(events_url(session_id), json={"type": "a"}, headers=headers)
    assert_error(client.post(events_url(session_id), json={"type": "b"}, headers=headers), 409)
    assert [e["type"] for e in poll(session_id)["data"]] == ["a"]


def test_event_same_key_other_session_is_409(client, auth_headers, create_session, poll):
    first, second = create_session()["id"], create_session()["id"]
    headers = {**auth_headers, "Idempotency-Key": "event-3"}
    client.post(events_url(first), json={"type": "a"}, headers=headers)
    assert_error(client.post(events_url(second), json={"type": "a"}, headers=headers), 409)
    assert poll(second)["data"] == []


def test_event_keys_are_scoped_to_the_user(client, auth_headers, other_headers, session_id):
    theirs = client.post(SESSIONS, json={}, headers=other_headers).json["id"]
    mine = client.post(events_url(session_id), json={"type": "a"},
                       headers={**auth_headers, "Idempotency-Key": "ev-shared"})
    other = client.post(events_url(theirs), json={"type": "a"},
                        headers={**other_headers, "Idempotency-Key": "ev-shared"})
    assert mine.status_code == other.status_code == 201
    assert "Idempotent-Replayed" not in other.headers
    assert other.json["sessionId"] == theirs and other.json["userId"] == "user_2"


def test_failed_event_does_not_poison_the_key(client, auth_headers, session_id, poll):
    headers = {**auth_headers, "Idempotency-Key": "event-retry"}
    bad = client.post(events_url(session_id), json={"type": ""}, headers=headers)
    assert_error(bad, 400, "OUT_OF_RANGE", "type")
    again = client.post(events_url(session_id), json={"type": ""}, headers=headers)
    assert_error(again, 400, "OUT_OF_RANGE", "type")
    assert "Idempotent-Replayed" not in again.headers
    fixed = client.post(events_url(session_id), json={"type": "ok"}, headers=headers)
    assert fixed.status_code == 201
    assert fixed.json["sequence"] == 1
    assert len(poll(session_id)["data"]) == 1


def test_event_404_with_key_is_not_replayed_as_success(client, auth_headers):
    headers = {**auth_headers, "Idempotency-Key": "event-404"}
    missing = events_url("sess_" + "M" * 24)
    assert_error(client.post(missing, json={"type": "a"}, headers=headers), 404)
    again = client.post(missing, json={"type": "a"}, headers=headers)
    assert_error(again, 404)
    assert "Idempotent-Replayed" not in again.headers


def test_event_key_of_256_characters_is_400(client, auth_headers, session_id, poll):
    response = client.post(events_url(session_id), json={"type": "a"},
                           headers={**auth_headers, "Idempotency-Key": "e" * 256})
    assert_error(response, 400)
    assert poll(session_id)["data"] == []
