"""Live events through a real gunicorn with 2 workers on SQLite: the stream (Server-Sent
Events) and the long poll (`wait`), with appends, status changes and deletes made through
the other worker, and what happens to streams at STREAM_MAX, STREAM_MAX_SECONDS, expiry,
a worker restart and shutdown; gensessions.client.follow across all of it.

Which worker served a request is read from its access line (`pid`, found by the
X-Request-Id the test sent). Each worker has its own SO_REUSEPORT socket, so a new
connection lands on either: a test that needs both opens connections until it has one on
each (`Api.through`, `streams_on_both_workers`). The settings are small (a 1 s heartbeat,
2 streams per worker, 1 s streams, sessions of 3 s) so that the module runs in seconds.
"""
import json
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gensessions.client import follow
from helpers import (HEARTBEAT, SLACK, TIMEOUT, Api, access_lines, assert_http_error, epoch,
                     events_url, request_id, session_url, stream_url, streams_on_both_workers,
                     wait_until, wall)
from servers import start_gunicorn

# The main server: quiet streams send a keep-alive every second; streams stay open long
# enough for any test here.
SETTINGS = {"STREAM_HEARTBEAT_SECONDS": HEARTBEAT, "STREAM_MAX_SECONDS": 30, "STREAM_MAX": 20}


def session_json(api, session_id):
    """The Session JSON without events, as GET shows it."""
    session = api.call("GET", session_url(session_id), expect=200).json()
    del session["events"]
    return session


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with start_gunicorn(tmp_path_factory.mktemp("live"), workers=2, forbid_traceback=True,
                        **SETTINGS) as server:
        yield Api(server)


# --- replay, then live ------------------------------------------------------------------

def test_replay_then_live_in_order_with_appends_through_the_other_worker(api):
    session_id = api.new_session()["id"]
    for n in range(3):
        api.append(session_id, f"before-{n}")
    streams = streams_on_both_workers(api, session_id)
    received = {pid: stream.read_events(3) for pid, stream in streams.items()}
    # Each worker appends in turn: every stream gets events appended by the other worker,
    # each as it is appended.
    for n in range(3):
        for pid in streams:
            appended = api.append_via(pid, session_id, f"live-{n}-{pid}")
            for other, stream in streams.items():
                event = stream.read_events(1, 2)[0]
                assert event == appended, (other, event, appended)
                received[other].append(event)
    final = api.set_status(session_id, "completed")
    logged = api.events(session_id)
    assert [e["sequence"] for e in logged] == list(range(1, 11))
    assert logged[-1]["type"] == "status.changed"
    for pid, stream in streams.items():
        blocks = [b for b in stream.read_to_close(5) if b["data"] is not None]
        assert [b.get("event") for b in blocks] == [None, "end"]
        assert blocks[0]["id"] == "10"
        received[pid].append(json.loads(blocks[0]["data"]))
        # Replay then live: no gap, no repeat, in order, each as the events list gives it.
        assert received[pid] == logged, pid
        assert json.loads(blocks[1]["data"]) == final


def test_the_stream_is_server_sent_events_with_the_contracts_headers(api):
    session_id = api.new_session()["id"]
    first = api.append(session_id, "one")
    sent_id = request_id()
    with api.stream(session_id, headers={"X-Request-Id": sent_id}) as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].split(";")[0] == "text/event-stream"
        assert stream.headers["Cache-Control"] == "no-store"
        assert stream.headers["X-Accel-Buffering"] == "no"
        assert stream.headers["X-Request-Id"] == sent_id
        assert stream.headers["X-Content-Type-Options"] == "nosniff"
        assert stream.read_events(1) == [first]
        second = api.append(session_id, "two")
        assert stream.read_events(1, 5) == [second]
        assert stream.events_until_keep_alive(HEARTBEAT + 2) == []
        retry, *rest = stream.lines
        assert retry.startswith("retry: ") and int(retry[7:]) > 0, stream.lines
        # Each event: exactly `id: <sequence>`, `data: <one line of JSON>`, a blank line.
        assert rest[:7] == ["", "id: 1", "data: " + stream.lines[3][6:], "",
                            "id: 2", "data: " + stream.lines[6][6:], ""]
        assert [json.loads(stream.lines[3][6:]), json.loads(stream.lines[6][6:])] == \
            api.events(session_id)
        assert ": keep-alive" in stream.lines


