"""Schema migrations (models.migrations), through the CLI and through the app.

Covers: a fresh database gets every step recorded as applied and `migrate`
then has nothing to do; a database made before migrations existed (no
applied_migration table, api_key without expires_at) or one with only
0001_initial recorded is brought up to date by create_app, `migrate` or
`init-db`, keeping its keys (which still authenticate) and sessions;
`migrate --status`; two apps started one after the other on one database.
Each test runs on SQLite and, when TEST_DATABASE_URL names a PostgreSQL
server, again on a PostgreSQL database made for that test alone.

A server's app migrates as it starts (an app made for a `flask` command does
not: the command does), so the in-process tests of what `migrate` and `init-db`
print make the database old again after the app started (as a restore of an
old backup under a running app would), then run the command; the subprocess
tests run the real `flask --app wsgi migrate` on an old database.
"""
import contextlib
import os
import re
import subprocess
import sys
import time

import pytest

from databases import TEST_DATABASE_URL, drop_database, make_database
from gensessions.db import close_database, connected
from gensessions.models import MODELS, ApiKey, db, open_database, using
from gensessions.models.api_key import hash_secret
from gensessions.models.migrations import STEPS, AppliedMigration
from helpers import ROOT, SESSIONS, TIMESTAMP_TEXT, bearer, invoke_ok, new_app

STEP_NAMES = [name for name, _ in STEPS]
# What `migrate` prints for a database of the first release.
LATER_STEPS = "".join(f"{name}\n" for name in STEP_NAMES[1:])
# An API key as the old schema stored it (no expires_at), and a session of its user.
OLD_KEY_ID = "0123456789ab"
OLD_KEY = f"gsk_{OLD_KEY_ID}_{'s' * 43}"
OLD_SESSION_ID = "sess_" + "o" * 24
DAY_MS = 24 * 3600 * 1000


# --- databases ------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    """An empty database: a SQLite file, or a PostgreSQL database made for this test."""
    if request.param == "sqlite":
        yield str(tmp_path / "migrate.db")
        return
    if not TEST_DATABASE_URL:
        # Under CI too, for now: the lead wires TEST_DATABASE_URL into CI.
        pytest.skip("PostgreSQL migration tests need TEST_DATABASE_URL=postgresql://...")
    pytest.importorskip("psycopg2")
    database_url = make_database("gs_migrate")
    try:
        yield database_url
    finally:
        drop_database(database_url)


@pytest.fixture
def start_app(url):
    """create_app on `url` (any number of times, one after the other: the databases of the
    apps made before are closed first); every app's database is closed after the test."""
    made = []

    def close_all():
        for app in made:
            close_database(app)

    def make():
        close_all()
        made.append(new_app(url))
        return made[-1]
    yield make
    close_all()


@contextlib.contextmanager
def models_on(url):
    """The models bound to the database at `url` (no app), on a connection of its own."""
    database = open_database(url)
    try:
        with using(database), database.connection_context():
            yield database
    finally:
        database.close()


def run_sql(url, *statements):
    """Run (sql, params) statements on a connection of its own, in one transaction."""
    database = open_database(url)
    try:
        with database.connection_context(), database.atomic():
            for sql, params in statements:
                database.execute_sql(sql.replace("?", database.param), params)
    finally:
        database.close()


def make_old(url, record_initial=False):
    """Turn the database at `url` into one made before migrations: api_key without
    expires_at, the first release's session indexes, no applied_migration table (or one
    with only 0001_initial recorded)."""
    statements = [("ALTER TABLE api_key DROP COLUMN expires_at", ()),
                  ("DROP INDEX session_user_id_status_created_at_id_expires_at", ()),
                  ("DROP INDEX session_user_id_expires_at", ()),
                  ('CREATE INDEX "session_user_id_status_expires_at" ON "session" '
                   '("user_id", "status", "expires_at")', ()),
                  ("DROP TABLE IF EXISTS applied_migration", ())]
    if record_initial:
        statements += [
            ("CREATE TABLE applied_migration (name VARCHAR(64) NOT NULL PRIMARY KEY, "
             "applied_at BIGINT NOT NULL)", ()),
            ("INSERT INTO applied_migration (name, applied_at) VALUES (?, ?)",
             (STEP_NAMES[0], 1_700_000_000_000)),
        ]
    run_sql(url, *statements)


