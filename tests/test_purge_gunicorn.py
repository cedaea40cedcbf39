"""The scheduled purge under a real gunicorn: it fires, one run per slot in all, never two at
once, the server keeps serving meanwhile; `off` runs none; a bad schedule stops the start."""
import json
import sqlite3
import subprocess
import threading
import time
from contextlib import closing

import pytest
import requests

from helpers import RUN_LINE, SESSIONS, TIMEOUT, bearer, poll
from servers import GunicornServer

EVERY_SECOND = "* * * * * *"
SEEDED = 30
EVENTS_EACH = 3
WINDOW_SECONDS = 4


class PurgeServer(GunicornServer):
    """A gunicorn whose sessions live one second, with the purge on `schedule`; see `launch`."""

    def __init__(self, folder, schedule, workers, **settings):
        super().__init__(folder, workers, PURGE_SCHEDULE=schedule, SESSION_TTL="1", **settings)
        self.created = 0

    def runs(self):
        """The "purge run" log lines, as dicts, oldest first."""
        return sorted((dict(zip(("pid", "purged", "duration_ms", "started_at", "finished_at"),
                                map(int, match.groups())))
                       for match in RUN_LINE.finditer(self.log())),
                      key=lambda run: run["started_at"])

    def idle_runs(self):
        """PurgeState.runs while no purge holds the lock, else None."""
        rows = self.query("SELECT runs, locked_until FROM purge_state")
        return rows[0][0] if rows and rows[0][1] == 0 else None

    def settled_runs(self):
        """(log runs, PurgeState.runs), read while no purge runs and both agree.

        A run deletes, then records itself and frees the lock, then logs its line.
        """
        def agreed():
            before, runs, after = self.idle_runs(), self.runs(), self.idle_runs()
            return (runs, after) if before == after == len(runs) else None
        return poll(agreed, 5, interval=0.05) or (self.runs(), self.purge_state_runs())

    def query(self, sql):
        """Read the server's database directly (read-only)."""
        with closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True,
                                     timeout=10)) as conn:
            return conn.execute(sql).fetchall()

    def counts(self):
        return (self.query("SELECT count(*) FROM session")[0][0],
                self.query("SELECT count(*) FROM event")[0][0])

    def purge_state_runs(self):
        """PurgeState.runs, or None while no purge has ever touched the lock row."""
        rows = self.query("SELECT runs FROM purge_state")
        return rows[0][0] if rows else None

    def new_headers(self):
        """The Authorization header of a new key (LiveServer's `headers` is its own key's)."""
        return bearer(self.create_key("purger"))

    def seed(self, http, headers, sessions, events):
        """Create sessions, each with events at once (they live one second); return ids."""
        ids = []
        for _ in range(sessions):
            response = http.post(self.url + SESSIONS, json={}, headers=headers, timeout=TIMEOUT)
            assert response.status_code == 201, response.text
            self.created += 1
            ids.append(response.json()["id"])
            for n in range(events):
                appended = http.post(f"{self.url}{SESSIONS}/{ids[-1]}/events",
                                     json={"type": "info", "message": str(n)},
                                     headers=headers, timeout=TIMEOUT)
                assert appended.status_code == 201, appended.text
        return ids


@pytest.fixture(scope="module")
def launch(tmp_path_factory):
    """Start gunicorns on demand; stop every one at the end of the module."""
    servers = []

    def start(schedule, workers, wait=True, **settings):
        server = PurgeServer(tmp_path_factory.mktemp("purge-gunicorn"), schedule, workers,
                             **settings)
        servers.append(server)
        return server.start(wait=wait)

    yield start
    for server in servers:
        server.stop()


# --- the schedule fires ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def scheduled(launch):
    return launch(EVERY_SECOND, 3)


@pytest.fixture(scope="module")
def fired(scheduled):
    """Seed 30 one-second sessions with 3 events each; poll until the tables are empty."""
    headers = scheduled.new_headers()
    with requests.Session() as http:
        scheduled.seed(http, headers, SEEDED, EVENTS_EACH)
    emptied = poll(lambda: scheduled.counts() == (0, 0), 8, interval=0.05)
    runs, _ = scheduled.settled_runs()
    return headers, emptied, runs