def test_a_replay_longer_than_a_page_comes_whole_in_order_then_live(api):
    """The stream reads 500 events at a time from the database."""
    session_id = api.new_session()["id"]

    def append_many(writer):
        with requests.Session() as http:
            for n in range(writer, 501, 4):
                api.append(session_id, f"{n}", http=http)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(append_many, range(4)))
    logged = api.events(session_id)
    assert len(logged) == 501
    with api.stream(session_id) as whole, api.stream(session_id, after="499") as tail:
        assert whole.read_events(501, 15) == logged
        assert tail.read_events(2) == logged[499:]
        live = api.append(session_id, "live")
        assert whole.read_events(1, 5) == [live] == tail.read_events(1, 5)


def test_events_of_any_text_are_one_data_line_each(api):
    session_id = api.new_session()["id"]
    appended = [api.call("POST", events_url(session_id), expect=201, json=body).json()
                for body in ({"type": "info", "message": "two\nlines\r\nand\rmore\n\n"},
                             {"type": "info", "message": "data: id: 9\n\nevent: end\n"},
                             {"type": "info", "message": "\u2028\u2029\x85 \u00e9\u6f22 \U0001f600",
                              "payload": {"nested": {"text": "\n\n", "list": [1, None]}}},
                             {"type": "x" * 64, "message": "m" * 10_000})]
    with api.stream(session_id) as stream:
        assert stream.read_events(4) == appended == api.events(session_id)
    assert len([line for line in stream.lines if line.startswith("data: ")]) == 4


def test_resume_by_last_event_id_and_by_after(api):
    session_id = api.new_session()["id"]
    logged = [api.append(session_id, str(n)) for n in range(1, 6)]
    ids = [event["id"] for event in logged]
    cases = {  # resume point -> the sequences replayed
        "start": ({}, {}, [1, 2, 3, 4, 5]),
        "after id": ({"after": ids[1]}, {}, [3, 4, 5]),
        "after sequence": ({"after": "2"}, {}, [3, 4, 5]),
        "after 0": ({"after": "0"}, {}, [1, 2, 3, 4, 5]),
        "Last-Event-ID": ({}, {"Last-Event-ID": "3"}, [4, 5]),
        "Last-Event-ID 0": ({}, {"Last-Event-ID": "0"}, [1, 2, 3, 4, 5]),
        "Last-Event-ID wins over after id": ({"after": ids[0]}, {"Last-Event-ID": "4"}, [5]),
        "Last-Event-ID wins over after": ({"after": "4"}, {"Last-Event-ID": "1"},
                                          [2, 3, 4, 5]),
        "after past the end": ({"after": "9"}, {}, []),
        "Last-Event-ID past the end": ({}, {"Last-Event-ID": "7"}, []),
        "Last-Event-ID at the end": ({}, {"Last-Event-ID": "5"}, []),
    }
    streams = {name: api.stream(session_id, headers=headers, **query)
               for name, (query, headers, _) in cases.items()}
    try:
        for name, stream in streams.items():
            assert stream.status == 200, (name, stream.body)
            replayed = stream.events_until_keep_alive(HEARTBEAT + 3)
            assert replayed == [logged[n - 1] for n in cases[name][2]], name
        # Live from there: a stream past the end takes the events from its resume point on.
        sixth = api.append(session_id, "6")
        seventh = api.append(session_id, "7")
        for name in ("start", "Last-Event-ID", "Last-Event-ID at the end"):
            assert streams[name].read_events(2, 5) == [sixth, seventh], name
        eighth = api.append(session_id, "8")
        assert streams["Last-Event-ID past the end"].read_events(1, 5) == [eighth]
        assert streams["Last-Event-ID at the end"].read_events(1, 5) == [eighth]
        assert streams["after past the end"].events_until_keep_alive(HEARTBEAT + 3) == []
    finally:
        for stream in streams.values():
            stream.close()