def build_old_database(url, record_initial=False):
    """An old database with one API key and one live session of its user, by raw SQL."""
    # Through the models' own handle: peewee's Database.create_tables(models) on another
    # database object would still create them where the models are bound.
    with models_on(url):
        db.create_tables(MODELS)
    make_old(url, record_initial)
    now = int(time.time() * 1000)
    run_sql(url, (
        "INSERT INTO api_key (id, key_hash, name, user_id, organization_id, scope, created_at, "
        "last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (OLD_KEY_ID, hash_secret(OLD_KEY), "old", "old_user", "old_org", "write",
         now - DAY_MS, None, None),
    ), (
        "INSERT INTO session (id, user_id, organization_id, status, created_at, updated_at, "
        "expires_at, revision, last_sequence, last_event_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (OLD_SESSION_ID, "old_user", "old_org", "planning", now - DAY_MS, now - DAY_MS,
         now + 6 * DAY_MS, 3, 0, 0),
    ))


# --- what to look at ------------------------------------------------------------------------

def status_lines(runner):
    """`migrate --status` as [(name, timestamp or 'pending')], checking its form."""
    lines = invoke_ok(runner, "migrate", "--status").stdout.splitlines()
    rows = []
    for line in lines:
        match = re.fullmatch(rf"(\S+)  ({TIMESTAMP_TEXT}|pending)", line)
        assert match, line
        rows.append(match.groups())
    assert [name for name, _ in rows] == STEP_NAMES
    return rows


def assert_all_applied(runner):
    rows = status_lines(runner)
    assert all(when != "pending" for _, when in rows), rows
    with connected(runner.app):
        assert sorted(row.name for row in AppliedMigration.select()) == sorted(STEP_NAMES)
    return rows


def api_key_columns(url):
    with models_on(url):
        return {column.name for column in db.get_columns("api_key")}


def assert_old_data_intact(app):
    """The old key authenticates over HTTP, sees its session, and list-keys shows it."""
    client = app.test_client()
    headers = bearer(OLD_KEY)
    listed = client.get(SESSIONS, headers=headers)
    assert listed.status_code == 200, listed.get_data(as_text=True)
    assert [item["id"] for item in listed.json["data"]] == [OLD_SESSION_ID]
    session = client.get(f"{SESSIONS}/{OLD_SESSION_ID}", headers=headers)
    assert session.status_code == 200
    assert (session.json["userId"], session.json["status"]) == ("old_user", "planning")
    with connected(app):
        key = ApiKey.get_by_id(OLD_KEY_ID)
    assert (key.user_id, key.expires_at, key.revoked_at) == ("old_user", None, None)
    row = [line.split() for line in invoke_ok(app.test_cli_runner(), "list-keys").stdout
           .splitlines() if line.startswith(OLD_KEY_ID)]
    assert len(row) == 1 and row[0][5] == "active" and row[0][8] == "-", row


# --- a fresh database -----------------------------------------------------------------------

def test_fresh_database_has_every_step_recorded_as_applied(url, start_app):
    app = start_app()
    assert "expires_at" in api_key_columns(url)
    rows = assert_all_applied(app.test_cli_runner())
    assert len({when for _, when in rows}) == 1  # recorded together, at creation


def test_migrate_on_a_fresh_database_applies_nothing(start_app):
    runner = start_app().test_cli_runner()
    before = status_lines(runner)
    for _ in range(2):
        result = invoke_ok(runner, "migrate")
        assert result.stdout == ""
        assert "0 migration steps applied" in result.stderr
    assert status_lines(runner) == before
    with connected(runner.app):
        assert AppliedMigration.select().count() == len(STEPS)


def test_init_db_on_a_fresh_database_applies_nothing(start_app):
    runner = start_app().test_cli_runner()
    before = status_lines(runner)
    result = invoke_ok(runner, "init-db")
    assert result.stdout == ""
    assert "(0 migration steps applied)" in result.stderr
    assert status_lines(runner) == before


def test_two_apps_one_after_the_other_on_one_database(start_app):
    first = start_app()
    key = invoke_ok(first.test_cli_runner(), "create-key", "--user-id", "u1",
                    "--expires-in", "1h").stdout.strip()
    created = first.test_client().post(SESSIONS, json={},
                                       headers=bearer(key))
    assert created.status_code == 201
    before = status_lines(first.test_cli_runner())

    second = start_app()
    client = second.test_client()
    response = client.get(f"{SESSIONS}/{created.json['id']}",
                          headers=bearer(key))
    assert response.status_code == 200
    assert status_lines(second.test_cli_runner()) == before
    with connected(second):
        assert AppliedMigration.select().count() == len(STEPS)


# --- an old database ------------------------------------------------------------------------

