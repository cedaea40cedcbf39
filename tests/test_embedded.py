"""Embedded use: create_app({"DATABASE_URL": ":memory:"}) serves a whole demo in-process."""
import threading
import time

import pytest

from gensessions import create_app
from gensessions.db import close_database
from helpers import SESSIONS, bearer, issue_key


@pytest.fixture
def memory_app():
    app = create_app({"DATABASE_URL": ":memory:", "PURGE_SCHEDULE": "off", "RATE_LIMIT": "off"})
    yield app
    close_database(app)


@pytest.fixture
def headers(memory_app):
    return bearer(issue_key(memory_app, "demo_user"))


def test_in_memory_app_needs_no_set_up(memory_app, headers):
    client = memory_app.test_client()
    created = client.post(SESSIONS, json={"prd": {"title": "demo"}}, headers=headers)
    assert created.status_code == 201
    fetched = client.get(f"{SESSIONS}/{created.json['id']}", headers=headers)
    assert fetched.status_code == 200 and fetched.json["prd"] == {"title": "demo"}


def test_in_memory_app_serves_threads_one_database(memory_app, headers):
    """The development server is threaded: every thread must see the one in-memory database."""
    session_id = memory_app.test_client().post(SESSIONS, json={}, headers=headers).json["id"]
    statuses = []

    def append_events():
        client = memory_app.test_client()
        for _ in range(20):
            statuses.append(client.post(f"{SESSIONS}/{session_id}/events",
                                        json={"type": "progress"}, headers=headers).status_code)

    threads = [threading.Thread(target=append_events) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [201] * 80
    events = memory_app.test_client().get(f"{SESSIONS}/{session_id}/events?limit=1000",
                                          headers=headers).json["data"]
    assert [event["sequence"] for event in events] == list(range(1, 81))


def test_in_memory_app_follows_events_live(memory_app, headers):
    """An in-memory database is one connection that requests share: a stream or a long poll
    asleep leaves it to others (the append that wakes them must not wait for them), and
    the app's own writes wake its followers (data_version sees only other connections')."""
    session_id = memory_app.test_client().post(SESSIONS, json={}, headers=headers).json["id"]
    events_url = f"{SESSIONS}/{session_id}/events"
    answers = {}

    def long_poll():
        answers["wait"] = memory_app.test_client().get(f"{events_url}?wait=10", headers=headers)

    def stream():
        streamed = memory_app.test_client().get(f"{events_url}/stream", headers=headers,
                                                buffered=False)
        lines = []
        try:
            for chunk in streamed.response:
                lines += chunk.decode().splitlines()
                if any(line.startswith("event: end") for line in lines):
                    break
        finally:
            streamed.close()  # in this thread, as a server ends a stream
        answers["stream"] = lines

    threads = [threading.Thread(target=long_poll), threading.Thread(target=stream)]
    for thread in threads:
        thread.start()
    client = memory_app.test_client()
    started = time.monotonic()
    assert client.post(events_url, json={"type": "progress"}, headers=headers).status_code == 201
    assert time.monotonic() - started < 2  # not held up by the sleeping stream and poll
    assert client.patch(f"{SESSIONS}/{session_id}", json={"status": "completed"},
                        headers=headers).status_code == 200
    for thread in threads:
        thread.join(10)
    assert not any(thread.is_alive() for thread in threads)
    assert [event["sequence"] for event in answers["wait"].json["data"]][:1] == [1]
    ids = [line.removeprefix("id: ") for line in answers["stream"] if line.startswith("id: ")]
    assert ids == ["1", "2"]
    assert time.monotonic() - started < 5  # woken by the writes, not by a time-out
