"""The operator commands, through app.test_cli_runner(): stdout carries only the result."""
import os
import stat

import pytest

from gensessions.db import connected
from gensessions.models import ApiKey, Event, Session, db
from helpers import (DAY, KEY_PATTERN, SESSIONS, assert_error, bearer, create_key, invoke,
                     invoke_ok, public_id)


def key_rows(runner):
    """list-keys as a list of rows (header excluded), each a list of its columns."""
    lines = invoke_ok(runner, "list-keys").stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "USER", "ORG", "SCOPE"]
    return [line.split() for line in lines[1:]]


def row_of(runner, key):
    rows = [row for row in key_rows(runner) if row[0] == public_id(key)]
    assert len(rows) == 1, rows
    return rows[0]


def count(runner, model):
    with connected(runner.app):
        return model.select().count()


# --- the test runner -------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["init-db"], ["create-key", "--user-id", "u1"], ["list-keys"], ["dev-key"],
    ["purge-expired"], ["purge-expired", "--dry-run"],
], ids=["init-db", "create-key", "list-keys", "dev-key", "purge-expired", "purge-dry-run"])
def test_command_runs_under_the_test_runner_without_an_app_context(runner, instance, args):
    """app.test_cli_runner() invokes app.cli directly: no FlaskGroup pushes an app context."""
    result = runner.invoke(args=args)
    assert result.exit_code == 0, (result.output, result.exception)


# --- init-db -------------------------------------------------------------------------------

def test_init_db_creates_the_tables(runner):
    invoke_ok(runner, "init-db")
    with connected(runner.app):
        assert {"api_key", "session", "event", "idempotency_record"} <= set(db.get_tables())


def test_init_db_twice_keeps_the_data(runner, client, create_session):
    session = create_session()
    invoke_ok(runner, "init-db")
    invoke_ok(runner, "init-db")
    assert count(runner, Session) == 1
    assert count(runner, ApiKey) == 1
    with connected(runner.app):
        assert Session.get_by_id(session["id"]).user_id == "user_1"


# --- create-key ----------------------------------------------------------------------------

def test_create_key_prints_only_the_key_on_stdout(runner):
    result = invoke_ok(runner, "create-key", "--user-id", "u1")
    assert KEY_PATTERN.fullmatch(result.stdout.rstrip("\n")), result.stdout
    assert result.stdout == result.stdout.strip() + "\n"


def test_create_key_reports_on_stderr_without_the_secret(runner):
    result = invoke_ok(runner, "create-key", "--user-id", "u1")
    key = result.stdout.strip()
    assert public_id(key) in result.stderr
    assert key not in result.stderr


def test_created_keys_are_distinct(runner):
    keys = {create_key(runner, "--user-id", "u1") for _ in range(3)}
    assert len(keys) == 3


def test_created_key_authenticates_over_http(runner, client):
    key = create_key(runner, "--user-id", "cli_user")
    response = client.get(SESSIONS, headers=bearer(key))
    assert response.status_code == 200


def test_created_key_writes_as_its_user_and_org(runner, client):
    key = create_key(runner, "--user-id", "cli_user", "--org-id", "acme")
    session = client.post(SESSIONS, json={}, headers=bearer(key)).json
    assert (session["userId"], session["organizationId"]) == ("cli_user", "acme")


def test_created_key_without_org_writes_null_org(runner, client):
    key = create_key(runner, "--user-id", "cli_user")
    session = client.post(SESSIONS, json={}, headers=bearer(key)).json
    assert session["organizationId"] is None


def test_create_key_options_show_in_list_keys(runner):
    key = create_key(runner, "--user-id", "u9", "--org-id", "org9", "--scope", "read",
                     "--name", "ci-reader")
    assert row_of(runner, key)[:5] == [public_id(key), "u9", "org9", "read", "ci-reader"]


def test_create_key_defaults_show_in_list_keys(runner):
    key = create_key(runner, "--user-id", "u9")
    assert row_of(runner, key)[:5] == [public_id(key), "u9", "-", "write", "-"]


def test_read_scope_key_from_cli_cannot_write(runner, client):
    key = create_key(runner, "--user-id", "u9", "--scope", "read")
    assert client.get(SESSIONS, headers=bearer(key)).status_code == 200
    assert_error(client.post(SESSIONS, json={}, headers=bearer(key)), 403)


