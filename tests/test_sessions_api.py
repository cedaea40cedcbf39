"""Sessions through HTTP only: create, read, list, update, delete, expiry and body errors."""
import base64
import hashlib
import json
import re
from urllib.parse import urlsplit

import pytest

from gensessions import create_app
from helpers import (DAY, JSON_HEADERS, NON_TERMINAL, SESSIONS, STATUSES, TERMINAL, TIMESTAMP,
                     assert_error, bearer, iso, issue_key, nest, raw_key, session_url)

SESSION_ID = re.compile(r"^sess_[A-Za-z0-9_-]{20,}$")
OBJECT_FIELDS = ["assemblyState", "plan", "prd", "productObject"]
SESSION_KEYS = {"id", "userId", "organizationId", "status", "prd", "plan", "productObject",
                "productObjectHash", "assemblyState", "catalogVersion", "schemaVersion",
                "createdAt", "updatedAt", "expiresAt"}
WEEK = 7 * DAY

# The vendor pages' curl bodies, character for character (create-session.txt, update-session.txt).
VENDOR_CREATE_BODY = """{
 "catalogVersion": "1.0",
 "prd": {
 "description": "An AI-powered customer support product",
 "title": "AI Customer Support"
 },
 "schemaVersion": "1.0"
}"""
VENDOR_UPDATE_BODY = """{
 "plan": {
 "capabilities": [
 "chat",
 "search"
 ],
 "surfaces": [
 "widget"
 ]
 },
 "status": "generating"
}"""


def bare(headers):
    """The vendor curl's form of a credential: `Authorization: <key>`."""
    return {"Authorization": raw_key(headers)}


def canonical_sha256(value):
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def get(client, auth_headers):
    def get_(session_id, headers=None):
        return client.get(session_url(session_id), headers=headers or auth_headers)
    return get_


@pytest.fixture
def patch(client, auth_headers):
    def patch_(session_id, body, headers=None):
        return client.patch(session_url(session_id), json=body,
                            headers={**auth_headers, **(headers or {})})
    return patch_


@pytest.fixture
def listing(client, auth_headers):
    def list_(query=""):
        response = client.get(f"{SESSIONS}?{query}", headers=auth_headers)
        assert response.status_code == 200, response.json
        return response.json
    return list_


def walk_with_cursor(listing, limit, query="", between_pages=None):
    """Follow nextCursor to the end; return (ids in order, totals seen)."""
    ids, totals = [], []
    page = listing(f"limit={limit}&{query}")
    while True:
        ids += [item["id"] for item in page["data"]]
        totals.append(page["pagination"]["total"])
        if not page["pagination"]["hasMore"]:
            assert page["pagination"]["nextCursor"] is None
            return ids, totals
        if between_pages:
            between_pages()
        page = listing(f"limit={limit}&cursor={page['pagination']['nextCursor']}&{query}")


def order_key(session):
    return session["createdAt"], session["id"]


# --- create --------------------------------------------------------------------------------

def test_create_with_empty_json_body_is_a_default_session(client, auth_headers):
    response = client.post(SESSIONS, json={}, headers=auth_headers)
    assert response.status_code == 201
    body = response.json
    assert set(body) == SESSION_KEYS
    assert body["status"] == "intake"
    assert (body["userId"], body["organizationId"]) == ("user_1", "org_1")


def test_create_without_any_body(client, auth_headers):
    response = client.post(SESSIONS, headers=auth_headers)
    assert response.status_code == 201
    assert response.json["status"] == "intake"


def test_create_with_whitespace_only_json_body(client, auth_headers):
    response = client.post(SESSIONS, data="  \n", headers={**auth_headers, **JSON_HEADERS})
    assert response.status_code == 201


@pytest.mark.parametrize("body", [None, {}], ids=["no-body", "empty-object"])
def test_fields_not_given_are_null(client, auth_headers, body):
    kwargs = {} if body is None else {"json": body}
    created = client.post(SESSIONS, headers=auth_headers, **kwargs).json
    for field in ("prd", "plan", "productObject", "productObjectHash", "assemblyState",
                  "catalogVersion", "schemaVersion"):
        assert field in created and created[field] is None, field


def test_create_with_all_fields(client, auth_headers):
    body = {"catalogVersion": "v2.4.1", "prd": {"name": "AI Content Generator", "n": [1, 2]},
            "schemaVersion": "1.0.0"}
    response = client.post(SESSIONS, json=body, headers=auth_headers)
    assert response.status_code == 201
    created = response.json
    assert {key: created[key] for key in body} == body
    assert created["plan"] is None and created["productObject"] is None


def test_create_with_null_prd(client, auth_headers):
    response = client.post(SESSIONS, json={"prd": None}, headers=auth_headers)
    assert response.status_code == 201
    assert response.json["prd"] is None


def test_create_replays_the_vendor_example_as_written(client, auth_headers, get):
    response = client.post(SESSIONS, data=VENDOR_CREATE_BODY,
                           headers={**bare(auth_headers), **JSON_HEADERS})
    assert response.status_code == 201, response.json
    created = response.json
    assert created["catalogVersion"] == "1.0" and created["schemaVersion"] == "1.0"
    assert created["prd"] == {"description": "An AI-powered customer support product",
                              "title": "AI Customer Support"}
    assert get(created["id"]).json["prd"] == created["prd"]


def test_create_answers_location_of_the_new_session(client, auth_headers, get):
    response = client.post(SESSIONS, json={}, headers=auth_headers)
    location = response.headers["Location"]
    assert urlsplit(location).path == session_url(response.json["id"])
    assert get(urlsplit(location).path.rsplit("/", 1)[1]).status_code == 200


def test_create_answers_the_etag_a_get_answers(client, auth_headers, get):
    response = client.post(SESSIONS, json={}, headers=auth_headers)
    assert response.headers["ETag"]
    assert get(response.json["id"]).headers["ETag"] == response.headers["ETag"]


def test_create_id_format_and_uniqueness(create_session):
    ids = [create_session()["id"] for _ in range(5)]
    assert all(SESSION_ID.match(session_id) for session_id in ids), ids
    assert len(set(ids)) == 5


def test_created_session_has_no_events_key(create_session):
    assert "events" not in create_session()


def test_timestamps_and_default_expiry(clock, create_session):
    created = create_session()
    for field in ("createdAt", "updatedAt", "expiresAt"):
        assert TIMESTAMP.match(created[field]), created[field]
    assert created["createdAt"] == "2026-11-23T09:15:30.123Z" == iso(clock.ms)
    assert created["updatedAt"] == created["createdAt"]
    assert created["expiresAt"] == "2026-11-30T09:15:30.123Z" == iso(clock.ms + WEEK * 1000)