@pytest.mark.parametrize("record_initial", [False, True], ids=["no-record", "0001-recorded"])
def test_old_database_is_migrated_when_the_app_starts(url, start_app, record_initial):
    build_old_database(url, record_initial)
    app = start_app()
    assert "expires_at" in api_key_columns(url)
    rows = dict(assert_all_applied(app.test_cli_runner()))
    if record_initial:  # the record already there is kept as it was
        assert rows[STEP_NAMES[0]] == "2023-11-14T22:13:20.000Z"
    assert_old_data_intact(app)


def index_shapes(url):
    """{table: {(columns, unique)}} of the service's tables, as the database has them."""
    with models_on(url):
        return {model._meta.table_name: {(tuple(index.columns), index.unique)
                                         for index in db.get_indexes(model._meta.table_name)}
                for model in MODELS}


def test_a_migrated_database_has_the_indexes_of_a_fresh_one(url, start_app):
    start_app()
    fresh = index_shapes(url)
    assert (("user_id", "status", "created_at", "id", "expires_at"), False) in fresh["session"]
    build_old_database(url)
    assert (("user_id", "status", "expires_at"), False) in index_shapes(url)["session"]
    start_app()
    assert index_shapes(url) == fresh


@pytest.mark.parametrize("record_initial", [False, True], ids=["no-record", "0001-recorded"])
def test_migrated_database_takes_expiring_keys(url, start_app, record_initial):
    build_old_database(url, record_initial)
    app = start_app()
    runner = app.test_cli_runner()
    key = invoke_ok(runner, "create-key", "--user-id", "u1", "--expires-in", "1h").stdout.strip()
    with connected(app):
        row = ApiKey.get_by_id(key.split("_")[1])
    assert row.expires_at == row.created_at + 3_600_000
    assert app.test_client().get(SESSIONS, headers=bearer(key)) \
        .status_code == 200


@pytest.mark.parametrize("record_initial", [False, True], ids=["no-record", "0001-recorded"])
def test_migrate_applies_and_prints_the_missing_steps(url, start_app, record_initial):
    app = start_app()
    runner = app.test_cli_runner()
    make_old(url, record_initial)
    rows = dict(status_lines(runner))
    assert rows[STEP_NAMES[1]] == "pending"
    assert rows[STEP_NAMES[0]] == ("2023-11-14T22:13:20.000Z" if record_initial else "pending")
    assert "expires_at" not in api_key_columns(url)

    result = invoke_ok(runner, "migrate")
    assert result.stdout == LATER_STEPS
    assert f"{len(STEP_NAMES) - 1} migration steps applied" in result.stderr
    assert "expires_at" in api_key_columns(url)
    assert_all_applied(runner)

    again = invoke_ok(runner, "migrate")
    assert again.stdout == ""
    with connected(app):
        assert AppliedMigration.select().count() == len(STEPS)


@pytest.mark.parametrize("record_initial", [False, True], ids=["no-record", "0001-recorded"])
def test_init_db_migrates_an_old_database(url, start_app, record_initial):
    app = start_app()
    runner = app.test_cli_runner()
    make_old(url, record_initial)
    result = invoke_ok(runner, "init-db")
    assert result.stdout == ""
    assert f"({len(STEP_NAMES) - 1} migration steps applied)" in result.stderr
    assert "expires_at" in api_key_columns(url)
    assert_all_applied(runner)


def test_old_data_survives_migrate_run_by_hand(url, start_app):
    build_old_database(url)
    app = start_app()
    runner = app.test_cli_runner()
    make_old(url)  # old again under the running app: `migrate` does the work this time
    assert invoke_ok(runner, "migrate").stdout == LATER_STEPS
    assert_all_applied(runner)
    assert_old_data_intact(app)


# --- the real command line ------------------------------------------------------------------

def flask(url, tmp_path, *args):
    env = {**os.environ, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"),
           "PURGE_SCHEDULE": "off", "RATE_LIMIT": "off"}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def test_flask_migrate_on_an_old_database_prints_the_steps_it_applies(url, tmp_path):
    """The app made for a command does not migrate by itself: `migrate` does, and says what."""
    build_old_database(url)
    status = flask(url, tmp_path, "migrate", "--status")
    assert status.returncode == 0, status.stderr
    assert re.search(r"^0002_api_key_expiry  pending$", status.stdout, re.M), status.stdout
    result = flask(url, tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    assert result.stdout == LATER_STEPS


def test_flask_migrate_leaves_an_old_database_up_to_date(url, tmp_path, start_app):
    """Whichever step does it, after `flask migrate` the old database is current and intact."""
    build_old_database(url)
    result = flask(url, tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    status = flask(url, tmp_path, "migrate", "--status")
    assert [line.split()[0] for line in status.stdout.splitlines()] == STEP_NAMES
    assert "pending" not in status.stdout
    assert_old_data_intact(start_app())
