"""Fixtures, flaskr-style: an app on a temporary database, a client, credentials.

Every test that uses `app` runs on SQLite (a temporary file) and, when TEST_DATABASE_URL
names a PostgreSQL server, again on PostgreSQL (one database for the run, emptied before
each test). A test that inspects the SQLite file itself is marked `sqlite_only`; its
PostgreSQL twin, `postgresql_only`.
"""
import pytest

from gensessions import create_app
from databases import CI, TEST_DATABASE_URL, drop_database, empty_tables, make_database
from gensessions.models import ApiKey, db

SESSIONS = "/v1/products/generation/sessions"


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
    app = create_app({"DATABASE_URL": database_url, "TESTING": True,
                      "PURGE_SCHEDULE": "off", "RATE_LIMIT": "off"})
    yield app
    with app.app_context():
        db.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


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
        with app.app_context(), db.connection_context():
            _, key = ApiKey.issue(user_id, 0, organization_id=organization_id, scope=scope)
        return {"Authorization": f"Bearer {key}"}
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


def assert_error(response, status, code=None, path=None):
    """Assert the contract's error shape; with `code`, a 4xx details item with that code/path."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.content_type.startswith("application/json")
    body = response.json
    assert isinstance(body.get("error"), str) and body["error"]
    assert "X-Request-Id" in response.headers
    if code is not None:
        matches = [d for d in body["details"]
                   if d["code"] == code and (path is None or d["path"] == path)]
        assert matches, body
        for item in body["details"]:
            assert set(item) <= {"code", "message", "path", "suggestion"}
            assert isinstance(item["message"], str) and isinstance(item["path"], str)
        return matches[0]
    return body


class Clock:
    """A controllable "now" for the whole app (app.clock.now_ms is the one source)."""

    def __init__(self, start_ms):
        self.ms = start_ms

    def now_ms(self):
        return self.ms

    def advance(self, seconds):
        self.ms += int(seconds * 1000)


@pytest.fixture
def clock(monkeypatch):
    """Freeze time at 2026-11-23T09:15:30.123Z; tests move it with clock.advance()."""
    frozen = Clock(1_795_425_330_123)
    monkeypatch.setattr("gensessions.clock.now_ms", frozen.now_ms)
    return frozen