def test_session_ttl_setting_changes_expiry(database_url, clock):
    app = create_app({"DATABASE_URL": database_url, "TESTING": True, "PURGE_SCHEDULE": "off",
                      "SESSION_TTL": 60})
    headers = bearer(issue_key(app))
    created = app.test_client().post(SESSIONS, json={}, headers=headers).json
    assert created["expiresAt"] == iso(clock.ms + 60_000)


@pytest.mark.parametrize("key", ["userId", "organizationId", "id", "status", "events",
                                 "createdAt", "expiresAt", "plan"])
def test_create_refuses_keys_it_does_not_take(client, auth_headers, key):
    response = client.post(SESSIONS, json={key: "x"}, headers=auth_headers)
    assert_error(response, 400, "UNRECOGNIZED_KEYS", key)


@pytest.mark.parametrize("field", ["catalogVersion", "schemaVersion"])
def test_version_of_64_characters_is_accepted(client, auth_headers, field):
    response = client.post(SESSIONS, json={field: "v" * 64}, headers=auth_headers)
    assert response.status_code == 201
    assert response.json[field] == "v" * 64


# --- prd round trip -----------------------------------------------------------------------

PRD_VALUES = {
    "nested-30": nest(30),
    "unicode": {"emoji": "🚀👩‍💻🇫🇷", "cjk": "生成セッション제품", "rtl": "مرحبا שלום",
                "🔑 ключ": "combining é vs é", "controls": "tab\tnew\nline\u0001soh\"q\\"},
    "lists": {"flat": [1, "two", None, True], "nested": [[[]], [{"a": [1, [2, [3]]]}]],
              "objects": [{}, {"x": []}]},
    "numbers": {"zero": 0, "negative": -17, "int64max": 2 ** 63 - 1, "int64min": -(2 ** 63),
                "uint64max": 2 ** 64 - 1, "float": 0.1, "tiny": 5e-324,
                "huge": 1.7976931348623157e308, "price": 49.99, "exp": 1.5e-10},
    "booleans-and-nulls": {"t": True, "f": False, "n": None, "inner": {"n": None}},
    "empty": {},
    "odd-keys": {"": "empty key", " ": "space", "a.b": 1, "$ref": "#/x", "__proto__": {}},
}


@pytest.mark.parametrize("prd", PRD_VALUES.values(), ids=PRD_VALUES.keys())
def test_prd_is_returned_exactly(client, auth_headers, get, listing, prd):
    created = client.post(SESSIONS, json={"prd": prd}, headers=auth_headers)
    assert created.status_code == 201, created.json
    assert created.json["prd"] == prd
    assert get(created.json["id"]).json["prd"] == prd
    assert listing()["data"][0]["prd"] == prd


@pytest.mark.parametrize("body, path", [
    ({"prd": {"a": "x\u0000y"}}, "prd.a"),
    ({"prd": {"list": [1, {"deep": "\u0000"}]}}, "prd.list.1.deep"),
    ({"plan": {"key\u0000": 1}}, "plan.key\u0000"),
    ({"catalogVersion": "v1\u0000"}, "catalogVersion"),
], ids=["value", "nested-in-list", "key", "plain-field"])
def test_a_nul_in_any_string_is_refused_on_every_database(client, auth_headers, body, path):
    """PostgreSQL stores no NUL in text or JSONB; SQLite refuses it too, so both agree."""
    response = client.post(SESSIONS, json=body, headers=auth_headers)
    assert_error(response, 400, "INVALID_FORMAT", path)
    assert client.get(SESSIONS, headers=auth_headers).json["pagination"]["total"] == 0


def test_prd_float_and_integer_stay_apart(client, auth_headers, get):
    created = client.post(SESSIONS, json={"prd": {"i": 1, "f": 1.0}}, headers=auth_headers)
    prd = get(created.json["id"]).json["prd"]
    assert type(prd["i"]) is int and type(prd["f"]) is float


def test_prd_nested_64_levels_is_accepted(client, auth_headers, get):
    created = client.post(SESSIONS, json={"prd": nest(64)}, headers=auth_headers)
    assert created.status_code == 201, created.json
    assert get(created.json["id"]).json["prd"] == nest(64)


@pytest.mark.parametrize("depth", [66, 100, 500])
def test_prd_nested_beyond_64_levels_is_out_of_range(client, auth_headers, listing, depth):
    # The stdlib encoder: the test client's (orjson) stops at 255 levels.
    response = client.post(SESSIONS, data=json.dumps({"prd": nest(depth)}),
                           headers={**auth_headers, **JSON_HEADERS})
    assert_error(response, 400, "OUT_OF_RANGE", "prd")
    assert listing()["pagination"]["total"] == 0


def test_prd_nested_lists_beyond_64_levels_is_out_of_range(client, auth_headers):
    deep = [0]
    for _ in range(70):
        deep = [deep]
    response = client.post(SESSIONS, json={"prd": {"list": deep}}, headers=auth_headers)
    assert_error(response, 400, "OUT_OF_RANGE", "prd")


@pytest.mark.parametrize("field", OBJECT_FIELDS)
def test_patch_object_nested_beyond_64_levels_is_out_of_range(create_session, patch, field):
    response = patch(create_session()["id"], {field: nest(100)})
    assert_error(response, 400, "OUT_OF_RANGE", field)


@pytest.mark.parametrize("number", [b"18446744073709551616", b"-9223372036854775809",
                                    b"123456789012345678901234567890"])
def test_integer_beyond_64_bits_is_refused_not_rounded(client, auth_headers, number):
    response = client.post(SESSIONS, data=b'{"prd": {"n": ' + number + b"}}",
                           headers={**auth_headers, **JSON_HEADERS})
    assert_error(response, 400)


# --- get -----------------------------------------------------------------------------------

def test_get_answers_session_with_events_oldest_first(client, auth_headers, create_session,
                                                      set_status, get):
    session_id = create_session()["id"]
    for kind in ("info", "progress"):
        client.post(f"{session_url(session_id)}/events", json={"type": kind}, headers=auth_headers)
    set_status(session_id, "planning")
    client.post(f"{session_url(session_id)}/events", json={"type": "warning"}, headers=auth_headers)
    response = get(session_id)
    assert response.status_code == 200
    assert set(response.json) == SESSION_KEYS | {"events"}
    events = response.json["events"]
    assert [e["type"] for e in events] == ["info", "progress", "status.changed", "warning"]
    assert [e["sequence"] for e in events] == [1, 2, 3, 4]
    assert response.headers["ETag"]


def test_get_of_new_session_has_empty_events(create_session, get):
    assert get(create_session()["id"]).json["events"] == []