def test_the_schedule_purges_expired_sessions_and_their_events(scheduled, fired):
    _, emptied, _ = fired
    assert emptied, scheduled.counts()
    assert scheduled.counts() == (0, 0)


def test_the_scheduled_runs_purged_each_created_session_once(scheduled, fired):
    _, _, runs = fired
    assert sum(run["purged"] for run in runs) == scheduled.created == SEEDED


def test_purge_status_shows_the_scheduled_runs(scheduled, fired):
    status = json.loads(scheduled.flask("purge-status").stdout)
    assert status["lastTrigger"] == "schedule"
    assert status["runs"] >= 1 and status["lastError"] is None


def test_healthz_shows_the_scheduled_runs(scheduled, fired):
    purge = requests.get(scheduled.url + "/healthz", timeout=TIMEOUT).json()["purge"]
    assert purge["lastTrigger"] == "schedule"
    assert purge["runs"] >= 1 and purge["lastFinishedAt"] is not None


# --- one purge at a time, one per slot, while the server serves ------------------------------

@pytest.fixture(scope="module")
def window(scheduled, fired):
    """Four clients create sessions with events for 4 s while the purge runs every second.

    Returns (window start ms, window end ms, every status code or error seen, the runs once
    the log and PurgeState.runs agree, PurgeState.runs then).
    """
    headers, _, _ = fired
    outcomes, lock = [], threading.Lock()
    begin = time.time_ns() // 1_000_000
    deadline = time.monotonic() + WINDOW_SECONDS

    def client():
        seen = []
        with requests.Session() as http:
            while time.monotonic() < deadline:
                try:
                    created = http.post(scheduled.url + SESSIONS, json={}, headers=headers,
                                        timeout=TIMEOUT)
                    seen.append(created.status_code)
                    if created.status_code == 201:
                        seen.append(http.post(
                            f"{scheduled.url}{SESSIONS}/{created.json()['id']}/events",
                            json={"type": "info"}, headers=headers,
                            timeout=TIMEOUT).status_code)
                    seen.append(http.get(scheduled.url + SESSIONS, headers=headers,
                                         timeout=TIMEOUT).status_code)
                except requests.RequestException as error:
                    seen.append(repr(error))
        with lock:
            outcomes.extend(seen)

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    end = time.time_ns() // 1_000_000
    runs, stored = scheduled.settled_runs()
    return begin, end, outcomes, runs, stored


def in_window(window):
    begin, end, _, runs, _ = window
    return [run for run in runs if begin <= run["started_at"] <= end]


def test_purges_never_overlap(window):
    runs = window[3]
    assert len(runs) >= WINDOW_SECONDS
    for earlier, later in zip(runs, runs[1:]):
        assert earlier["finished_at"] <= later["started_at"], (earlier, later)


def test_each_slot_runs_once_and_none_is_missed(window):
    seconds = [round(run["started_at"] / 1000) for run in in_window(window)]
    assert len(seconds) >= WINDOW_SECONDS - 1
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))


def test_purge_state_counts_every_logged_run(window):
    _, _, _, runs, stored = window
    assert stored == len(runs)


def test_the_server_keeps_serving_while_purging(window):
    outcomes = window[2]
    assert len(outcomes) > 100
    assert [o for o in outcomes if not (isinstance(o, int) and 200 <= o < 300)] == []
    assert sum(run["purged"] for run in in_window(window)) > 0


def test_no_scheduled_purge_failed(scheduled, window):
    log = scheduled.log()
    assert "purge failed" not in log and "Traceback" not in log
    assert "database is locked" not in log


@pytest.fixture(scope="module")
def long_purge(launch):
    """A purge slower than a slot (one session per batch, 400 ms between batches), watched
    through /healthz and the session list until it is over.

    Returns (the runs, once settled; every (status, purge running?) seen while watching).
    """
    server = launch(EVERY_SECOND, 3, PURGE_BATCH_SIZE="1", PURGE_BATCH_PAUSE_MS="400")
    headers = server.new_headers()
    seen = []
    with requests.Session() as http:
        server.seed(http, headers, 6, 1)
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            health = http.get(server.url + "/healthz", timeout=TIMEOUT)
            listed = http.get(server.url + SESSIONS, headers=headers, timeout=TIMEOUT)
            seen.append((health.status_code, health.json()["purge"]["running"]))
            seen.append((listed.status_code, None))
            if server.counts() == (0, 0) and server.idle_runs() is not None:
                break
            time.sleep(0.05)
    runs, _ = server.settled_runs()
    return runs, seen


