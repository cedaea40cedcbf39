"""Live events across two hosts: two gunicorn servers (2 workers each) over one PostgreSQL
database, whose watchers hear each other's changes through LISTEN/NOTIFY.

A stream on one host replays, then gets live what the other host appends, `end` when the
other host completes the session, `gone` when it deletes it; a long poll on one host is
answered by an append on the other; a stream token issued by one host works on the other
(no setting shared: the signing key is in the database) and is in no table's text nor
either log. Needs TEST_DATABASE_URL (skipped without it, except in CI, where that is a
failure).
"""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg2
import pytest

from databases import drop_database, make_database, require_postgres
from helpers import (HEARTBEAT, SLACK, TIMEOUT, Api, events_url, session_url,
                     streams_on_both_workers)
from servers import start_gunicorn

SETTINGS = {"STREAM_HEARTBEAT_SECONDS": HEARTBEAT, "STREAM_MAX_SECONDS": 30}


@pytest.fixture(scope="module")
def database():
    require_postgres()
    url = make_database("gs_live")
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def hosts(database, tmp_path_factory):
    """(host A, host B): the same user's Api on each server."""
    with start_gunicorn(tmp_path_factory.mktemp("live_a"), workers=2, forbid_traceback=True,
                        DATABASE_URL=database, **SETTINGS) as host_a, \
            start_gunicorn(tmp_path_factory.mktemp("live_b"), workers=2,
                           forbid_traceback=True, DATABASE_URL=database,
                           **SETTINGS) as host_b:
        a = Api(host_a, "pg_live_user")
        yield a, Api(host_b, a.user_id, key=a.key)


def test_replay_then_live_with_appends_on_the_other_host(hosts):
    a, b = hosts
    session_id = a.new_session()["id"]
    replayed = [b.append(session_id, f"before-{n}") for n in range(3)]
    streams = list(streams_on_both_workers(a, session_id).values())
    streams += list(streams_on_both_workers(b, session_id).values())
    for stream in streams:
        assert stream.read_events(3) == replayed
    received = [list(replayed) for _ in streams]
    for n in range(4):
        appended = (b if n % 2 == 0 else a).append(session_id, f"live-{n}")
        for index, stream in enumerate(streams):
            event = stream.read_events(1, 2)[0]
            assert event == appended
            received[index].append(event)
    logged = b.events(session_id)
    assert logged == a.events(session_id)
    assert [e["sequence"] for e in logged] == list(range(1, 8))
    for index, stream in enumerate(streams):
        assert received[index] == logged
        assert stream.events_until_keep_alive(HEARTBEAT + 3) == []  # nothing twice


def test_end_when_the_other_host_completes_the_session(hosts):
    a, b = hosts
    session_id = a.new_session()["id"]
    a.append(session_id, "one")
    streams = list(streams_on_both_workers(a, session_id).values())
    for stream in streams:
        assert len(stream.read_events(1)) == 1
        # Once a keep-alive came, this host's watcher has seen the session as it is now:
        # only the other host's NOTIFY can tell it of the change below.
        assert stream.events_until_keep_alive(HEARTBEAT + 3) == []
    final = b.set_status(session_id, "completed")
    for stream in streams:
        blocks = [block for block in stream.read_to_close(5) if block["data"] is not None]
        assert [block.get("event") for block in blocks] == [None, "end"]
        assert json.loads(blocks[0]["data"]) == b.events(session_id)[-1]
        assert json.loads(blocks[1]["data"]) == final
    with a.stream(session_id, headers={"Last-Event-ID": "2"}) as answer:
        assert (answer.status, answer.body) == (204, b"")


def test_gone_when_the_other_host_deletes_the_session(hosts):
    a, b = hosts
    session_id = a.new_session()["id"]
    streams = list(streams_on_both_workers(a, session_id).values())
    for stream in streams:
        assert stream.events_until_keep_alive(HEARTBEAT + 3) == []  # (see the test above)
    b.call("DELETE", session_url(session_id), expect=204)
    deleted_at = time.monotonic()
    for stream in streams:
        blocks = [block for block in stream.read_to_close(HEARTBEAT + 5)
                  if block["data"] is not None]
        assert [(block.get("event"), block["data"]) for block in blocks] == [("gone", "{}")]
        assert blocks[0]["at"] - deleted_at <= HEARTBEAT + SLACK
    with a.stream(session_id) as later:
        assert later.status == 404


def test_a_long_poll_on_one_host_answers_when_the_other_appends(hosts):
    a, b = hosts
    session_id = a.new_session()["id"]
    with ThreadPoolExecutor(2) as pool:
        started = time.monotonic()
        waits = [pool.submit(a.call, "GET", events_url(session_id) + query)
                 for query in ("?wait=20", "?after=0&wait=20")]
        # Nothing outside the server shows that the requests wait: give them half a second
        # to get there, and check they have not answered meanwhile.
        time.sleep(0.5)
        assert not any(wait.done() for wait in waits)
        appended = b.append(session_id, "from the other host")
        appended_at = time.monotonic()
        answers = [wait.result(TIMEOUT) for wait in waits]
    assert time.monotonic() - appended_at < 1 + SLACK
    assert time.monotonic() - started < 5
    for answer in answers:
        assert answer.status_code == 200
        assert answer.json()["data"] == [appended]
        assert answer.json()["pagination"]["nextCursor"] == appended["id"]


def table_text(url):
    """Every row of every table of the database, as text."""
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            tables = [name for (name,) in cursor.fetchall()]
            rows = []
            for table in tables:
                cursor.execute(f'SELECT t::text FROM "{table}" t')
                rows += [f"{table}: {text}" for (text,) in cursor.fetchall()]
        return tables, "\n".join(rows)
    finally:
        connection.close()


def test_a_token_from_one_host_reads_the_stream_on_the_other_and_is_stored_nowhere(
        hosts, database):
    a, b = hosts
    session_id = a.new_session()["id"]
    first = a.append(session_id, "one")
    token = a.call("POST", f"{session_url(session_id)}/stream-tokens", expect=201).json()[
        "token"]
    streams = list(streams_on_both_workers(b, session_id, anonymous=True,
                                           access_token=token).values())
    for stream in streams:
        assert stream.read_events(1) == [first]
    second = a.append(session_id, "two")
    for stream in streams:
        assert stream.read_events(1, 2) == [second]
    # Changed, it is refused on either host; it opens no other endpoint there.
    changed = token[:-1] + ("A" if token[-1] != "A" else "B")
    for host in (a, b):
        with host.stream(session_id, anonymous=True, access_token=changed) as refused:
            assert refused.status == 401
            assert token.encode() not in refused.body and changed.encode() not in refused.body
        answer = host.call("GET", session_url(session_id), anonymous=True,
                           params={"access_token": token})
        assert answer.status_code == 401 and token not in answer.text
    tables, stored = table_text(database)
    assert {"session", "event", "api_key", "server_secret"} <= set(tables)
    assert "server_secret: (stream-token," in stored
    signature = token.partition(".")[2]
    for secret in (token, signature, changed):
        assert secret not in stored, "a token is in the database"
        for host in (a, b):
            assert secret not in host.server.log(), "a token is in a server's log"
    assert "access_token" not in a.server.log() + b.server.log()