def test_get_answers_the_same_fields_as_create(create_session, get):
    created = create_session({"prd": {"a": 1}, "catalogVersion": "c"})
    fetched = get(created["id"]).json
    fetched.pop("events")
    assert fetched == created


def test_get_with_vendor_headers(client, auth_headers, create_session):
    """The vendor's GET curl sends a bare key and a Content-Type with no body."""
    session_id = create_session()["id"]
    response = client.get(session_url(session_id), headers={**bare(auth_headers), **JSON_HEADERS})
    assert response.status_code == 200
    assert response.json["id"] == session_id


@pytest.mark.parametrize("session_id", [
    "sess_" + "A" * 24, "sess_", "nope", "evt_" + "a" * 24, "x" * 10_000, "sess_%E2%9C%93",
    "sess_abc%20def",
], ids=["unknown", "prefix-only", "malformed", "event-id", "10000-chars", "unicode", "space"])
def test_get_unknown_or_malformed_id_is_404(client, auth_headers, create_session, session_id):
    create_session()
    assert_error(client.get(session_url(session_id), headers=auth_headers), 404)


# --- list ----------------------------------------------------------------------------------

def test_list_is_newest_first(clock, create_session, listing):
    ids = []
    for _ in range(4):
        ids.append(create_session()["id"])
        clock.advance(1)
    assert [item["id"] for item in listing()["data"]] == ids[::-1]


def test_list_breaks_created_at_ties_by_id_descending(clock, create_session, listing):
    created = [create_session() for _ in range(12)]
    clock.advance(5)
    created += [create_session() for _ in range(3)]
    expected = [s["id"] for s in sorted(created, key=order_key, reverse=True)]
    assert [item["id"] for item in listing("limit=100")["data"]] == expected


def test_list_items_have_no_events(create_session, listing):
    create_session()
    assert "events" not in listing()["data"][0]
    assert set(listing()["data"][0]) == SESSION_KEYS


def test_list_of_nothing(listing):
    assert listing() == {"data": [], "pagination": {
        "limit": 20, "offset": 0, "total": 0, "hasMore": False, "nextCursor": None}}


def test_list_default_limit_is_20(clock, create_session, listing):
    for _ in range(21):
        create_session()
    page = listing()
    assert len(page["data"]) == 20
    pagination = page["pagination"]
    assert (pagination["limit"], pagination["offset"], pagination["total"],
            pagination["hasMore"]) == (20, 0, 21, True)
    assert isinstance(pagination["nextCursor"], str) and pagination["nextCursor"]


@pytest.fixture
def five_sessions(clock, create_session):
    """Five sessions, one second apart; their ids newest first."""
    ids = []
    for _ in range(5):
        ids.append(create_session()["id"])
        clock.advance(1)
    return ids[::-1]


@pytest.mark.parametrize("limit, offset, count, has_more", [
    (2, 0, 2, True), (2, 1, 2, True), (2, 3, 2, False), (2, 4, 1, False),
    (5, 0, 5, False), (100, 0, 5, False), (1, 4, 1, False), (3, 5, 0, False), (3, 50, 0, False),
])
def test_list_limit_and_offset(five_sessions, listing, limit, offset, count, has_more):
    page = listing(f"limit={limit}&offset={offset}")
    assert [item["id"] for item in page["data"]] == five_sessions[offset:offset + limit]
    assert len(page["data"]) == count
    pagination = page["pagination"]
    assert (pagination["limit"], pagination["offset"], pagination["total"],
            pagination["hasMore"]) == (limit, offset, 5, has_more)
    assert (pagination["nextCursor"] is not None) == has_more


def test_list_filters_by_status(create_session, set_status, listing):
    ids = [create_session()["id"] for _ in range(4)]
    set_status(ids[1], "planning")
    set_status(ids[2], "planning")
    set_status(ids[3], "failed")
    planning = listing("status=planning")
    assert {item["id"] for item in planning["data"]} == {ids[1], ids[2]}
    assert planning["pagination"]["total"] == 2
    assert [item["id"] for item in listing("status=intake")["data"]] == [ids[0]]
    assert listing("status=completed")["pagination"]["total"] == 0


STATUS_SUGGESTION = ("Expected one of: intake, planning, generating, assembling, completed, "
                     "failed, cancelled.")


@pytest.mark.parametrize("query, code, path", [
    ("status=bogus", "INVALID_ENUM", "status"),
    ("status=", "INVALID_ENUM", "status"),
    ("status=INTAKE", "INVALID_ENUM", "status"),
    ("limit=abc", "INVALID_TYPE", "limit"),
    ("limit=1.5", "INVALID_TYPE", "limit"),
    ("limit=", "INVALID_TYPE", "limit"),
    ("limit=0", "OUT_OF_RANGE", "limit"),
    ("limit=101", "OUT_OF_RANGE", "limit"),
    ("limit=-1", "OUT_OF_RANGE", "limit"),
    ("offset=-1", "OUT_OF_RANGE", "offset"),
    ("offset=x", "INVALID_TYPE", "offset"),
    ("cursor=garbage", "INVALID_FORMAT", "cursor"),
    ("cursor=", "INVALID_FORMAT", "cursor"),
    ("cursor=%FF%FE", "INVALID_FORMAT", "cursor"),
])
def test_list_query_errors(client, auth_headers, query, code, path):
    assert_error(client.get(f"{SESSIONS}?{query}", headers=auth_headers), 400, code, path)


def test_list_bad_status_suggests_the_statuses(client, auth_headers):
    item = assert_error(client.get(f"{SESSIONS}?status=bogus", headers=auth_headers),
                        400, "INVALID_ENUM", "status")
    assert item["suggestion"] == STATUS_SUGGESTION


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1"])
def test_list_range_errors_suggest_bounds(client, auth_headers, query):
    item = assert_error(client.get(f"{SESSIONS}?{query}", headers=auth_headers),
                        400, "OUT_OF_RANGE")
    assert item.get("suggestion")


def test_list_reports_each_bad_parameter(client, auth_headers):
    response = client.get(f"{SESSIONS}?status=x&limit=abc&offset=-1", headers=auth_headers)
    assert_error(response, 400)
    assert {(d["code"], d["path"]) for d in response.json["details"]} == {
        ("INVALID_ENUM", "status"), ("INVALID_TYPE", "limit"), ("OUT_OF_RANGE", "offset")}


def test_cursor_with_nonzero_offset_is_custom_validation(client, auth_headers, create_session,
                                                         listing):
    for _ in range(3):
        create_session()
    cursor = listing("limit=1")["pagination"]["nextCursor"]
    response = client.get(f"{SESSIONS}?cursor={cursor}&offset=5", headers=auth_headers)
    assert_error(response, 400, "CUSTOM_VALIDATION", "cursor")