def test_malformed_or_unknown_resume_points_answer_400_before_the_stream(api):
    session_id = api.new_session()["id"]
    api.append(session_id, "one")
    for after in ("abc", "-1", "1.5", "evt_", "evt_!", "1" * 19, "evt_" + "x" * 22):
        with api.stream(session_id, after=after) as refused:
            assert refused.status == 400, (after, refused.body)
            body = refused.json()
            assert [(d["code"], d["path"]) for d in body["details"]] == \
                [("INVALID_FORMAT", "after")], (after, body)
            assert refused.headers["Content-Type"].startswith("application/json")
    for header in ("abc", "-1", "1.5", "evt_x", "1 2", "+1", "1" * 19):
        for query in ({}, {"after": "1"}):
            with api.stream(session_id, headers={"Last-Event-ID": header}, **query) as refused:
                assert refused.status == 400, (header, refused.body)
                body = refused.json()
                assert [(d["code"], d["path"]) for d in body["details"]] == \
                    [("INVALID_FORMAT", "Last-Event-ID")], (header, body)
    assert_http_error(requests.get(stream_url(api.url, session_id), timeout=TIMEOUT), 401)
    missing = api.call("GET", events_url("sess_" + "x" * 24) + "/stream")
    assert_http_error(missing, 404)


# --- how a stream ends --------------------------------------------------------------------

def test_end_follows_the_status_change_with_the_session_then_the_stream_closes(api):
    session_id = api.new_session()["id"]
    api.append(session_id, "working")
    pids = sorted(api.workers())
    with api.stream(session_id) as stream:
        assert [e["sequence"] for e in stream.read_events(1)] == [1]
        # Once a keep-alive came, the watchers have seen the session as it is now: only
        # noticing the change below can wake the stream.
        assert stream.events_until_keep_alive(HEARTBEAT + 3) == []
        other = next(pid for pid in pids if pid != api.pid(stream))
        with api.through(other) as http:
            api.set_status(session_id, "assembling", http)  # not terminal: goes on
            changed = stream.read_events(1, 5)[0]
            assert (changed["type"], changed["payload"]) == (
                "status.changed", {"from": "intake", "to": "assembling"})
            final = api.set_status(session_id, "completed", http)
        blocks = [b for b in stream.read_to_close(5) if b["data"] is not None]
        assert stream.closed_at is not None
    assert [b.get("event") for b in blocks] == [None, "end"]
    completed = json.loads(blocks[0]["data"])
    assert (completed["type"], completed["sequence"]) == ("status.changed", 3)
    assert completed["payload"] == {"from": "assembling", "to": "completed"}
    assert json.loads(blocks[1]["data"]) == final == session_json(api, session_id)
    assert "events" not in json.loads(blocks[1]["data"])

    # Nothing after the resume point of a terminal session: 204, no body.
    for headers, query in (({}, {"after": "3"}), ({}, {"after": completed["id"]}),
                           ({"Last-Event-ID": "3"}, {}), ({}, {"after": "40"}),
                           ({"Last-Event-ID": "3"}, {"after": "1"})):
        with api.stream(session_id, headers=headers, **query) as answer:
            assert (answer.status, answer.body) == (204, b""), (headers, query)
    # Something after it: the rest, then `end` at once.
    with api.stream(session_id, headers={"Last-Event-ID": "1"}) as rest:
        blocks = [b for b in rest.read_to_close(5) if b["data"] is not None]
    assert [b.get("id") for b in blocks] == ["2", "3", None]
    assert blocks[-1]["event"] == "end"
    late = api.append(session_id, "appended to a completed session")
    with api.stream(session_id, headers={"Last-Event-ID": "3"}) as rest:
        blocks = [b for b in rest.read_to_close(5) if b["data"] is not None]
    assert [json.loads(b["data"]) for b in blocks[:-1]] == [late]
    assert blocks[-1]["event"] == "end"


