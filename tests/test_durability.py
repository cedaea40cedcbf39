"""Crash durability: kill -9 a busy 4-worker gunicorn, restart it, and find every acked write.

Client threads create sessions and append events as fast as they can; every
201 they read in full is an acknowledged write. At an arbitrary moment (while
requests are in flight) the whole server process group gets SIGKILL. Then the
database file must pass `PRAGMA integrity_check`, and a fresh gunicorn on the
same file must serve every acknowledged session and event, with the sequence
the client was told, and per-session sequences 1..N without a gap. The cycle
runs CYCLES times, the acknowledged writes accumulating (later cycles also
append to the sessions of earlier ones, so the counters must survive a crash).

A process kill leaves the OS page cache intact, so this cannot tell
synchronous=FULL from OFF (only a power loss could); it catches torn or lost
commits: a journal that does not survive the process (journal_mode=MEMORY or
OFF), acknowledgements sent before the commit, counters that go wrong after a
crash. DURABILITY_SEED=<n> replays a run's timing choices.
"""
import contextlib
import os
import random
import signal
import sqlite3
import threading
import time

import requests

from helpers import SESSIONS, all_events
from servers import GunicornServer

CLIENTS = 4
CYCLES = 3
# Seconds a request may take: short, for a server that is killed under the clients.
REQUEST_SECONDS = 10


def kill_group(process):
    """SIGKILL gunicorn's whole process group (arbiter and workers) and reap the arbiter."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    # The workers are the arbiter's children; once it is gone they get no further chance.
    deadline = time.monotonic() + 10
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.02)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


class Acks:
    """What the clients were told: sessions created, and events with their sequence."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sessions = {}  # session id -> {event id: sequence}
        self.problems = []  # non-201 answers, or errors before the kill
        self.interrupted = 0  # clients whose request the kill cut off

    def session(self, session_id):
        with self.lock:
            self.sessions[session_id] = {}

    def event(self, session_id, event_id, sequence):
        with self.lock:
            self.sessions[session_id][event_id] = sequence

    def cut_off(self):
        with self.lock:
            self.interrupted += 1

    def problem(self, item):
        with self.lock:
            self.problems.append(item)


def client(url, headers, acks, own, killed, stop, seed):
    """Create sessions and append events until the server dies; record every 201."""
    rng = random.Random(seed)
    try:
        with requests.Session() as http:
            while not stop.is_set():
                if not own or rng.random() < 0.3:
                    response = http.post(url + SESSIONS, json={"prd": {"seed": seed}},
                                         headers=headers, timeout=REQUEST_SECONDS)
                    if response.status_code != 201:
                        acks.problem(("create", response.status_code, response.text))
                        return
                    session_id = response.json()["id"]
                    acks.session(session_id)
                    own.append(session_id)
                    continue
                target = rng.choice(own)
                response = http.post(f"{url}{SESSIONS}/{target}/events",
                                     json={"type": "progress", "message": f"{seed}",
                                           "payload": {"n": rng.randrange(10 ** 6)}},
                                     headers=headers, timeout=REQUEST_SECONDS)
                if response.status_code != 201:
                    acks.problem(("append", target, response.status_code, response.text))
                    return
                event = response.json()
                assert event["sessionId"] == target
                acks.event(target, event["id"], event["sequence"])
    except requests.RequestException as error:
        if killed.is_set():
            acks.cut_off()
        else:
            acks.problem(("error before the kill", repr(error)))
    except Exception as error:  # reported to the test, which fails
        acks.problem(("client crashed", repr(error)))


def integrity(path):
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return (connection.execute("PRAGMA integrity_check").fetchall(),
                connection.execute("PRAGMA foreign_key_check").fetchall())


def listed_ids(http, url):
    ids, cursor = [], None
    while True:
        query = "?limit=100" + (f"&cursor={cursor}" if cursor else "")
        response = http.get(url + SESSIONS + query, timeout=REQUEST_SECONDS)
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [session["id"] for session in page["data"]]
        cursor = page["pagination"]["nextCursor"]
        if cursor is None:
            return ids