def test_cursor_with_zero_offset_is_accepted(create_session, listing):
    for _ in range(3):
        create_session()
    cursor = listing("limit=1")["pagination"]["nextCursor"]
    assert len(listing(f"cursor={cursor}&offset=0&limit=1")["data"]) == 1


def test_unknown_query_parameters_are_ignored(five_sessions, listing):
    page = listing("limit=2&foo=bar&sort=asc&page=3&userId=user_2")
    assert [item["id"] for item in page["data"]] == five_sessions[:2]


def test_list_limit_100_is_accepted(listing):
    assert listing("limit=100")["pagination"]["limit"] == 100


@pytest.mark.parametrize("offset", ["2147483648", "9" * 19, "9" * 25])
def test_huge_offset_is_out_of_range(client, auth_headers, create_session, offset):
    """offset is "integer >= 0" up to 2^31-1; past that it is a 400, never a database overflow."""
    create_session()
    response = client.get(f"{SESSIONS}?offset={offset}", headers=auth_headers)
    detail = assert_error(response, 400, "OUT_OF_RANGE", "offset")
    assert "2147483647" in detail["suggestion"]


def test_largest_offset_is_an_empty_page(client, auth_headers, create_session):
    create_session()
    response = client.get(f"{SESSIONS}?offset=2147483647", headers=auth_headers)
    assert response.status_code == 200
    assert response.json["data"] == [] and response.json["pagination"]["total"] == 1


def test_forged_cursor_with_huge_timestamp_is_invalid_format(client, auth_headers, create_session):
    create_session()
    forged = base64.urlsafe_b64encode(b"9" * 30 + b".sess_abcdefghijklmnopqrst").decode()
    response = client.get(f"{SESSIONS}?cursor={forged.rstrip('=')}", headers=auth_headers)
    assert_error(response, 400, "INVALID_FORMAT", "cursor")


def test_cursor_walk_with_equal_timestamps_while_sessions_are_created(
        clock, create_session, listing):
    original = {create_session()["id"] for _ in range(30)}
    created_later = set()

    def create_two():
        created_later.update(create_session()["id"] for _ in range(2))

    ids, _ = walk_with_cursor(listing, 7, between_pages=create_two)
    assert len(ids) == len(set(ids)), "a session was repeated"
    assert original <= set(ids), "a session was skipped"
    assert set(ids) <= original | created_later
    assert ids == sorted(ids, reverse=True)  # same createdAt: id descending


def test_cursor_walk_with_advancing_clock_while_sessions_are_created(
        clock, create_session, listing):
    created = []
    for _ in range(23):
        created.append(create_session())
        clock.advance(0.25)

    def create_one():
        clock.advance(1)
        create_session()

    ids, _ = walk_with_cursor(listing, 5, between_pages=create_one)
    assert ids == [s["id"] for s in sorted(created, key=order_key, reverse=True)]


def test_cursor_walk_with_mixed_timestamps_and_deletions(client, auth_headers, clock,
                                                         create_session, listing):
    created = []
    for index in range(20):
        created.append(create_session())
        if index % 3 == 0:
            clock.advance(0.001)
    expected = [s["id"] for s in sorted(created, key=order_key, reverse=True)]
    first = listing("limit=6")
    seen = [item["id"] for item in first["data"]]
    # A session deleted between pages (one not yet seen) just drops out.
    gone = expected[10]
    assert client.delete(session_url(gone), headers=auth_headers).status_code == 204
    rest, _ = walk_with_cursor(
        lambda query: listing(f"{query}&cursor={first['pagination']['nextCursor']}"), 6)
    assert seen + rest == [i for i in expected if i != gone]


def test_cursor_walk_with_status_filter(create_session, set_status, listing):
    ids = [create_session()["id"] for _ in range(9)]
    for session_id in ids[::2]:
        set_status(session_id, "generating")
    walked, totals = walk_with_cursor(listing, 2, "status=generating")
    assert sorted(walked) == sorted(ids[::2])
    assert set(totals) == {5}


def test_offset_and_cursor_give_the_same_order_and_totals(clock, create_session, listing):
    for index in range(13):
        create_session()
        if index % 4 == 0:
            clock.advance(1)
    by_cursor, cursor_totals = walk_with_cursor(listing, 4)
    by_offset, offset_totals = [], []
    for offset in range(0, 13, 4):
        page = listing(f"limit=4&offset={offset}")
        by_offset += [item["id"] for item in page["data"]]
        offset_totals.append(page["pagination"]["total"])
    assert by_cursor == by_offset
    assert set(cursor_totals) == set(offset_totals) == {13}


def test_cursor_of_last_page_is_null(create_session, listing):
    for _ in range(4):
        create_session()
    page = listing("limit=2")
    page = listing(f"limit=2&cursor={page['pagination']['nextCursor']}")
    assert len(page["data"]) == 2
    assert page["pagination"]["hasMore"] is False
    assert page["pagination"]["nextCursor"] is None


# --- patch ---------------------------------------------------------------------------------

@pytest.mark.parametrize("field", OBJECT_FIELDS)
def test_patch_replaces_an_object_whole(create_session, patch, get, field):
    session_id = create_session()["id"]
    patch(session_id, {field: {"keep": {"a": 1, "b": 2}, "other": [1, 2]}})
    response = patch(session_id, {field: {"keep": {"a": 3}}})
    assert response.status_code == 200
    assert response.json[field] == {"keep": {"a": 3}}
    assert get(session_id).json[field] == {"keep": {"a": 3}}


@pytest.mark.parametrize("field", OBJECT_FIELDS + ["productObjectHash"])
def test_patch_null_clears_a_field(create_session, patch, get, field):
    session_id = create_session({"prd": {"a": 1}})["id"]
    value = "f" * 64 if field == "productObjectHash" else {"a": 1}
    assert patch(session_id, {field: value}).json[field] == value
    response = patch(session_id, {field: None})
    assert response.status_code == 200
    assert response.json[field] is None
    assert get(session_id).json[field] is None


def test_patch_leaves_fields_it_does_not_name(create_session, patch):
    created = create_session({"prd": {"p": 1}, "catalogVersion": "c1", "schemaVersion": "s1"})
    patch(created["id"], {"plan": {"x": 1}})
    updated = patch(created["id"], {"assemblyState": {"step": 2}}).json
    assert updated["prd"] == {"p": 1} and updated["plan"] == {"x": 1}
    assert (updated["catalogVersion"], updated["schemaVersion"]) == ("c1", "s1")
    assert (updated["createdAt"], updated["expiresAt"]) == (created["createdAt"],
                                                            created["expiresAt"])