def gone_block(stream, seconds):
    """The stream's `gone` message (only keep-alives before it); checks it closes after."""
    while True:
        block = stream.next_block(seconds)
        assert block is not None, "closed without `gone`"
        if block["data"] is not None:
            break
    assert (block.get("event"), block["data"]) == ("gone", "{}"), block
    assert stream.read_to_close(5) == []
    return block


def assert_gone_for_every_request(api, session_id):
    assert_http_error(api.call("GET", events_url(session_id) + "/stream"), 404)
    assert_http_error(api.call("GET", events_url(session_id) + "/stream",
                               headers={"Last-Event-ID": "1"}), 404)
    assert_http_error(api.call("GET", events_url(session_id) + "?wait=1"), 404)
    assert_http_error(api.call("POST", f"{session_url(session_id)}/stream-tokens"), 404)


def test_gone_within_the_heartbeat_of_a_delete_through_the_other_worker_then_404(api):
    session_id = api.new_session()["id"]
    api.append(session_id, "one")
    streams = streams_on_both_workers(api, session_id)
    for stream in streams.values():
        assert len(stream.read_events(1)) == 1
        assert stream.events_until_keep_alive(HEARTBEAT + 3) == []  # (see the end's test)
    with api.through(min(streams)) as http:
        api.call("DELETE", session_url(session_id), http=http, expect=204)
    deleted_at = time.monotonic()
    for stream in streams.values():
        block = gone_block(stream, HEARTBEAT + 5)
        assert block["at"] - deleted_at <= HEARTBEAT + SLACK
    assert_gone_for_every_request(api, session_id)


@pytest.fixture(scope="module")
def expiring(tmp_path_factory):
    """A server whose sessions live 3 seconds."""
    with start_gunicorn(tmp_path_factory.mktemp("expiring"), workers=2, forbid_traceback=True,
                        SESSION_TTL=3, **SETTINGS) as server:
        yield Api(server)


def test_gone_within_the_heartbeat_of_expiry_then_404(expiring):
    api = expiring
    session = api.new_session()
    api.append(session["id"], "one")
    streams = streams_on_both_workers(api, session["id"])
    expires_at = epoch(session["expiresAt"])
    for stream in streams.values():
        assert len(stream.read_events(1)) == 1
    for stream in streams.values():
        block = gone_block(stream, 10)
        # Not before expiresAt (the clock's millisecond is rounded down), and within the
        # heartbeat of it.
        assert expires_at - 0.01 <= wall(block["at"]) <= expires_at + HEARTBEAT + SLACK
        assert ": keep-alive" in stream.lines  # it was quiet until then
    assert_gone_for_every_request(api, session["id"])


# --- a quiet stream, a long one ------------------------------------------------------------

def test_keep_alive_comments_at_least_every_heartbeat_while_quiet(api):
    session_id = api.new_session()["id"]
    with api.stream(session_id) as stream:
        blocks = [stream.next_block(HEARTBEAT + 5)]
        while len(blocks) < 4:
            blocks.append(stream.next_block(HEARTBEAT + 5))
            assert blocks[-1] is not None
        assert "retry" in blocks[0]
        assert all(block == {"comments": ["keep-alive"], "data": None, "at": block["at"]}
                   for block in blocks[1:]), blocks
        times = [stream.opened_at] + [block["at"] for block in blocks[1:]]
        gaps = [later - earlier for earlier, later in zip(times, times[1:])]
        assert max(gaps) <= HEARTBEAT + SLACK, gaps
        # An event resets the heartbeat; the next keep-alive comes one heartbeat after it.
        event = api.append(session_id, "one")
        assert stream.read_events(1, 5) == [event]
        sent = time.monotonic()
        assert stream.events_until_keep_alive(HEARTBEAT + 5) == []
        assert time.monotonic() - sent <= HEARTBEAT + SLACK


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """A server whose streams close after 1 second."""
    with start_gunicorn(tmp_path_factory.mktemp("short"), workers=2, forbid_traceback=True,
                        STREAM_HEARTBEAT_SECONDS=HEARTBEAT, STREAM_MAX_SECONDS=1) as server:
        yield Api(server)