def missing_writes(url, headers, acked):
    """Return every way the served data falls short of `acked` (empty when all is well)."""
    problems = []
    with requests.Session() as http:
        http.headers.update(headers)
        listed = listed_ids(http, url)
        if len(listed) != len(set(listed)):
            problems.append("the list repeats a session")
        for session_id in sorted(set(listed) | set(acked)):
            response = http.get(f"{url}{SESSIONS}/{session_id}", timeout=REQUEST_SECONDS)
            if response.status_code != 200:
                problems.append((session_id, "GET", response.status_code, response.text[:200]))
                continue
            events = response.json()["events"]
            sequences = [event["sequence"] for event in events]
            if sequences != list(range(1, len(events) + 1)):
                problems.append((session_id, "sequences", sequences))
            if events != all_events(http, url, session_id, timeout=REQUEST_SECONDS):
                problems.append((session_id, "GET and the events endpoint disagree"))
            stored = {event["id"]: event["sequence"] for event in events}
            for event_id, sequence in acked.get(session_id, {}).items():
                if stored.get(event_id) != sequence:
                    problems.append((session_id, event_id, "acked", sequence,
                                     "stored", stored.get(event_id)))
        unlisted = set(acked) - set(listed)
        if unlisted:
            problems.append(("acked sessions missing from the list", sorted(unlisted)))
    return problems


def test_acknowledged_writes_survive_kill_9_of_the_whole_server(tmp_path):
    database = str(tmp_path / "server.db")
    headers = {"Authorization": f"Bearer {GunicornServer(tmp_path).create_key('durable')}"}
    seed = int(os.environ.get("DURABILITY_SEED", random.randrange(10 ** 6)))
    rng = random.Random(seed)
    acks = Acks()
    owned = [[] for _ in range(CLIENTS)]  # each client's sessions, across cycles
    interrupted = []  # clients cut off mid-request, counted after each kill
    server = None
    try:
        for cycle in range(CYCLES):
            server = GunicornServer(tmp_path, workers=4).start()
            url = server.url
            if cycle:  # what the previous crash left must be whole before new writes
                assert missing_writes(url, headers, acks.sessions) == [], (seed, cycle)
            killed, stop = threading.Event(), threading.Event()
            threads = [threading.Thread(target=client, args=(
                url, headers, acks, owned[index], killed, stop, seed * 100 + cycle * 10 + index))
                for index in range(CLIENTS)]
            for thread in threads:
                thread.start()
            time.sleep(rng.uniform(1.5, 2.0))
            killed.set()
            kill_group(server.process)
            stop.set()
            for thread in threads:
                thread.join(timeout=REQUEST_SECONDS + 5)
            assert not any(thread.is_alive() for thread in threads)
            assert acks.problems == [], (seed, cycle)
            interrupted.append(acks.interrupted)
            assert integrity(database) == ([("ok",)], []), (seed, cycle)
            assert "Traceback" not in server.log(), (seed, cycle)

        server = GunicornServer(tmp_path, workers=4).start()
        url = server.url
        total_events = sum(len(events) for events in acks.sessions.values())
        # The kills landed while requests were in flight.
        assert interrupted[0] >= 1 and all(b > a for a, b in zip(interrupted, interrupted[1:]))
        # Enough traffic that the kills landed among many writes.
        assert len(acks.sessions) >= 10 and total_events >= 50, (len(acks.sessions), total_events)
        assert missing_writes(url, headers, acks.sessions) == [], seed
        # The check can fail: an acked event the server does not have is reported.
        some_session = next(iter(acks.sessions))
        invented = {some_session: {"evt_never_written_0000000000": 1}}
        assert missing_writes(url, headers, invented) != []
        # Counters survived every crash: the next append continues each session's sequence.
        with requests.Session() as http:
            http.headers.update(headers)
            for session_id in list(acks.sessions)[:5]:
                before = len(all_events(http, url, session_id, timeout=REQUEST_SECONDS))
                response = http.post(f"{url}{SESSIONS}/{session_id}/events",
                                     json={"type": "info"}, timeout=REQUEST_SECONDS)
                assert response.status_code == 201, response.text
                assert response.json()["sequence"] == before + 1
        assert server.stop() == 0 and not server.killed
        assert integrity(database) == ([("ok",)], [])
        assert "Traceback" not in server.log()
    finally:
        if server is not None and server.process.poll() is None:
            kill_group(server.process)