def test_patch_answers_session_without_events(create_session, patch):
    response = patch(create_session()["id"], {"status": "planning"})
    assert set(response.json) == SESSION_KEYS


def test_empty_patch_changes_nothing(clock, client, auth_headers, create_session, patch, get):
    session_id = create_session({"prd": {"a": 1}})["id"]
    clock.advance(10)
    before = get(session_id)
    response = patch(session_id, {})
    assert response.status_code == 200
    assert response.json == {k: v for k, v in before.json.items() if k != "events"}
    assert response.headers["ETag"] == before.headers["ETag"]
    after = get(session_id)
    assert after.json == before.json
    assert after.headers["ETag"] == before.headers["ETag"]


def test_empty_patch_without_body_changes_nothing(client, auth_headers, create_session, get):
    session_id = create_session()["id"]
    before = get(session_id)
    response = client.patch(session_url(session_id), headers=auth_headers)
    assert response.status_code == 200
    assert response.json["updatedAt"] == before.json["updatedAt"]
    assert response.headers["ETag"] == before.headers["ETag"]


def test_product_object_hash_is_canonical_sha256(create_session, patch, get):
    session_id = create_session()["id"]
    product = {"zeta": {"b": 2, "a": ["ü", {"y": None, "x": True}]}, "alpha": "生成 🚀",
               "mid": 1.5, "émoji": "é"}
    response = patch(session_id, {"productObject": product})
    expected = canonical_sha256(product)
    assert response.json["productObjectHash"] == expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected)
    assert get(session_id).json["productObjectHash"] == expected


def test_product_object_hash_ignores_key_order(create_session, patch):
    first, second = create_session()["id"], create_session()["id"]
    one = patch(first, {"productObject": {"b": {"d": 1, "c": 2}, "a": "ä"}}).json
    two = patch(second, {"productObject": {"a": "ä", "b": {"c": 2, "d": 1}}}).json
    assert one["productObjectHash"] == two["productObjectHash"]


def test_product_object_hash_does_not_escape_non_ascii(create_session, patch):
    product = {"name": "Ünïcödé 生成"}
    response = patch(create_session()["id"], {"productObject": product})
    escaped = hashlib.sha256(json.dumps(product, sort_keys=True, separators=(",", ":"))
                             .encode()).hexdigest()
    assert response.json["productObjectHash"] == canonical_sha256(product) != escaped


def test_product_object_hash_of_empty_object(create_session, patch):
    response = patch(create_session()["id"], {"productObject": {}})
    assert response.json["productObjectHash"] == hashlib.sha256(b"{}").hexdigest()


def test_explicit_product_object_hash_wins(create_session, patch):
    response = patch(create_session()["id"], {"productObject": {"a": 1},
                                              "productObjectHash": "client-hash"})
    assert response.json["productObjectHash"] == "client-hash"


def test_explicit_null_hash_with_product_object_wins(create_session, patch):
    response = patch(create_session()["id"], {"productObject": {"a": 1},
                                              "productObjectHash": None})
    assert response.json["productObject"] == {"a": 1}
    assert response.json["productObjectHash"] is None


def test_null_product_object_clears_the_hash(create_session, patch):
    session_id = create_session()["id"]
    assert patch(session_id, {"productObject": {"a": 1}}).json["productObjectHash"]
    response = patch(session_id, {"productObject": None})
    assert response.json["productObject"] is None
    assert response.json["productObjectHash"] is None


def test_hash_alone_can_be_set(create_session, patch):
    session_id = create_session()["id"]
    patch(session_id, {"productObject": {"a": 1}})
    response = patch(session_id, {"productObjectHash": "h" * 128})
    assert response.json["productObjectHash"] == "h" * 128
    assert response.json["productObject"] == {"a": 1}


def test_hash_is_kept_when_product_object_is_not_given(create_session, patch):
    session_id = create_session()["id"]
    hashed = patch(session_id, {"productObject": {"a": 1}}).json["productObjectHash"]
    assert patch(session_id, {"plan": {"p": 1}}).json["productObjectHash"] == hashed


def test_hash_over_128_characters_is_out_of_range(create_session, patch, get):
    session_id = create_session()["id"]
    response = patch(session_id, {"productObjectHash": "h" * 129})
    assert_error(response, 400, "OUT_OF_RANGE", "productObjectHash")
    assert get(session_id).json["productObjectHash"] is None


def test_updated_at_moves_on_change_with_frozen_clock(clock, create_session, patch):
    created = create_session()
    first = patch(created["id"], {"plan": {"v": 1}}).json
    second = patch(created["id"], {"plan": {"v": 2}}).json
    assert created["updatedAt"] < first["updatedAt"] < second["updatedAt"]
    assert all(TIMESTAMP.match(s["updatedAt"]) for s in (first, second))
    assert second["createdAt"] == created["createdAt"]


def test_updated_at_follows_the_clock(clock, create_session, patch):
    created = create_session()
    clock.advance(90)
    assert patch(created["id"], {"plan": {}}).json["updatedAt"] == iso(clock.ms)


def test_patch_does_not_move_expiry(clock, create_session, patch):
    created = create_session()
    clock.advance(DAY)
    assert patch(created["id"], {"status": "planning"}).json["expiresAt"] == created["expiresAt"]


def test_patch_replays_the_vendor_example_as_written(client, auth_headers, create_session, get):
    session_id = create_session()["id"]
    response = client.patch(session_url(session_id), data=VENDOR_UPDATE_BODY,
                            headers={**bare(auth_headers), **JSON_HEADERS})
    assert response.status_code == 200, response.json
    assert response.json["plan"] == {"capabilities": ["chat", "search"], "surfaces": ["widget"]}
    assert response.json["status"] == "generating"
    events = get(session_id).json["events"]
    assert [(e["type"], e["payload"]) for e in events] == [
        ("status.changed", {"from": "intake", "to": "generating"})]


def test_patch_unknown_session_is_404(patch):
    assert_error(patch("sess_" + "Z" * 24, {"plan": {}}), 404)


# --- status lifecycle ----------------------------------------------------------------------

def test_forward_lifecycle(create_session, set_status, get):
    session_id = create_session()["id"]
    for status in ["planning", "generating", "assembling", "completed"]:
        assert set_status(session_id, status)["status"] == status
    events = get(session_id).json["events"]
    assert [(e["payload"]["from"], e["payload"]["to"]) for e in events] == [
        ("intake", "planning"), ("planning", "generating"), ("generating", "assembling"),
        ("assembling", "completed")]


@pytest.mark.parametrize("start, target", [
    (start, target) for start in NON_TERMINAL for target in STATUSES if target != start])
