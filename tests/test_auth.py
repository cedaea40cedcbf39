"""Credentials, scopes and tenant isolation, through the Flask test client."""
import secrets

import pytest

from gensessions.db import connected
from gensessions.models import ApiKey
from helpers import SESSIONS, assert_error, bearer, public_id, raw_key


def assert_unauthorized(response):
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- 401: missing, malformed, unknown, revoked -------------------------------------------

def test_missing_credential_is_401_with_challenge(client):
    assert_unauthorized(client.get(SESSIONS))


@pytest.mark.parametrize("value", [
    "Bearer garbage",
    "Bearer ",
    "Bearer",
    "Basic dXNlcjpwYXNz",
    "Basic xxx",
    "Bearer gsk_",
    "Bearer gsk_0123456789ab",
    "Bearer gsk_0123456789ab_" + "A" * 43,
    "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyXzEifQ.c2ln",
], ids=["garbage", "empty", "scheme-only", "basic", "basic-junk", "prefix-only",
        "no-secret", "unknown-id", "jwt-without-verification-key"])
def test_malformed_or_unknown_credential_is_401(client, auth_headers, value):
    assert_unauthorized(client.get(SESSIONS, headers={"Authorization": value}))


def test_right_key_id_with_wrong_secret_is_401(client, auth_headers):
    key = raw_key(auth_headers)
    forged = f"gsk_{public_id(key)}_{secrets.token_urlsafe(32)}"
    assert forged != key
    assert_unauthorized(client.get(SESSIONS, headers=bearer(forged)))


def test_key_with_one_character_changed_is_401(client, auth_headers):
    key = raw_key(auth_headers)
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert_unauthorized(client.get(SESSIONS, headers=bearer(tampered)))


def test_key_revoked_through_cli_is_401(client, runner, auth_headers):
    assert client.get(SESSIONS, headers=auth_headers).status_code == 200
    result = runner.invoke(args=["revoke-key", public_id(raw_key(auth_headers))])
    assert result.exit_code == 0, result.output
    assert_unauthorized(client.get(SESSIONS, headers=auth_headers))


def test_key_revoked_through_model_is_401(app, client, auth_headers):
    with connected(app):
        assert ApiKey.revoke(public_id(raw_key(auth_headers)), 0)
    assert_unauthorized(client.get(SESSIONS, headers=auth_headers))


def test_revoking_one_key_leaves_the_users_other_keys_working(app, client, make_key):
    first, second = make_key(), make_key()
    with connected(app):
        ApiKey.revoke(public_id(raw_key(first)), 0)
    assert_unauthorized(client.get(SESSIONS, headers=first))
    assert client.get(SESSIONS, headers=second).status_code == 200


@pytest.mark.parametrize("template", [
    "Bearer {key}", "bearer {key}", "BEARER {key}", "{key}", "Bearer   {key}  ",
], ids=["bearer", "lowercase-bearer", "uppercase-bearer", "bare", "extra-spaces"])
def test_accepted_authorization_forms(client, auth_headers, template):
    value = template.format(key=raw_key(auth_headers))
    response = client.get(SESSIONS, headers={"Authorization": value})
    assert response.status_code == 200, response.json


def test_bare_key_can_write(client, auth_headers):
    response = client.post(SESSIONS, json={}, headers={"Authorization": raw_key(auth_headers)})
    assert response.status_code == 201
    assert response.json["userId"] == "user_1"


# --- 403: read scope ------------------------------------------------------------------------

@pytest.fixture
def read_headers(make_key):
    return make_key(scope="read")