def test_the_stream_closes_after_max_seconds_and_last_event_id_resumes_losing_nothing(short):
    api = short
    session_id = api.new_session()["id"]
    first = api.append(session_id, "one")
    with api.stream(session_id) as stream:
        assert stream.read_events(1) == [first]
        second = api.append(session_id, "two")
        assert stream.read_events(1, 5) == [second]
        assert [b for b in stream.read_to_close(5) if b["data"] is not None] == []
        assert 1 - 0.05 <= stream.closed_at - stream.opened_at <= 1 + SLACK
    # Appended while the client was away: the reconnection gets exactly those.
    missed = [api.append(session_id, f"missed-{n}") for n in range(3)]
    with api.stream(session_id, headers={"Last-Event-ID": str(second["sequence"])}) as again:
        assert [json.loads(b["data"]) for b in again.read_to_close(5)
                if b["data"] is not None] == missed


# --- STREAM_MAX ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """A server whose workers hold 2 streams each."""
    with start_gunicorn(tmp_path_factory.mktemp("crowded"), workers=2, forbid_traceback=True,
                        STREAM_MAX=2, STREAM_HEARTBEAT_SECONDS=HEARTBEAT,
                        STREAM_MAX_SECONDS=30) as server:
        yield Api(server)


def test_past_stream_max_per_worker_503_while_ordinary_requests_answer_promptly(crowded):
    api = crowded
    session_id = api.new_session()["id"]
    # A HEAD of the stream answers at once and holds no slot (the rest counts them all).
    for _ in range(6):
        head = api.call("HEAD", events_url(session_id) + "/stream")
        assert head.status_code == 200 and head.content == b""
    held, refused = {pid: [] for pid in api.workers()}, set()
    try:
        for _ in range(80):
            stream = api.stream(session_id)
            pid = api.pid(stream)
            if stream.status == 200:
                assert len(held[pid]) < 2, f"worker {pid} opened a third stream"
                held[pid].append(stream)
            else:
                # Refused only by a worker that holds STREAM_MAX streams already.
                assert len(held[pid]) == 2, (pid, {p: len(s) for p, s in held.items()})
                assert stream.status == 503, stream.body
                assert stream.headers["Content-Type"].startswith("application/json")
                assert stream.headers["Retry-After"].isdigit()
                assert stream.json()["error"]
                assert "X-Request-Id" in stream.headers
                refused.add(pid)
            if len(refused) == 2:
                break
        assert refused == set(held), "both workers should have refused a stream"
        # Every worker's streams are taken; ordinary requests are served at once.
        for pid in held:
            with api.through(pid) as http:
                for method, path, body in (("GET", session_url(session_id), None),
                                           ("POST", events_url(session_id), {"type": "info"}),
                                           ("GET", events_url(session_id) + "?after=99&wait=5",
                                            None)):
                    started = time.monotonic()
                    answer = api.call(method, path, http=http, json=body)
                    assert answer.status_code in (200, 201), answer.text
                    assert api.pid(answer) == pid
                    # (a long poll past STREAM_MAX answers at once rather than wait)
                    assert time.monotonic() - started < 2, (method, path)
        for streams in held.values():
            for stream in streams:
                assert len(stream.read_events(2, 5)) == 2  # the appends above, live
        # A client that goes away gives its slot back (at the stream's next write).
        pid = next(iter(held))
        held[pid].pop().close()

        def reopened():
            stream = api.stream(session_id, after="99")
            if stream.status == 200 and api.pid(stream) == pid:
                held[pid].append(stream)
                return True
            stream.close()
            return False
        wait_until(reopened, 3 * HEARTBEAT + 5, "a slot given back")
    finally:
        for streams in held.values():
            for stream in streams:
                stream.close()