def test_non_terminal_may_go_to_any_status(create_session, set_status, get, start, target):
    session_id = create_session()["id"]
    if start != "intake":
        set_status(session_id, start)
    assert set_status(session_id, target)["status"] == target
    assert get(session_id).json["events"][-1]["payload"] == {"from": start, "to": target}


@pytest.mark.parametrize("terminal, target", [
    (terminal, target) for terminal in TERMINAL for target in STATUSES if target != terminal])
def test_terminal_to_another_status_is_409(create_session, set_status, patch, get,
                                           terminal, target):
    session_id = create_session()["id"]
    set_status(session_id, terminal)
    before = get(session_id)
    response = patch(session_id, {"status": target, "plan": {"sneaky": True}})
    item = assert_error(response, 409, "CUSTOM_VALIDATION", "status")
    assert len(response.json["details"]) == 1
    assert item["suggestion"]
    after = get(session_id)
    assert after.json == before.json  # nothing applied, no event appended
    assert after.headers["ETag"] == before.headers["ETag"]


@pytest.mark.parametrize("terminal", TERMINAL)
def test_terminal_to_the_same_status_is_a_no_op(create_session, set_status, patch, get,
                                                terminal):
    session_id = create_session()["id"]
    set_status(session_id, terminal)
    before = get(session_id)
    response = patch(session_id, {"status": terminal})
    assert response.status_code == 200
    assert response.json["status"] == terminal
    assert response.json["updatedAt"] == before.json["updatedAt"]
    assert get(session_id).json["events"] == before.json["events"]


@pytest.mark.parametrize("terminal", TERMINAL)
def test_terminal_session_other_fields_can_still_change(create_session, set_status, patch,
                                                        terminal):
    session_id = create_session()["id"]
    set_status(session_id, terminal)
    response = patch(session_id, {"status": terminal, "assemblyState": {"done": True}})
    assert response.status_code == 200
    assert response.json["assemblyState"] == {"done": True}


def test_same_non_terminal_status_appends_no_event(create_session, set_status, get):
    session_id = create_session()["id"]
    set_status(session_id, "intake")
    assert get(session_id).json["events"] == []


def test_status_change_appends_a_status_changed_event(clock, create_session, set_status, get):
    session = create_session()
    clock.advance(3)
    set_status(session["id"], "planning")
    [event] = get(session["id"]).json["events"]
    assert event["type"] == "status.changed"
    assert event["stage"] == "planning"
    assert event["message"] == "Status changed from intake to planning"
    assert event["payload"] == {"from": "intake", "to": "planning"}
    assert event["sequence"] == 1
    assert event["sessionId"] == session["id"]
    assert (event["userId"], event["organizationId"]) == ("user_1", "org_1")
    assert event["createdAt"] == iso(clock.ms)
    assert re.match(r"^evt_[A-Za-z0-9_-]{20,}$", event["id"])


def test_each_status_change_appends_one_event(create_session, set_status, get):
    session_id = create_session()["id"]
    for status in ["planning", "intake", "planning", "generating", "cancelled"]:
        set_status(session_id, status)
    events = get(session_id).json["events"]
    assert [e["stage"] for e in events] == [
        "planning", "intake", "planning", "generating", "cancelled"]
    assert [e["message"] for e in events][1] == "Status changed from planning to intake"


def test_invalid_status_is_invalid_enum(create_session, patch):
    response = patch(create_session()["id"], {"status": "done"})
    item = assert_error(response, 400, "INVALID_ENUM", "status")
    assert item["suggestion"] == STATUS_SUGGESTION


# --- ETag and If-Match ---------------------------------------------------------------------

def test_etag_changes_after_a_change(create_session, patch, get):
    session_id = create_session()["id"]
    first = get(session_id).headers["ETag"]
    response = patch(session_id, {"plan": {"a": 1}})
    assert response.headers["ETag"] != first
    assert get(session_id).headers["ETag"] == response.headers["ETag"]


def test_etag_changes_after_status_change(create_session, set_status, get, patch):
    session_id = create_session()["id"]
    first = get(session_id).headers["ETag"]
    second = patch(session_id, {"status": "planning"}).headers["ETag"]
    assert second != first


def test_if_match_current_etag_is_200(create_session, patch, get):
    session_id = create_session()["id"]
    etag = get(session_id).headers["ETag"]
    response = patch(session_id, {"plan": {"a": 1}}, headers={"If-Match": etag})
    assert response.status_code == 200
    assert response.json["plan"] == {"a": 1}


def test_if_match_stale_etag_is_412_and_changes_nothing(create_session, patch, get):
    session_id = create_session()["id"]
    stale = get(session_id).headers["ETag"]
    patch(session_id, {"plan": {"a": 1}})
    response = patch(session_id, {"plan": {"a": 2}, "status": "failed"},
                     headers={"If-Match": stale})
    assert_error(response, 412)
    current = get(session_id).json
    assert current["plan"] == {"a": 1} and current["status"] == "intake"
    assert current["events"] == []


def test_if_match_star_is_200(create_session, patch):
    response = patch(create_session()["id"], {"plan": {}}, headers={"If-Match": "*"})
    assert response.status_code == 200


def test_if_match_with_one_of_several_etags_is_200(create_session, patch, get):
    session_id = create_session()["id"]
    etag = get(session_id).headers["ETag"]
    response = patch(session_id, {"plan": {}}, headers={"If-Match": f'"nope", {etag}'})
    assert response.status_code == 200


def test_if_match_on_empty_patch_with_stale_etag_is_412(create_session, patch, get):
    session_id = create_session()["id"]
    stale = get(session_id).headers["ETag"]
    patch(session_id, {"plan": {}})
    assert_error(patch(session_id, {}, headers={"If-Match": stale}), 412)


# --- delete --------------------------------------------------------------------------------

def test_delete_answers_204_with_empty_body(client, auth_headers, create_session):
    response = client.delete(session_url(create_session()["id"]), headers=auth_headers)
    assert response.status_code == 204
    assert response.get_data() == b""


def test_deleted_session_is_gone_everywhere(client, auth_headers, create_session, listing):
    kept = create_session()["id"]
    session_id = create_session()["id"]
    client.post(f"{session_url(session_id)}/events", json={"type": "info"}, headers=auth_headers)
    assert client.delete(session_url(session_id), headers=auth_headers).status_code == 204
    assert_error(client.get(session_url(session_id), headers=auth_headers), 404)
    assert_error(client.get(f"{session_url(session_id)}/events", headers=auth_headers), 404)
    assert_error(client.post(f"{session_url(session_id)}/events", json={"type": "info"},
                             headers=auth_headers), 404)
    assert_error(client.patch(session_url(session_id), json={}, headers=auth_headers), 404)
    assert_error(client.delete(session_url(session_id), headers=auth_headers), 404)
    page = listing()
    assert [item["id"] for item in page["data"]] == [kept]
    assert page["pagination"]["total"] == 1


