"""Fixtures, flaskr-style: an app on a temporary database, a client, credentials; and, for a
module, a real server (gunicorn) and a browser (Playwright driving Chromium).

Every test that uses `app` runs on SQLite (a temporary file) and, when TEST_DATABASE_URL
names a PostgreSQL server, again on PostgreSQL (one database for the run, emptied before
each test). A test that inspects the SQLite file itself is marked `sqlite_only`; its
PostgreSQL twin, `postgresql_only`.
"""
import os

import pytest
import requests

from databases import CI, TEST_DATABASE_URL, drop_database, empty_tables, make_database
from gensessions.db import close_database, connected
from gensessions.models import db
from helpers import (CHROMIUM, CHROMIUM_ARGS, NOW, SESSIONS, TIMEOUT, Clock, EventStream, Page,
                     bearer, issue_key, new_app, session_url)
from servers import start_gunicorn


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: runs on SQLite only (reads the file)")
    config.addinivalue_line("markers", "postgresql_only: runs on PostgreSQL only")
    if CI and not TEST_DATABASE_URL:
        # In CI the PostgreSQL half of the suite never drops out quietly.
        raise pytest.UsageError("CI=true needs TEST_DATABASE_URL (.ci/run sets it)")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        marked = metafunc.definition.get_closest_marker
        backends = [] if marked("postgresql_only") else ["sqlite"]
        if TEST_DATABASE_URL and not marked("sqlite_only"):
            backends.append("postgresql")
        # An empty list (postgresql_only without TEST_DATABASE_URL) skips, saying so.
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture
def backend(request):
    """The database the test runs on: "sqlite" or "postgresql"."""
    return request.param


@pytest.fixture(scope="session")
def postgres_database():
    """This run's PostgreSQL database for the `app` fixture (dropped at the end)."""
    url = make_database()
    yield url
    drop_database(url)


@pytest.fixture
def database_url(backend, tmp_path, request):
    if backend == "sqlite":
        return str(tmp_path / "test.db")
    url = request.getfixturevalue("postgres_database")
    empty_tables(url)
    return url


@pytest.fixture
def app(database_url):
    app = new_app(database_url)
    yield app
    close_database(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def conn(app):
    """The app's database, connected (in the app's context) for the length of a test."""
    with connected(app):
        yield db


@pytest.fixture
def make_app(tmp_path):
    """create_app on tmp_path/test.db (QUIET, then the settings given), any number of times;
    every app's database is closed after the test. A DATABASE_URL among the settings
    replaces the file (e.g. one in a folder that does not exist: every query fails)."""
    made = []

    def make(**settings):
        made.append(new_app(str(tmp_path / "test.db"), **settings))
        return made[-1]
    yield make
    for app in made:  # (an app that create_app refused never got here)
        close_database(app)


@pytest.fixture
def instance(app, tmp_path, monkeypatch):
    """Point the app's instance folder at a temporary one (never the real instance/)."""
    folder = tmp_path / "instance"
    folder.mkdir()
    monkeypatch.setattr(app, "instance_path", str(folder))
    return folder


@pytest.fixture
def make_key(app):
    """Create an API key through the real key model; return its Authorization headers."""
    def make(user_id="user_1", organization_id="org_1", scope="write"):
        return bearer(issue_key(app, user_id, organization_id, scope))
    return make


@pytest.fixture
def auth_headers(make_key):
    return make_key()


@pytest.fixture
def other_headers(make_key):
    """A second user's credential, for tenant isolation."""
    return make_key(user_id="user_2", organization_id="org_2")


@pytest.fixture
def create_session(client, auth_headers):
    """POST a session as the default user and return its JSON."""
    def create(body=None, headers=None):
        response = client.post(SESSIONS, json=body or {}, headers=headers or auth_headers)
        assert response.status_code == 201, response.json
        return response.json
    return create


@pytest.fixture
def set_status(client, auth_headers):
    """PATCH a session's status as the default user (it must be allowed); its JSON."""
    def set_(session_id, status):
        response = client.patch(session_url(session_id), json={"status": status},
                                headers=auth_headers)
        assert response.status_code == 200, response.json
        return response.json
    return set_


@pytest.fixture
def clock(monkeypatch):
    """Freeze time at 2026-11-23T09:15:30.123Z (helpers.NOW); tests move it with
    clock.advance()."""
    frozen = Clock(NOW)
    monkeypatch.setattr("gensessions.clock.now_ms", frozen.now_ms)
    return frozen


# --- a real server --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server for a module's tests (servers.GunicornServer): 2 workers on a temporary
    SQLite file, checked for a clean stop without tracebacks. A module that needs other
    settings defines its own `server`."""
    with start_gunicorn(tmp_path_factory.mktemp("gunicorn"), workers=2,
                        forbid_traceback=True) as running:
        yield running


@pytest.fixture(scope="module")
def served_document(server):
    """The OpenAPI document as `server` serves it."""
    response = requests.get(server.url + "/v1/openapi.json", timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()


# --- a browser ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (helpers.CHROMIUM, with CHROMIUM_ARGS) driven by Playwright, for a
    module's tests; open pages on it with helpers.Page or the `page` fixture. Without
    Chromium the tests that use it skip, or fail when CI is set."""
    if not os.access(CHROMIUM, os.X_OK):
        reason = (f"headless Chromium is not installed (Debian package `chromium`, {CHROMIUM});"
                  " `make test` installs it through tests/ensure_chromium.sh when run as root")
        if CI:
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A helpers.Page (1100x900) for one test, closed after it."""
    with Page(browser) as opened:
        yield opened


@pytest.fixture(autouse=True)
def close_streams():
    """Every live stream a test opened (helpers.EventStream) is closed after it."""
    yield
    EventStream.close_all()
