"""API key expiry and the key states list-keys shows, on the app's frozen clock.

Covers: `create-key --expires-in` (accepted and refused durations, the exact
expiry instant), a key working until it expires and getting 401 from then on
(`expires_at <= now` is expired), list-keys' STATE (`active`, `expired`,
`revoked`) and EXPIRES columns, revoking an expired key, dev-key keys never
expiring, and last_used_at written at most once a minute.
"""
import pytest

from gensessions.db import connected
from gensessions.models import ApiKey
from helpers import (NOW, SESSIONS, TIMESTAMP, assert_error, bearer, create_key, invoke,
                     invoke_ok, public_id)

# The clock fixture starts at NOW, 2026-11-23T09:15:30.123Z.
START = "2026-11-23T09:15:30.123Z"
MINUTE = 60
HEADER = ["ID", "USER", "ORG", "SCOPE", "NAME", "STATE", "CREATED", "LAST", "USED", "EXPIRES",
          "REVOKED"]
COLUMNS = ["ID", "USER", "ORG", "SCOPE", "NAME", "STATE", "CREATED", "LAST USED", "EXPIRES",
           "REVOKED"]
# The keys of these tests are u1's.
U1 = ("--user-id", "u1")


def key_row(runner, key):
    """The list-keys row of `key` as {column: value}."""
    lines = invoke_ok(runner, "list-keys").stdout.splitlines()
    assert lines[0].split() == HEADER
    rows = [dict(zip(COLUMNS, line.split(), strict=True)) for line in lines[1:]]
    matching = [row for row in rows if row["ID"] == public_id(key)]
    assert len(matching) == 1, rows
    return matching[0]


def stored(runner, key):
    with connected(runner.app):
        return ApiKey.get_by_id(public_id(key))


def key_count(runner):
    with connected(runner.app):
        return ApiKey.select().count()


def status(client, key):
    return client.get(SESSIONS, headers=bearer(key)).status_code


# --- expiry over HTTP -------------------------------------------------------------------------

def test_expiring_key_works_until_a_millisecond_before_its_expiry(runner, client, clock):
    key = create_key(runner, *U1, "--expires-in", "10m")
    assert status(client, key) == 200
    clock.advance(10 * MINUTE - 0.001)
    assert status(client, key) == 200


def test_expiring_key_is_refused_at_the_exact_expiry_instant(runner, client, clock):
    key = create_key(runner, *U1, "--expires-in", "10m")
    clock.advance(10 * MINUTE)
    response = client.get(SESSIONS, headers=bearer(key))
    assert_error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_key_stays_refused(runner, client, clock):
    key = create_key(runner, *U1, "--expires-in", "10m")
    clock.advance(10 * MINUTE + 1)
    assert_error(client.get(SESSIONS, headers=bearer(key)), 401)
    assert_error(client.post(SESSIONS, json={}, headers=bearer(key)), 401)
    clock.advance(365 * 24 * 3600)
    assert_error(client.get(SESSIONS, headers=bearer(key)), 401)


def test_expiry_of_one_key_leaves_the_others_working(runner, client, clock):
    short = create_key(runner, *U1, "--expires-in", "10m")
    longer = create_key(runner, *U1, "--expires-in", "1h")
    forever = create_key(runner, *U1)
    clock.advance(30 * MINUTE)
    assert [status(client, key) for key in (short, longer, forever)] == [401, 200, 200]


# --- list-keys: STATE and EXPIRES -----------------------------------------------------------

def test_list_keys_shows_an_expiring_key_active_then_expired(runner, clock):
    key = create_key(runner, *U1, "--expires-in", "10m")
    row = key_row(runner, key)
    assert (row["STATE"], row["EXPIRES"], row["CREATED"]) == (
        "active", "2026-11-23T09:25:30.123Z", START)
    clock.advance(10 * MINUTE - 0.001)
    assert key_row(runner, key)["STATE"] == "active"
    clock.advance(0.001)
    row = key_row(runner, key)
    assert (row["STATE"], row["EXPIRES"], row["REVOKED"]) == (
        "expired", "2026-11-23T09:25:30.123Z", "-")


def test_key_without_expires_in_never_expires(runner, client, clock):
    key = create_key(runner, *U1)
    row = key_row(runner, key)
    assert (row["STATE"], row["EXPIRES"]) == ("active", "-")
    assert stored(runner, key).expires_at is None
    clock.advance(150 * 365 * 24 * 3600)
    assert key_row(runner, key)["STATE"] == "active"
    assert status(client, key) == 200


def test_create_key_reports_the_expiry_on_stderr(runner, clock):
    result = invoke_ok(runner, "create-key", "--user-id", "u1", "--expires-in", "10m")
    assert "2026-11-23T09:25:30.123Z" in result.stderr
    assert result.stdout.strip() not in result.stderr