@pytest.fixture(scope="module")
def patient(tmp_path_factory):
    """One worker that holds one stream, whose quiet streams write only every 30 s."""
    with start_gunicorn(tmp_path_factory.mktemp("patient"), workers=1, forbid_traceback=True,
                        STREAM_MAX=1, STREAM_HEARTBEAT_SECONDS=30) as server:
        yield Api(server)


def test_a_client_that_hangs_up_frees_its_slot_at_once_not_at_the_next_write(patient):
    """The watcher watches streams' sockets: a stream waiting between events ends when its
    client hangs up, long before its next keep-alive would have found out."""
    session_id = patient.new_session()["id"]
    first = patient.stream(session_id)
    assert first.status == 200
    crowded = patient.stream(session_id)
    assert crowded.status == 503
    crowded.close()
    hung_up = time.monotonic()
    first.close()

    def reopened():
        stream = patient.stream(session_id)
        if stream.status == 200:
            stream.close()
            return True
        stream.close()
        return False
    wait_until(reopened, 5, "the slot of the stream whose client hung up")
    assert time.monotonic() - hung_up < 5  # the next keep-alive was 30 s away


# --- the long poll: `wait` ----------------------------------------------------------------

def test_wait_answers_as_soon_as_the_other_worker_appends(api):
    session_id = api.new_session()["id"]
    first = api.append(session_id, "one")
    waiter, appender = sorted(api.workers())
    with api.through(waiter) as http, ThreadPoolExecutor(1) as pool:
        started = time.monotonic()
        answer = pool.submit(api.call, "GET", events_url(session_id) + "?after=1&wait=20",
                             http=http)
        # Nothing outside the server shows that the request is waiting yet: give it half a
        # second to get there, and check it has not answered meanwhile.
        time.sleep(0.5)
        assert not answer.done(), answer.result().text
        appended = api.append_via(appender, session_id, "two")
        appended_at = time.monotonic()
        response = answer.result(TIMEOUT)
        answered_at = time.monotonic()
    assert response.status_code == 200, response.text
    assert api.pid(response) == waiter
    assert answered_at - appended_at < 1
    assert answered_at - started < 5  # far from the 20 s asked
    assert response.json() == {"data": [appended], "pagination": {
        "limit": 100, "hasMore": False, "nextCursor": appended["id"]}}
    # With events there already, it answers at once.
    started = time.monotonic()
    ready = api.call("GET", events_url(session_id) + f"?after={first['id']}&wait=20",
                     expect=200)
    assert time.monotonic() - started < 1
    assert ready.json()["data"] == [appended]


def test_wait_times_out_with_an_empty_page_whose_cursor_is_the_after_given(api):
    session_id = api.new_session()["id"]
    empty = api.new_session()["id"]
    last = [api.append(session_id, str(n)) for n in range(2)][-1]
    cases = [(session_id, f"&after={last['id']}", last["id"]),
             (session_id, "&after=2", "2"),
             (session_id, "&after=002", "002"),
             (session_id, "&after=50", "50"),
             (empty, "", None),
             (empty, "&after=0", "0")]

    def timed(case):
        started = time.monotonic()
        answer = api.call("GET", events_url(case[0]) + f"?wait=1{case[1]}", expect=200)
        return answer.json(), time.monotonic() - started

    with ThreadPoolExecutor(len(cases)) as pool:
        for (_, query, cursor), (page, elapsed) in zip(cases, pool.map(timed, cases)):
            assert page == {"data": [], "pagination": {
                "limit": 100, "hasMore": False, "nextCursor": cursor}}, query
            assert 1 - 0.05 <= elapsed <= 1 + 2 * SLACK, (query, elapsed)
    # Without wait, the same empty page's cursor is the same.
    assert api.call("GET", events_url(session_id) + "?after=002", expect=200).json()[
        "pagination"]["nextCursor"] == "002"