def test_a_purge_longer_than_a_slot_keeps_the_next_slots_out(long_purge):
    runs, _ = long_purge
    assert sum(run["purged"] for run in runs) == 6
    assert max(run["duration_ms"] for run in runs) >= 1000, runs
    for earlier, later in zip(runs, runs[1:]):
        assert earlier["finished_at"] <= later["started_at"], (earlier, later)


def test_the_server_answers_and_reports_a_running_purge_meanwhile(long_purge):
    _, seen = long_purge
    assert [status for status, _ in seen if status != 200] == []
    assert any(running for _, running in seen)


# --- PURGE_SCHEDULE=off ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def unscheduled(launch):
    """Two workers with the purge off; one-second sessions seeded, then 3 s of slots pass."""
    server = launch("off", 2)
    with requests.Session() as http:
        server.seed(http, server.new_headers(), 5, 2)
    time.sleep(3)
    return server


def test_schedule_off_leaves_expired_rows_in_the_database(unscheduled):
    assert unscheduled.counts() == (5, 10)


def test_schedule_off_logs_no_purge_run(unscheduled):
    assert unscheduled.runs() == []
    assert "purge run" not in unscheduled.log()


def test_schedule_off_records_no_purge(unscheduled):
    assert unscheduled.purge_state_runs() in (None, 0)


# --- a bad schedule, a clean stop --------------------------------------------------------------

def test_a_bad_schedule_stops_gunicorn_with_a_clear_message(launch):
    server = launch("every 5 minutes", 2, wait=False)
    try:
        returncode = server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("gunicorn still running 20 s after starting with a bad PURGE_SCHEDULE")
    assert returncode != 0
    log = server.log()
    assert "PURGE_SCHEDULE='every 5 minutes'" in log
    assert "not a valid cron expression" in log


@pytest.fixture(scope="module")
def stopped_mid_purge(launch):
    """SIGTERM a gunicorn in the middle of a purge of 20 sessions slowed to 400 ms each.

    Returns (the server, whether /healthz showed the purge running, stopped within 10 s?,
    seconds the stop took).
    """
    server = launch(EVERY_SECOND, 2, PURGE_BATCH_SIZE="1", PURGE_BATCH_PAUSE_MS="400")
    with requests.Session() as http:
        server.seed(http, server.new_headers(), 20, 0)

        def running():
            # Running, and past its first batch: the sessions live one second, so a run
            # that starts before they expire finds nothing and ends in a few ms; seen then,
            # the stop would land between runs rather than in the middle of one.
            return (http.get(server.url + "/healthz", timeout=TIMEOUT).json()["purge"]["running"]
                    and server.counts()[0] < 20)

        seen_running = poll(running, 5, interval=0.05)
    started = time.monotonic()
    server.stop(seconds=10)
    return server, seen_running, not server.killed, time.monotonic() - started


def test_sigterm_mid_purge_stops_gunicorn_with_code_0_within_10_s(stopped_mid_purge):
    server, seen_running, stopped, seconds = stopped_mid_purge
    assert seen_running, "the purge never showed as running"
    assert stopped and seconds < 10, seconds
    assert server.process.returncode == 0, server.log()[-2000:]
    assert "Traceback" not in server.log()


def test_sigterm_mid_purge_ends_it_after_a_batch_and_frees_the_lock(stopped_mid_purge):
    server = stopped_mid_purge[0]
    [(locked_until, last_error)] = server.query(
        "SELECT locked_until, last_error FROM purge_state")
    assert (locked_until, last_error) == (0, None)
    left, _ = server.counts()
    assert 0 < left < 20
    assert left + sum(run["purged"] for run in server.runs()) == 20