def test_delete_unknown_session_is_404(client, auth_headers):
    assert_error(client.delete(session_url("sess_" + "Q" * 24), headers=auth_headers), 404)


def test_delete_with_stale_if_match_is_412_and_keeps_the_session(
        client, auth_headers, create_session, patch, get):
    session_id = create_session()["id"]
    stale = get(session_id).headers["ETag"]
    patch(session_id, {"plan": {}})
    response = client.delete(session_url(session_id), headers={**auth_headers, "If-Match": stale})
    assert_error(response, 412)
    assert get(session_id).status_code == 200


def test_delete_with_current_if_match_is_204(client, auth_headers, create_session, get):
    session_id = create_session()["id"]
    etag = get(session_id).headers["ETag"]
    response = client.delete(session_url(session_id), headers={**auth_headers, "If-Match": etag})
    assert response.status_code == 204
    assert_error(get(session_id), 404)


# --- expiry --------------------------------------------------------------------------------

@pytest.fixture
def expired_and_live(clock, create_session):
    """One session created a week ago (now just past expiry), one created a day ago."""
    expired = create_session()["id"]
    clock.advance(6 * DAY)
    live = create_session()["id"]
    clock.advance(DAY + 0.001)
    return expired, live


@pytest.mark.parametrize("method, suffix, body", [
    ("get", "", None), ("patch", "", {"plan": {}}), ("patch", "", {}), ("delete", "", None),
    ("post", "/events", {"type": "info"}), ("get", "/events", None),
])
def test_expired_session_is_404(client, auth_headers, expired_and_live, method, suffix, body):
    expired, _ = expired_and_live
    kwargs = {} if body is None else {"json": body}
    response = getattr(client, method)(session_url(expired) + suffix, headers=auth_headers,
                                       **kwargs)
    assert_error(response, 404)


def test_expired_session_is_left_out_of_list_and_total(expired_and_live, listing):
    _, live = expired_and_live
    page = listing()
    assert [item["id"] for item in page["data"]] == [live]
    assert page["pagination"]["total"] == 1
    assert listing("status=intake")["pagination"]["total"] == 1


def test_unexpired_session_still_answers(client, auth_headers, expired_and_live, get):
    _, live = expired_and_live
    assert get(live).status_code == 200


def test_session_answers_until_just_before_expiry(clock, create_session, get):
    session_id = create_session()["id"]
    clock.advance(WEEK - 0.001)
    assert get(session_id).status_code == 200


def test_expiry_applies_with_a_custom_ttl(database_url, clock):
    app = create_app({"DATABASE_URL": database_url, "TESTING": True, "PURGE_SCHEDULE": "off",
                      "SESSION_TTL": 60})
    headers = bearer(issue_key(app))
    client = app.test_client()
    session_id = client.post(SESSIONS, json={}, headers=headers).json["id"]
    clock.advance(59)
    assert client.get(session_url(session_id), headers=headers).status_code == 200
    clock.advance(2)
    assert_error(client.get(session_url(session_id), headers=headers), 404)


# --- body errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("data, code, path", [
    ('{"prd": ', "INVALID_FORMAT", ""),
    ("{'prd': {}}", "INVALID_FORMAT", ""),
    ('{"prd": {},}', "INVALID_FORMAT", ""),
    ("[]", "INVALID_TYPE", ""),
    ('[{"prd": {}}]', "INVALID_TYPE", ""),
    ('"a string"', "INVALID_TYPE", ""),
    ("42", "INVALID_TYPE", ""),
    ("true", "INVALID_TYPE", ""),
    ('{"bogus": 1}', "UNRECOGNIZED_KEYS", "bogus"),
    ('{"Prd": {}}', "UNRECOGNIZED_KEYS", "Prd"),
    ('{"catalog_version": "1"}', "UNRECOGNIZED_KEYS", "catalog_version"),
    ('{"prd": "a string"}', "INVALID_TYPE", "prd"),
    ('{"prd": [1, 2]}', "INVALID_TYPE", "prd"),
    ('{"prd": 3}', "INVALID_TYPE", "prd"),
    ('{"catalogVersion": "' + "c" * 65 + '"}', "OUT_OF_RANGE", "catalogVersion"),
    ('{"schemaVersion": "' + "s" * 65 + '"}', "OUT_OF_RANGE", "schemaVersion"),
    ('{"catalogVersion": 1.0}', "INVALID_TYPE", "catalogVersion"),
    ('{"catalogVersion": 1}', "INVALID_TYPE", "catalogVersion"),
    ('{"schemaVersion": {"v": 1}}', "INVALID_TYPE", "schemaVersion"),
    ('{"prd": {"x": NaN}}', None, None),
    ('{"prd": {"x": Infinity}}', None, None),
    ('{"prd": {"x": -Infinity}}', None, None),
    ('{"prd": {"x": 1e400}}', None, None),
], ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None)
def test_create_body_errors(client, auth_headers, listing, data, code, path):
    response = client.post(SESSIONS, data=data, headers={**auth_headers, **JSON_HEADERS})
    assert_error(response, 400, code, path)
    assert response.json["error"] == "Validation error"
    assert listing()["pagination"]["total"] == 0


@pytest.mark.parametrize("data, code, path", [
    ("{", "INVALID_FORMAT", ""),
    ("[]", "INVALID_TYPE", ""),
    ('"x"', "INVALID_TYPE", ""),
    ("null", "INVALID_TYPE", ""),
    ('{"status": null}', "INVALID_TYPE", "status"),
    ('{"status": 3}', "INVALID_TYPE", "status"),
    ('{"status": "bogus"}', "INVALID_ENUM", "status"),
    ('{"plan": "x"}', "INVALID_TYPE", "plan"),
    ('{"assemblyState": [1]}', "INVALID_TYPE", "assemblyState"),
    ('{"productObject": true}', "INVALID_TYPE", "productObject"),
    ('{"productObjectHash": 5}', "INVALID_TYPE", "productObjectHash"),
    ('{"catalogVersion": "2"}', "UNRECOGNIZED_KEYS", "catalogVersion"),
    ('{"events": []}', "UNRECOGNIZED_KEYS", "events"),
    ('{"expiresAt": "2099-01-01T00:00:00.000Z"}', "UNRECOGNIZED_KEYS", "expiresAt"),
    ('{"plan": {"a": NaN}}', None, None),
], ids=lambda value: value if isinstance(value, str) and len(value) < 40 else None)
def test_patch_body_errors(client, auth_headers, create_session, get, data, code, path):
    session_id = create_session()["id"]
    before = get(session_id)
    response = client.patch(session_url(session_id), data=data,
                            headers={**auth_headers, **JSON_HEADERS})
    assert_error(response, 400, code, path)
    assert get(session_id).json == before.json