def test_wait_out_of_range_answers_400(api):
    session_id = api.new_session()["id"]
    for wait, code in (("31", "OUT_OF_RANGE"), ("-1", "OUT_OF_RANGE"), ("x", "INVALID_TYPE"),
                       ("1000000", "OUT_OF_RANGE")):
        started = time.monotonic()
        answer = api.call("GET", events_url(session_id) + f"?wait={wait}")
        assert_http_error(answer, 400, code, "wait")
        assert time.monotonic() - started < 1
    for wait in ("0", "30"):  # the bounds themselves are fine (30 answers at once here)
        api.append(session_id, wait)
        assert api.call("GET", events_url(session_id) + f"?wait={wait}",
                        expect=200).json()["data"]


# --- gensessions.client.follow ------------------------------------------------------------

class Appender:
    """Appends numbered events in a thread until stopped, each once however the server
    restarts: a failed try is retried with the same Idempotency-Key."""

    def __init__(self, api, session_id, pause=0.02):
        self.api, self.session_id, self.pause = api, session_id, pause
        self.acknowledged = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.error = None

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()
        assert self.error is None, self.error

    def run(self):
        try:
            n = 0
            while not self.stopped.is_set():
                self.acknowledged.append(self.append_once(f"appended-{n}"))
                n += 1
                self.stopped.wait(self.pause)
        except Exception as error:  # reported by __exit__
            self.error = error

    def append_once(self, message):
        key = f"append-{self.session_id}-{message}"
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                answer = self.api.call("POST", events_url(self.session_id),
                                       headers={"Idempotency-Key": key},
                                       json={"type": "progress", "message": message})
                if answer.status_code == 201:
                    return answer.json()
                assert answer.status_code in (409, 503), answer.text  # still running
            except requests.ConnectionError:
                pass  # a worker stopping under us: try again
            assert time.monotonic() < deadline, f"could not append {message}"
            time.sleep(0.05)


class Following:
    """gensessions.client.follow run in a thread: `events` as they come."""

    def __init__(self, api, session_id, **options):
        self.stream = follow(api.url, session_id, api.key, timeout=TIMEOUT, **options)
        self.events, self.error = [], None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            for event in self.stream:
                self.events.append(event)
        except Exception as error:
            self.error = error

    def finish(self, seconds=TIMEOUT):
        self.thread.join(seconds)
        assert not self.thread.is_alive(), "follow did not stop"
        assert self.error is None, self.error
        return self.events


def stream_requests(api, session_id):
    return [line for line in access_lines(api.server.log())
            if line["path"] == events_url(session_id) + "/stream"]