@pytest.mark.parametrize("args", [
    ["create-key", "--user-id", "u1", "--scope", "bogus"],
    ["create-key", "--user-id", "u1", "--scope", "admin"],
    ["create-key"],
], ids=["bogus-scope", "admin-scope", "no-user-id"])
def test_create_key_refuses_bad_options(runner, args):
    result = invoke(runner, args)
    assert result.exit_code != 0
    assert result.stdout == ""
    assert count(runner, ApiKey) == 0


# --- list-keys -----------------------------------------------------------------------------

def test_list_keys_shows_every_key_but_no_secret(runner):
    keys = [create_key(runner, "--user-id", f"u{n}", "--name", f"key-{n}") for n in range(3)]
    output = invoke_ok(runner, "list-keys").output
    for n, key in enumerate(keys):
        assert public_id(key) in output and f"key-{n}" in output
        assert key not in output
        assert key.partition("_")[2].partition("_")[2] not in output


def test_list_keys_shows_revocation(runner):
    key = create_key(runner, "--user-id", "u1")
    assert row_of(runner, key)[-1] == "-"
    invoke_ok(runner, "revoke-key", public_id(key))
    assert row_of(runner, key)[-1].endswith("Z")


def test_list_keys_with_no_keys_prints_the_header_only(runner):
    assert invoke_ok(runner, "list-keys").stdout.splitlines()[0].startswith("ID")
    assert key_rows(runner) == []


# --- revoke-key ----------------------------------------------------------------------------

def test_revoked_key_gets_401(runner, client):
    key = create_key(runner, "--user-id", "u1")
    assert client.get(SESSIONS, headers=bearer(key)).status_code == 200
    invoke_ok(runner, "revoke-key", public_id(key))
    response = client.get(SESSIONS, headers=bearer(key))
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoke_key_leaves_other_keys_working(runner, client):
    revoked = create_key(runner, "--user-id", "u1")
    kept = create_key(runner, "--user-id", "u1")
    invoke_ok(runner, "revoke-key", public_id(revoked))
    assert client.get(SESSIONS, headers=bearer(kept)).status_code == 200


@pytest.mark.parametrize("key_id", ["0123456789ab", "nope", ""])
def test_revoke_unknown_key_fails(runner, key_id):
    create_key(runner, "--user-id", "u1")
    result = invoke(runner, ["revoke-key", key_id])
    assert result.exit_code != 0
    assert result.stdout == ""


def test_revoke_key_twice_fails_the_second_time(runner):
    key = create_key(runner, "--user-id", "u1")
    invoke_ok(runner, "revoke-key", public_id(key))
    assert invoke(runner, ["revoke-key", public_id(key)]).exit_code != 0


def test_revoke_key_needs_an_id(runner):
    assert invoke(runner, ["revoke-key"]).exit_code != 0


# --- dev-key -------------------------------------------------------------------------------

def test_dev_key_writes_the_key_file(runner, instance):
    key = invoke_ok(runner, "dev-key").stdout.strip()
    assert KEY_PATTERN.fullmatch(key)
    path = instance / "dev-api-key"
    assert path.read_text().strip() == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_dev_key_prints_the_same_key_on_a_second_run(runner, instance):
    first = invoke_ok(runner, "dev-key").stdout
    second = invoke_ok(runner, "dev-key").stdout
    assert first == second
    assert count(runner, ApiKey) == 1


def test_dev_key_authenticates(runner, client, instance):
    key = invoke_ok(runner, "dev-key").stdout.strip()
    session = client.post(SESSIONS, json={}, headers=bearer(key)).json
    assert session["userId"] == "dev_user"


def test_dev_key_replaces_a_revoked_key(runner, instance):
    first = invoke_ok(runner, "dev-key").stdout.strip()
    invoke_ok(runner, "revoke-key", public_id(first))
    second = invoke_ok(runner, "dev-key").stdout.strip()
    assert second != first and KEY_PATTERN.fullmatch(second)
    assert (instance / "dev-api-key").read_text().strip() == second


# --- purge-expired -------------------------------------------------------------------------

