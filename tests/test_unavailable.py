"""A database that is down answers 503 in the contract's shape, never 500 nor 401: from the start
(PostgreSQL on a closed port, SQLite in a folder that does not exist) or mid-run; the OpenAPI
document and the docs page need no database and keep answering."""
import os
import shutil

import pytest

from gensessions.db import close_database
from helpers import SESSIONS, assert_error, bearer, free_port, issue_key, new_app

KEY_SHAPED = "gsk_0123456789ab_" + "A" * 43


def closed_postgres():
    """A PostgreSQL URL on a local port nothing listens on (free_port: bound, then released,
    so a connect is refused)."""
    return f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"


def assert_unavailable(response):
    assert_error(response, 503)
    assert response.headers["Retry-After"].isdigit()
    assert int(response.headers["Retry-After"]) > 0


@pytest.fixture
def postgres_down():
    """An app whose PostgreSQL refuses connections (nothing listens on the port)."""
    app = new_app(closed_postgres())
    yield app.test_client()
    close_database(app)


@pytest.fixture
def sqlite_missing_folder(tmp_path):
    """An app whose SQLite file is in a folder that does not exist, so it cannot be opened."""
    app = new_app(str(tmp_path / "no-such-folder" / "gensessions.db"))
    yield app.test_client()
    close_database(app)


@pytest.fixture
def sqlite_app(tmp_path):
    """A working app on a SQLite file in its own folder, and a key of its user."""
    folder = tmp_path / "data"
    folder.mkdir()
    app = new_app(str(folder / "gensessions.db"))
    yield app.test_client(), folder, bearer(issue_key(app))
    close_database(app)


# --- PostgreSQL down from the start --------------------------------------------------------

def test_postgres_down_does_not_stop_the_app_from_starting():
    close_database(new_app(closed_postgres()))


def test_postgres_down_healthz_is_503_with_retry_after(postgres_down):
    assert_unavailable(postgres_down.get("/healthz"))


@pytest.mark.parametrize("authorization", [None, "Bearer garbage", f"Bearer {KEY_SHAPED}",
                                           KEY_SHAPED], ids=["none", "garbage", "bearer", "bare"])
def test_postgres_down_api_read_is_503_whatever_the_credential(postgres_down, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    assert_unavailable(postgres_down.get(SESSIONS, headers=headers))


def test_postgres_down_api_write_is_503(postgres_down):
    assert_unavailable(postgres_down.post(SESSIONS, json={},
                                          headers={"Authorization": f"Bearer {KEY_SHAPED}"}))


def test_postgres_down_event_append_is_503(postgres_down):
    response = postgres_down.post(f"{SESSIONS}/sess_{'x' * 24}/events", json={"type": "info"},
                                  headers={"Authorization": f"Bearer {KEY_SHAPED}"})
    assert_unavailable(response)


def test_postgres_down_openapi_document_is_200(postgres_down):
    response = postgres_down.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.json["openapi"].startswith("3.")


def test_postgres_down_docs_page_is_200(postgres_down):
    response = postgres_down.get("/docs/")
    assert response.status_code == 200
    assert response.content_type.startswith("text/html")


def test_postgres_down_docs_without_slash_still_redirects_to_the_docs_page(postgres_down):
    response = postgres_down.get("/docs")
    assert response.status_code in (301, 308), (response.status_code, response.get_data())
    assert response.headers["Location"].endswith("/docs/")


def test_postgres_down_with_rate_limit_on_is_still_503(tmp_path):
    app = new_app(closed_postgres(), RATE_LIMIT="3/minute")
    try:
        client = app.test_client()
        answers = [client.get(SESSIONS, headers={"Authorization": KEY_SHAPED}) for _ in range(5)]
    finally:
        close_database(app)
    for response in answers:
        assert_unavailable(response)


# --- SQLite that cannot be opened --------------------------------------------------------

def test_sqlite_in_a_missing_folder_does_not_stop_the_app_from_starting(tmp_path):
    close_database(new_app(str(tmp_path / "no-such-folder" / "gensessions.db")))


def test_sqlite_in_a_missing_folder_healthz_is_503(sqlite_missing_folder):
    assert_unavailable(sqlite_missing_folder.get("/healthz"))


def test_sqlite_in_a_missing_folder_api_is_503(sqlite_missing_folder):
    response = sqlite_missing_folder.get(SESSIONS, headers={"Authorization": KEY_SHAPED})
    assert_unavailable(response)


def test_sqlite_in_a_missing_folder_openapi_document_is_200(sqlite_missing_folder):
    assert sqlite_missing_folder.get("/v1/openapi.json").status_code == 200


def test_sqlite_folder_created_later_is_served(tmp_path):
    """The database coming back after the start: tables are created then, and requests pass."""
    path = tmp_path / "later" / "gensessions.db"
    app = new_app(str(path))
    try:
        client = app.test_client()
        assert_unavailable(client.get("/healthz"))
        path.parent.mkdir()
        assert client.get("/healthz").status_code == 200
    finally:
        close_database(app)


# --- SQLite unusable mid-run (the next connection opened fails) ----------------------------

def test_sqlite_folder_removed_mid_run_answers_503(sqlite_app):
    client, folder, headers = sqlite_app
    assert client.get(SESSIONS, headers=headers).status_code == 200
    # The next request opens a new connection, as a new worker thread would.
    close_database(client.application)
    shutil.rmtree(folder)
    assert_unavailable(client.get(SESSIONS, headers=headers))


def test_sqlite_folder_removed_mid_run_healthz_is_503(sqlite_app):
    client, folder, headers = sqlite_app
    assert client.get("/healthz").status_code == 200
    close_database(client.application)
    shutil.rmtree(folder)
    assert_unavailable(client.get("/healthz"))


def test_sqlite_file_overwritten_mid_run_answers_503_not_500(sqlite_app):
    client, folder, headers = sqlite_app
    assert client.post(SESSIONS, json={}, headers=headers).status_code == 201
    # Closing checkpoints the WAL into the file, which is then overwritten.
    close_database(client.application)
    path = folder / "gensessions.db"
    size = path.stat().st_size
    with open(path, "r+b") as database:
        database.write(os.urandom(size))
    assert_unavailable(client.get(SESSIONS, headers=headers))