@pytest.mark.parametrize("method, suffix, body", [
    ("POST", "", {}),
    ("PATCH", "/{id}", {"status": "planning"}),
    ("DELETE", "/{id}", None),
    ("POST", "/{id}/events", {"type": "info"}),
], ids=["create", "patch", "delete", "append-event"])
def test_read_scope_cannot_write(client, create_session, auth_headers, read_headers,
                                 method, suffix, body):
    session = create_session()
    url = SESSIONS + suffix.format(id=session["id"])
    response = client.open(url, method=method, json=body, headers=read_headers)
    assert_error(response, 403)
    after = client.get(f"{SESSIONS}/{session['id']}", headers=auth_headers).json
    assert after["status"] == "intake" and after["events"] == []
    listing = client.get(SESSIONS, headers=auth_headers).json
    assert listing["pagination"]["total"] == 1


@pytest.mark.parametrize("suffix", ["/{id}", "", "/{id}/events"],
                         ids=["get", "list", "events"])
def test_read_scope_can_read(client, create_session, read_headers, suffix):
    session = create_session()
    response = client.get(SESSIONS + suffix.format(id=session["id"]), headers=read_headers)
    assert response.status_code == 200, response.json


def test_read_key_sees_the_same_users_sessions(client, create_session, read_headers):
    session = create_session()
    listing = client.get(SESSIONS, headers=read_headers).json
    assert [item["id"] for item in listing["data"]] == [session["id"]]


# --- tenant isolation ----------------------------------------------------------------------

# (That another user's session answers exactly like a missing one, route by route, is
# tests/test_tenant_isolation.py's; here, what each user's list shows.)

def test_other_users_list_shows_only_their_own_sessions(client, create_session, other_headers):
    create_session()
    create_session()
    own = create_session(headers=other_headers)
    listing = client.get(SESSIONS, headers=other_headers).json
    assert [item["id"] for item in listing["data"]] == [own["id"]]
    assert listing["pagination"]["total"] == 1
    assert listing["pagination"]["hasMore"] is False


@pytest.mark.parametrize("query", ["?status=intake", "?limit=1", "?offset=0&limit=100"])
def test_list_total_counts_only_own_sessions(client, create_session, other_headers, query):
    for _ in range(3):
        create_session()
    create_session(headers=other_headers)
    listing = client.get(SESSIONS + query, headers=other_headers).json
    assert listing["pagination"]["total"] == 1
    assert {item["userId"] for item in listing["data"]} == {"user_2"}


def test_empty_list_for_a_user_with_no_sessions(client, create_session, other_headers):
    create_session()
    listing = client.get(SESSIONS, headers=other_headers).json
    assert listing["data"] == []
    assert listing["pagination"]["total"] == 0


def test_another_users_cursor_does_not_reveal_sessions(client, create_session, auth_headers,
                                                       other_headers):
    for _ in range(3):
        create_session()
    cursor = client.get(SESSIONS + "?limit=1", headers=auth_headers).json["pagination"][
        "nextCursor"]
    assert cursor
    listing = client.get(f"{SESSIONS}?cursor={cursor}", headers=other_headers).json
    assert listing["data"] == []


def test_second_key_of_the_same_user_sees_their_sessions(client, make_key):
    """Sessions belong to the user id: a second key of the same user sees them."""
    first, second = make_key(), make_key()
    created = client.post(SESSIONS, json={}, headers=first).json
    assert client.get(f"{SESSIONS}/{created['id']}", headers=second).status_code == 200


# --- identity comes from the credential ----------------------------------------------------

def test_created_session_takes_user_and_org_from_the_key(client, make_key):
    headers = make_key(user_id="alice", organization_id="acme")
    session = client.post(SESSIONS, json={}, headers=headers).json
    assert (session["userId"], session["organizationId"]) == ("alice", "acme")


def test_key_without_organization_creates_sessions_with_null_org(client, make_key):
    headers = make_key(user_id="solo", organization_id=None)
    session = client.post(SESSIONS, json={}, headers=headers).json
    assert session["organizationId"] is None


def test_events_take_user_and_org_from_the_session(client, create_session, auth_headers):
    session = create_session()
    event = client.post(f"{SESSIONS}/{session['id']}/events", json={"type": "info"},
                        headers=auth_headers).json
    assert (event["userId"], event["organizationId"]) == ("user_1", "org_1")