@pytest.mark.parametrize("duration,ms,expires", [
    ("3600", 3_600_000, "2026-11-23T10:15:30.123Z"),
    ("90s", 90_000, "2026-11-23T09:17:00.123Z"),
    ("90m", 5_400_000, "2026-11-23T10:45:30.123Z"),
    ("12h", 43_200_000, "2026-11-23T21:15:30.123Z"),
    ("30d", 2_592_000_000, "2026-12-23T09:15:30.123Z"),
    ("4w", 2_419_200_000, "2026-12-21T09:15:30.123Z"),
    ("1", 1_000, "2026-11-23T09:15:31.123Z"),
    ("36500d", 3_153_600_000_000, "2126-10-30T09:15:30.123Z"),  # 100 years: the most
])
def test_expires_in_accepts_a_duration(runner, clock, duration, ms, expires):
    key = create_key(runner, *U1, "--expires-in", duration)
    assert stored(runner, key).expires_at == NOW + ms
    row = key_row(runner, key)
    assert TIMESTAMP.fullmatch(row["EXPIRES"])
    assert (row["EXPIRES"], row["STATE"]) == (expires, "active")


@pytest.mark.parametrize("duration", [
    "0", "0s", "-5", "abc", "10y", "1.5h", "\u00b2", "", " ", "h", "1e3", "+5", "0x10",
    "1000000w", "36501d",
])
def test_expires_in_refuses_what_is_not_a_duration(runner, clock, duration):
    result = invoke(runner, ["create-key", "--user-id", "u1", f"--expires-in={duration}"])
    assert result.exit_code != 0, result.output
    assert result.stdout == ""
    assert "duration" in result.stderr
    assert key_count(runner) == 0


def test_expires_in_refuses_a_negative_number_as_a_separate_argument(runner, clock):
    result = invoke(runner, ["create-key", "--user-id", "u1", "--expires-in", "-5"])
    assert result.exit_code != 0
    assert result.stdout == ""
    assert key_count(runner) == 0


# --- revocation and expiry ------------------------------------------------------------------

def test_revoked_key_shows_revoked(runner, client, clock):
    key = create_key(runner, *U1, "--expires-in", "1h")
    clock.advance(MINUTE)
    invoke_ok(runner, "revoke-key", public_id(key))
    row = key_row(runner, key)
    assert (row["STATE"], row["REVOKED"]) == ("revoked", "2026-11-23T09:16:30.123Z")
    assert status(client, key) == 401


def test_revoking_an_expired_key_works_and_shows_revoked(runner, client, clock):
    key = create_key(runner, *U1, "--expires-in", "10m")
    clock.advance(11 * MINUTE)
    assert key_row(runner, key)["STATE"] == "expired"
    result = invoke_ok(runner, "revoke-key", public_id(key))
    assert public_id(key) in result.stdout
    row = key_row(runner, key)
    assert (row["STATE"], row["REVOKED"], row["EXPIRES"]) == (
        "revoked", "2026-11-23T09:26:30.123Z", "2026-11-23T09:25:30.123Z")
    assert status(client, key) == 401
    assert invoke(runner, ["revoke-key", public_id(key)]).exit_code != 0


# --- dev-key --------------------------------------------------------------------------------


def test_dev_key_never_expires(runner, client, clock, instance):
    key = invoke_ok(runner, "dev-key").stdout.strip()
    row = key_row(runner, key)
    assert (row["STATE"], row["EXPIRES"]) == ("active", "-")
    clock.advance(200 * 365 * 24 * 3600)
    assert status(client, key) == 200
    assert key_row(runner, key)["STATE"] == "active"
    assert invoke_ok(runner, "dev-key").stdout.strip() == key
    assert key_count(runner) == 1


# --- last used ------------------------------------------------------------------------------

def test_last_used_is_written_at_most_once_a_minute(runner, client, clock):
    key = create_key(runner, *U1)
    assert key_row(runner, key)["LAST USED"] == "-"
    for _ in range(5):
        assert status(client, key) == 200
        clock.advance(1)
    assert key_row(runner, key)["LAST USED"] == START
    assert stored(runner, key).last_used_at == NOW
    clock.advance(30 - 5)  # 30 s after the first request
    assert status(client, key) == 200
    assert key_row(runner, key)["LAST USED"] == START
    clock.advance(31)  # 61 s after it
    assert status(client, key) == 200
    assert key_row(runner, key)["LAST USED"] == "2026-11-23T09:16:31.123Z"
    assert stored(runner, key).last_used_at == NOW + 61_000


def test_last_used_moves_exactly_one_minute_after_the_last_write(runner, client, clock):
    key = create_key(runner, *U1)
    assert status(client, key) == 200
    clock.advance(MINUTE - 0.001)
    assert status(client, key) == 200
    assert stored(runner, key).last_used_at == NOW
    clock.advance(0.001)
    assert status(client, key) == 200
    assert stored(runner, key).last_used_at == NOW + 60_000


def test_refused_requests_do_not_touch_last_used(runner, client, clock):
    key = create_key(runner, *U1, "--expires-in", "2m")
    assert status(client, key) == 200
    clock.advance(2 * MINUTE)
    assert status(client, key) == 401
    assert stored(runner, key).last_used_at == NOW
    revoked = create_key(runner, *U1)
    invoke_ok(runner, "revoke-key", public_id(revoked))
    assert status(client, revoked) == 401
    assert stored(runner, revoked).last_used_at is None