def test_several_problems_give_several_details(client, auth_headers):
    response = client.post(SESSIONS, json={"prd": "x", "catalogVersion": "c" * 65,
                                           "schemaVersion": 7, "bogus": 1},
                           headers=auth_headers)
    assert_error(response, 400)
    assert sorted((d["code"], d["path"]) for d in response.json["details"]) == [
        ("INVALID_TYPE", "prd"), ("INVALID_TYPE", "schemaVersion"),
        ("OUT_OF_RANGE", "catalogVersion"), ("UNRECOGNIZED_KEYS", "bogus")]


def test_several_patch_problems_give_several_details(create_session, patch):
    response = patch(create_session()["id"], {"status": None, "plan": 1, "x": 1})
    assert_error(response, 400)
    assert sorted((d["code"], d["path"]) for d in response.json["details"]) == [
        ("INVALID_TYPE", "plan"), ("INVALID_TYPE", "status"), ("UNRECOGNIZED_KEYS", "x")]


def test_length_error_suggests_the_bound(client, auth_headers):
    response = client.post(SESSIONS, json={"catalogVersion": "c" * 65}, headers=auth_headers)
    item = assert_error(response, 400, "OUT_OF_RANGE", "catalogVersion")
    assert "64" in item["suggestion"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_non_json_body_is_415(client, auth_headers, listing, content_type):
    headers = dict(auth_headers)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post(SESSIONS, data='{"prd": {}}', headers=headers)
    assert_error(response, 415)
    assert listing()["pagination"]["total"] == 0


def test_non_json_patch_body_is_415(client, auth_headers, create_session):
    response = client.patch(session_url(create_session()["id"]), data="status=planning",
                            headers={**auth_headers, "Content-Type": "text/plain"})
    assert_error(response, 415)


def test_json_with_charset_is_accepted(client, auth_headers):
    response = client.post(SESSIONS, data='{"catalogVersion": "1"}',
                           headers={**auth_headers,
                                    "Content-Type": "application/json; charset=utf-8"})
    assert response.status_code == 201


def test_body_over_max_content_length_is_413(client, auth_headers, listing):
    data = b'{"prd": {"x": "' + b"a" * (1024 * 1024) + b'"}}'
    response = client.post(SESSIONS, data=data, headers={**auth_headers, **JSON_HEADERS})
    assert_error(response, 413)
    assert listing()["pagination"]["total"] == 0


def test_patch_body_over_max_content_length_is_413(client, auth_headers, create_session):
    data = b'{"plan": {"x": "' + b"a" * (1024 * 1024) + b'"}}'
    response = client.patch(session_url(create_session()["id"]), data=data,
                            headers={**auth_headers, **JSON_HEADERS})
    assert_error(response, 413)


def test_body_just_under_max_content_length_is_accepted(client, auth_headers, get):
    text = "a" * (1024 * 1024 - 100)
    response = client.post(SESSIONS, json={"prd": {"x": text}}, headers=auth_headers)
    assert response.status_code == 201
    assert get(response.json["id"]).json["prd"]["x"] == text


@pytest.mark.parametrize("method", ["put", "post"])
def test_unsupported_method_on_session_url_is_405(client, auth_headers, create_session, method):
    response = getattr(client, method)(session_url(create_session()["id"]), json={},
                                       headers=auth_headers)
    assert_error(response, 405)
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "PATCH", "DELETE"} <= allowed
    assert "PUT" not in allowed and "POST" not in allowed


def test_put_on_collection_is_405(client, auth_headers):
    response = client.put(SESSIONS, json={}, headers=auth_headers)
    assert_error(response, 405)
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/products", "/v1/products/generation",
                                  f"{SESSIONS}/sess_x/events/evt_y", f"{SESSIONS}/a/b/c"])
def test_unknown_v1_url_is_404_json(client, auth_headers, path):
    assert_error(client.get(path, headers=auth_headers), 404)


# --- X-Request-Id --------------------------------------------------------------------------

@pytest.mark.parametrize("request_id", ["req-123", "0f8fad5b-d9cb-469f-a165-70867728950e",
                                        "a" * 128, "trace:abc/def+1=2@x.y_z"])
def test_sane_request_id_is_echoed(client, auth_headers, request_id):
    response = client.get(SESSIONS, headers={**auth_headers, "X-Request-Id": request_id})
    assert response.headers["X-Request-Id"] == request_id


def test_request_id_is_generated_when_absent(client, auth_headers):
    first = client.get(SESSIONS, headers=auth_headers).headers["X-Request-Id"]
    second = client.get(SESSIONS, headers=auth_headers).headers["X-Request-Id"]
    assert first and second and first != second


@pytest.mark.parametrize("request_id", ["a" * 500, "has spaces", "semi;colon", "<script>",
                                        "new\tline", "ünïcode"])
def test_insane_request_id_is_replaced(client, auth_headers, request_id):
    response = client.get(SESSIONS, headers={**auth_headers, "X-Request-Id": request_id})
    given = response.headers["X-Request-Id"]
    assert given and given != request_id
    assert re.fullmatch(r"[A-Za-z0-9._:@/+=-]{1,128}", given)


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("get", f"{SESSIONS}/sess_missing", {}, 404),
    ("get", f"{SESSIONS}?limit=0", {}, 400),
    ("post", SESSIONS, {"data": "{", "content_type": "application/json"}, 400),
    ("put", SESSIONS, {}, 405),
    ("get", "/v1/nope", {}, 404),
    ("post", SESSIONS, {"data": "x", "content_type": "text/plain"}, 415),
])
def test_request_id_is_echoed_on_errors(client, auth_headers, method, path, kwargs, status):
    response = getattr(client, method)(path, headers={**auth_headers, "X-Request-Id": "err-1"},
                                       **kwargs)
    assert_error(response, status)
    assert response.headers["X-Request-Id"] == "err-1"


def test_request_id_is_present_on_401(client):
    response = client.get(SESSIONS, headers={"X-Request-Id": "anon-1"})
    assert_error(response, 401)
    assert response.headers["X-Request-Id"] == "anon-1"


def test_request_id_is_present_on_413(client, auth_headers):
    data = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    response = client.post(SESSIONS, data=data,
                           headers={**auth_headers, **JSON_HEADERS, "X-Request-Id": "big-1"})
    assert_error(response, 413)
    assert response.headers["X-Request-Id"] == "big-1"