def test_follow_gets_every_event_once_in_order_across_forced_reconnections(short):
    api = short
    session_id = api.new_session()["id"]
    api.append(session_id, "before")
    following = Following(api, session_id)
    with Appender(api, session_id, pause=0.03):
        wait_until(lambda: len(stream_requests(api, session_id)) >= 3, 15,
                   "follow to reconnect twice")
    final = api.set_status(session_id, "completed")
    events = following.finish()
    assert events == api.events(session_id)
    assert [e["sequence"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) > 20
    assert (following.stream.ending, following.stream.session) == ("end", final)
    assert {line["status"] for line in stream_requests(api, session_id)} == {200}


def test_follow_stops_at_end_gone_and_204(api):
    done = api.new_session()["id"]
    api.append(done, "one")
    final = api.set_status(done, "failed")
    stream = follow(api.url, done, api.key)
    assert [e["sequence"] for e in stream] == [1, 2]
    assert (stream.ending, stream.session) == ("end", final)
    stream = follow(api.url, done, api.key, after=2)
    assert (list(stream), stream.ending, stream.session) == ([], "no content", None)

    deleted = api.new_session()["id"]
    api.append(deleted, "one")
    following = Following(api, deleted)
    wait_until(lambda: following.events, 10, "the first event")
    api.call("DELETE", session_url(deleted), expect=204)
    assert [e["sequence"] for e in following.finish(10)] == [1]
    assert following.stream.ending == "gone"


def test_a_worker_restart_loses_no_event_for_a_follower(tmp_path):
    """HUP (every worker replaced), then SIGTERM to the worker serving the follower: it
    reconnects with Last-Event-ID each time and gets every event once, in order."""
    with start_gunicorn(tmp_path, workers=2, forbid_traceback=True,
                        STREAM_HEARTBEAT_SECONDS=HEARTBEAT, STREAM_MAX_SECONDS=60) as server:
        api = Api(server)
        session_id = api.new_session()["id"]
        following = Following(api, session_id)
        with Appender(api, session_id) as appender:
            wait_until(lambda: len(following.events) >= 5, 10, "events before the restart")
            before = api.workers()
            os.kill(server.process.pid, signal.SIGHUP)
            wait_until(lambda: len(api.workers() - before) == 2 and len(api.workers()) == 2,
                       20, "two new workers")
            count = len(following.events)
            wait_until(lambda: len(following.events) >= count + 10, 10,
                       "events after the restart")
            # The worker serving the follower's stream now: SIGTERM it alone.
            serving = stream_requests(api, session_id)[-1]["pid"]
            assert serving in api.workers() and len(stream_requests(api, session_id)) >= 2
            os.kill(serving, signal.SIGTERM)
            wait_until(lambda: serving not in api.workers() and len(api.workers()) == 2, 20,
                       "a new worker in place of the one stopped")
            count = len(following.events)
            wait_until(lambda: len(following.events) >= count + 10, 10,
                       "events after the worker's stop")
        final = api.set_status(session_id, "completed")
        events = following.finish()
        logged = api.events(session_id)
        assert events == logged
        assert [e["sequence"] for e in events] == list(range(1, len(logged) + 1))
        assert [e["id"] for e in events[:-1]] == [e["id"] for e in appender.acknowledged]
        assert following.stream.session == final
        assert len(stream_requests(api, session_id)) >= 3


def test_sigterm_ends_open_streams_and_long_polls_at_once_and_the_server_exits_0(tmp_path):
    """Without the streams and long polls ending at SIGTERM, the workers would wait up to
    graceful_timeout (20 s) for them; the clients close their end once the server has (as
    EventSource does)."""
    with start_gunicorn(tmp_path, workers=2, forbid_traceback=True,
                        STREAM_HEARTBEAT_SECONDS=10, STREAM_MAX_SECONDS=60) as server:
        api = Api(server)
        session_id = api.new_session()["id"]
        streams = list(streams_on_both_workers(api, session_id).values())
        streams += [api.stream(session_id) for _ in range(4)]
        for stream in streams:
            assert stream.status == 200 and stream.next_block(5)["retry"]
        pinned = [api.through(pid) for pid in sorted(api.workers())]
        with ThreadPoolExecutor(2) as pool:
            polls = [pool.submit(api.call, "GET", events_url(session_id) + "?wait=25",
                                 http=http) for http in pinned]
            # Nothing outside the server shows that the requests wait: give them half a
            # second to get there, and check they have not answered meanwhile.
            time.sleep(0.5)
            assert not any(poll.done() for poll in polls)
            stopping = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            for stream in streams:
                assert stream.read_to_close(5) == []
                assert stream.closed_at - stopping < 1, "a stream held on after SIGTERM"
                stream.close()
            for poll in polls:
                answer = poll.result(TIMEOUT)
                assert time.monotonic() - stopping < 2, "a long poll held on after SIGTERM"
                assert answer.status_code == 200 and answer.json()["data"] == []
        for http in pinned:
            http.close()
        assert server.process.wait(timeout=25) == 0
        assert time.monotonic() - stopping < 10  # graceful_timeout is 20 s