@pytest.mark.parametrize("key", ["userId", "organizationId", "id", "status", "user_id"])
def test_identity_fields_in_create_body_are_refused(client, auth_headers, key):
    response = client.post(SESSIONS, json={key: "user_2"}, headers=auth_headers)
    assert_error(response, 400, "UNRECOGNIZED_KEYS", key)
    assert client.get(SESSIONS, headers=auth_headers).json["pagination"]["total"] == 0


@pytest.mark.parametrize("key", ["userId", "organizationId"])
def test_identity_fields_in_patch_body_are_refused(client, create_session, auth_headers, key):
    session = create_session()
    response = client.patch(f"{SESSIONS}/{session['id']}", json={key: "evil"},
                            headers=auth_headers)
    assert_error(response, 400, "UNRECOGNIZED_KEYS", key)
    after = client.get(f"{SESSIONS}/{session['id']}", headers=auth_headers).json
    assert (after["userId"], after["organizationId"]) == ("user_1", "org_1")


@pytest.mark.parametrize("key", ["userId", "organizationId", "sessionId", "sequence"])
def test_identity_fields_in_event_body_are_refused(client, create_session, auth_headers, key):
    session = create_session()
    response = client.post(f"{SESSIONS}/{session['id']}/events",
                           json={"type": "info", key: "evil"}, headers=auth_headers)
    assert_error(response, 400, "UNRECOGNIZED_KEYS", key)


# --- unauthenticated endpoints -------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer garbage"}],
                         ids=["no-credential", "bad-credential"])
def test_healthz_needs_no_credential(client, headers):
    response = client.get("/healthz", headers=headers)
    assert response.status_code == 200
    assert response.json["status"] == "ok"
    assert response.json["purge"] == {
        "running": False, "runs": 0, "lastTrigger": None, "lastStartedAt": None,
        "lastFinishedAt": None, "lastPurged": None, "lastDurationMs": None, "lastError": None}


# --- the key is stored only as a hash ------------------------------------------------------

@pytest.mark.sqlite_only
def test_raw_key_is_not_in_the_database_files(client, auth_headers, tmp_path):
    key = raw_key(auth_headers)
    secret = key.removeprefix("gsk_").partition("_")[2]
    assert client.post(SESSIONS, json={}, headers=auth_headers).status_code == 201
    assert client.get(SESSIONS, headers=auth_headers).status_code == 200
    files = [path for path in (tmp_path / "test.db", tmp_path / "test.db-wal") if path.exists()]
    assert tmp_path / "test.db" in files
    contents = b"".join(path.read_bytes() for path in files)
    assert public_id(key).encode() in contents  # the files do hold the key's row
    assert key.encode() not in contents
    assert secret.encode() not in contents


@pytest.mark.postgresql_only
def test_raw_key_is_not_in_any_postgresql_row(client, auth_headers, database_url):
    """The PostgreSQL twin of the test above: every row of every table, as text."""
    import psycopg2
    key = raw_key(auth_headers)
    secret = key.removeprefix("gsk_").partition("_")[2]
    assert client.post(SESSIONS, json={}, headers=auth_headers,
                       environ_base={"HTTP_IDEMPOTENCY_KEY": "k1"}).status_code == 201
    assert client.get(SESSIONS, headers=auth_headers).status_code == 200
    connection = psycopg2.connect(database_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = [name for (name,) in cursor.fetchall()]
            rows = []
            for table in tables:
                cursor.execute(f'SELECT row_to_json(t)::text FROM "{table}" t')
                rows += [text for (text,) in cursor.fetchall()]
    finally:
        connection.close()
    contents = "\n".join(rows)
    assert public_id(key) in contents  # the rows do hold the key's row
    assert key not in contents
    assert secret not in contents
