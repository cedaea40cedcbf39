"""Several apps in one process (an embedding project's tests, a demo beside a real server): each
reads and writes only its own database, whatever order their requests come in, and model code
run outside any app finds no database at all rather than someone else's.

Two apps on two SQLite files take interleaved requests (and keys made through the model and
through the CLI, and writes from threads at the same time); then the files themselves, opened
with the sqlite3 module, hold exactly each app's own sessions, events and keys. A key of one
app is unknown (401) to the other; a session of one is missing (404) in the other. Two
in-memory apps stay apart the same way.
"""
import sqlite3
import threading
from contextlib import closing

import pytest

from gensessions import create_app
from gensessions.db import close_database, connected
from gensessions.models import ApiKey, Event, Session, db
from gensessions.models.database import NoDatabase
from helpers import (NOW, QUIET, SESSIONS, assert_error, bearer, events_url, invoke_ok,
                     issue_key, public_id, session_url)

PER_THREAD = 10


@pytest.fixture
def make_apps():
    """create_app({"DATABASE_URL": url, ...}) for each url given; closed after the test."""
    made = []

    def make(*urls):
        made.extend(create_app({**QUIET, "DATABASE_URL": url}) for url in urls)
        return made[-len(urls):]
    yield make
    for app in made:
        close_database(app)


def stored(path):
    """What the SQLite file at `path` holds: ({session id: user}, {(session id, sequence)},
    {key id: user}), read with the sqlite3 module, not through the models."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as database:
        sessions = dict(database.execute("SELECT id, user_id FROM session"))
        events = set(database.execute("SELECT session_id, sequence FROM event"))
        keys = dict(database.execute("SELECT id, user_id FROM api_key"))
    return sessions, events, keys


class Ledger:
    """What one app answered: its sessions (id -> user), events, and keys (id -> user)."""

    def __init__(self):
        self.sessions, self.events, self.keys = {}, set(), {}
        self.lock = threading.Lock()

    def key(self, user, key):
        self.keys[public_id(key)] = user
        return bearer(key)

    def create(self, client, user, headers):
        response = client.post(SESSIONS, json={"prd": {"owner": user}}, headers=headers)
        assert response.status_code == 201, response.json
        with self.lock:
            self.sessions[response.json["id"]] = user
        return response.json["id"]

    def append(self, client, session_id, headers):
        response = client.post(events_url(session_id), json={"type": "info"}, headers=headers)
        assert response.status_code == 201, response.json
        with self.lock:
            self.events.add((session_id, response.json["sequence"]))


def test_two_apps_on_two_files_hold_exactly_their_own_data(tmp_path, make_apps):
    paths = [tmp_path / "a.db", tmp_path / "b.db"]
    apps = make_apps(*map(str, paths))
    clients = [app.test_client() for app in apps]
    ledgers = [Ledger(), Ledger()]
    # A key of each app through the model, another through its CLI (create-key).
    modelled = [ledger.key(f"user_{name}", issue_key(app, f"user_{name}"))
                for ledger, app, name in zip(ledgers, apps, "ab")]
    cli = [ledger.key(f"cli_{name}", invoke_ok(app.test_cli_runner(), "create-key",
                                               "--user-id", f"cli_{name}").stdout.strip())
           for ledger, app, name in zip(ledgers, apps, "ab")]

    # Interleaved: A, B, A, B... each a session, then an event on it and on the first one.
    for round_number in range(6):
        for side in (0, 1):
            user, headers = ((f"user_{'ab'[side]}", modelled[side]) if round_number % 2 == 0
                             else (f"cli_{'ab'[side]}", cli[side]))
            session_id = ledgers[side].create(clients[side], user, headers)
            ledgers[side].append(clients[side], session_id, headers)

    # And at the same time, from threads: each thread writes to one app, both apps at once.
    def write(side):
        client = apps[side].test_client()
        for _ in range(PER_THREAD):
            session_id = ledgers[side].create(client, f"user_{'ab'[side]}", modelled[side])
            ledgers[side].append(client, session_id, modelled[side])
    threads = [threading.Thread(target=write, args=(side,)) for side in (0, 1, 0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)

    for path, ledger in zip(paths, ledgers):
        assert len(ledger.sessions) == 6 + 2 * PER_THREAD
        assert stored(path) == (ledger.sessions, ledger.events, ledger.keys)
    # Nothing the two answered is shared.
    assert not set(ledgers[0].sessions) & set(ledgers[1].sessions)
    assert not set(ledgers[0].keys) & set(ledgers[1].keys)

    # Each app's own models see its own rows too.
    for app, ledger in zip(apps, ledgers):
        with connected(app):
            assert {row.id for row in Session.select()} == set(ledger.sessions)
            assert Event.select().count() == len(ledger.events)
            assert {row.id for row in ApiKey.select()} == set(ledger.keys)


def test_a_key_of_one_app_is_unknown_to_the_other(tmp_path, make_apps):
    first, second = make_apps(str(tmp_path / "a.db"), str(tmp_path / "b.db"))
    key = bearer(issue_key(first))
    created = first.test_client().post(SESSIONS, json={}, headers=key)
    assert created.status_code == 201
    refused = second.test_client().get(SESSIONS, headers=key)
    assert_error(refused, 401)
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    # The same user with a key of the second app finds nothing of the first's there.
    own = bearer(issue_key(second))
    assert_error(second.test_client().get(session_url(created.json["id"]), headers=own), 404)
    assert second.test_client().get(SESSIONS, headers=own).json["data"] == []


def test_model_code_outside_any_app_raises_no_database(tmp_path, make_apps):
    [app] = make_apps(str(tmp_path / "a.db"))
    with pytest.raises(NoDatabase):
        Session.select().count()
    with pytest.raises(NoDatabase):
        ApiKey.issue("user_1", NOW)
    with pytest.raises(NoDatabase):
        db.connect()
    with connected(app):
        assert Session.select().count() == 0
        # A thread of its own has no app context, even while this one has.
        raised = []

        def outside():
            try:
                Session.select().count()
            except NoDatabase as error:
                raised.append(error)
        thread = threading.Thread(target=outside)
        thread.start()
        thread.join(10)
        assert len(raised) == 1
    with pytest.raises(NoDatabase):  # and none once the app's context has ended
        Session.select().count()


def test_two_in_memory_apps_stay_apart(make_apps):
    apps = make_apps(":memory:", ":memory:")
    clients = [app.test_client() for app in apps]
    keys = [bearer(issue_key(app, f"user_{name}")) for app, name in zip(apps, "ab")]
    made = [[], []]
    for _ in range(3):
        for side in (0, 1):
            created = clients[side].post(SESSIONS, json={}, headers=keys[side])
            assert created.status_code == 201
            made[side].append(created.json["id"])
            assert clients[side].post(events_url(created.json["id"]), json={"type": "info"},
                                      headers=keys[side]).status_code == 201
    for side, other in ((0, 1), (1, 0)):
        listing = clients[side].get(SESSIONS + "?limit=100", headers=keys[side]).json
        assert {item["id"] for item in listing["data"]} == set(made[side])
        assert_error(clients[other].get(SESSIONS, headers=keys[side]), 401)
        with connected(apps[side]):
            assert {row.id for row in Session.select()} == set(made[side])
            assert Event.select().count() == 3
            assert ApiKey.select().count() == 1