@pytest.fixture
def seeded(client, auth_headers, clock):
    """Three sessions created now (two with events), then two created three days later.

    Returns (old session ids, live session ids); each session with events has two.
    """
    def session_with_events(events):
        session = client.post(SESSIONS, json={}, headers=auth_headers).json
        for n in range(events):
            response = client.post(f"{SESSIONS}/{session['id']}/events",
                                   json={"type": "info", "message": str(n)},
                                   headers=auth_headers)
            assert response.status_code == 201
        return session["id"]

    old = [session_with_events(2), session_with_events(2), session_with_events(0)]
    clock.advance(3 * DAY)
    live = [session_with_events(2), session_with_events(0)]
    return old, live


def stored_ids(runner, model=Session):
    with connected(runner.app):
        if model is Session:
            return {row.id for row in Session.select()}
        return {row.session_id for row in Event.select()}


def test_purge_with_nothing_expired_prints_zero(runner, seeded):
    result = invoke_ok(runner, "purge-expired")
    assert result.stdout.splitlines()[-1] == "0"
    assert stored_ids(runner) == set(seeded[0] + seeded[1])


def test_purge_deletes_expired_sessions_and_prints_the_count(runner, seeded, clock):
    old, live = seeded
    clock.advance(4 * DAY + 1)
    result = invoke_ok(runner, "purge-expired")
    assert result.stdout.splitlines()[-1] == "3"
    assert stored_ids(runner) == set(live)


def test_purge_deletes_the_events_of_purged_sessions(runner, seeded, clock):
    old, live = seeded
    clock.advance(4 * DAY + 1)
    invoke_ok(runner, "purge-expired")
    assert stored_ids(runner, Event) == {live[0]}
    assert count(runner, Event) == 2


def test_purge_leaves_live_sessions_readable(runner, client, auth_headers, seeded, clock):
    old, live = seeded
    clock.advance(4 * DAY + 1)
    invoke_ok(runner, "purge-expired")
    response = client.get(f"{SESSIONS}/{live[0]}", headers=auth_headers)
    assert response.status_code == 200
    assert [event["sequence"] for event in response.json["events"]] == [1, 2]
    assert client.get(SESSIONS, headers=auth_headers).json["pagination"]["total"] == 2


def test_purge_at_the_exact_expiry_purges(runner, seeded, clock):
    clock.advance(4 * DAY)
    result = invoke_ok(runner, "purge-expired")
    assert result.stdout.splitlines()[-1] == "3"


def test_purge_a_millisecond_before_expiry_keeps_everything(runner, seeded, clock):
    clock.advance(4 * DAY - 0.001)
    result = invoke_ok(runner, "purge-expired")
    assert result.stdout.splitlines()[-1] == "0"
    assert len(stored_ids(runner)) == 5


def test_purge_dry_run_counts_without_deleting(runner, seeded, clock):
    clock.advance(4 * DAY + 1)
    result = invoke_ok(runner, "purge-expired", "--dry-run")
    assert result.stdout.splitlines()[-1] == "3"
    assert len(stored_ids(runner)) == 5
    assert count(runner, Event) == 6


def test_purge_after_dry_run_still_purges(runner, seeded, clock):
    clock.advance(4 * DAY + 1)
    invoke_ok(runner, "purge-expired", "--dry-run")
    assert invoke_ok(runner, "purge-expired").stdout.splitlines()[-1] == "3"
    assert invoke_ok(runner, "purge-expired").stdout.splitlines()[-1] == "0"


def test_purge_in_batches_of_one(runner, seeded, clock):
    old, live = seeded
    clock.advance(4 * DAY + 1)
    result = invoke_ok(runner, "purge-expired", "--batch-size", "1")
    assert result.stdout.splitlines()[-1] == "3"
    assert stored_ids(runner) == set(live)
    assert stored_ids(runner, Event) == {live[0]}
    assert len([line for line in result.stderr.splitlines() if "so far" in line]) == 3


def test_purge_everything_once_all_expired(runner, seeded, clock):
    clock.advance(8 * DAY)
    result = invoke_ok(runner, "purge-expired", "--batch-size", "2")
    assert result.stdout.splitlines()[-1] == "5"
    assert count(runner, Session) == 0 and count(runner, Event) == 0


@pytest.mark.parametrize("size", ["0", "-1", "abc"])
def test_purge_refuses_a_bad_batch_size(runner, seeded, clock, size):
    clock.advance(8 * DAY)
    result = invoke(runner, ["purge-expired", "--batch-size", size])
    assert result.exit_code != 0
    assert len(stored_ids(runner)) == 5
