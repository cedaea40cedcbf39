"""`gensessions demo` as a person runs it: a process that prints a banner, serves seeded
sessions that move by themselves, opens CORS to localhost only, and cleans up when stopped.
"""
import os
import re
import signal
import sqlite3
import subprocess
import sys

import pytest
import requests

from helpers import KEY_PATTERN, SESSIONS, STATUSES, TIMEOUT, free_port, wait_until

BANNER_SECONDS = 40
STOP_SECONDS = 30


class Demo:
    """`gensessions demo` in a process of its own; stopped (and checked) by the fixture."""

    def __init__(self, tmp_path, *options):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out_path, self.err_path = tmp_path / "demo.out", tmp_path / "demo.err"
        env = {name: value for name, value in os.environ.items()
               if name not in ("DATABASE_URL", "CORS_ORIGINS", "INSTANCE_PATH")}
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gensessions", "demo", "--bind",
                 f"127.0.0.1:{self.port}", *options],
                cwd=tmp_path, env=env, stdout=out, stderr=err, start_new_session=True)
        self.banner = wait_until(self.printed_banner, BANNER_SECONDS, "the demo's banner")
        self.key = re.search(r"Demo key:\s+(\S+)", self.banner)[1]
        self.headers = {"Authorization": f"Bearer {self.key}"}

    def printed_banner(self):
        if self.process.poll() is not None:
            pytest.fail(f"the demo exited with {self.process.returncode}:\n"
                        + self.err_path.read_text()[-2000:])
        text = self.out_path.read_text()
        return text if "Ctrl-C" in text else None

    def sessions(self, **query):
        answer = requests.get(self.url + SESSIONS, params={"limit": 100, **query},
                              headers=self.headers, timeout=TIMEOUT)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def stop(self, signum=signal.SIGINT):
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            pytest.fail(f"the demo did not stop within {STOP_SECONDS} s")


@pytest.fixture
def demo(tmp_path):
    running = Demo(tmp_path, "--pace", "0.1")
    yield running
    running.stop()


def demo_folders():
    import tempfile
    return {name for name in os.listdir(tempfile.gettempdir())
            if name.startswith("gensessions-demo-")}


def test_the_banner_gives_a_demo_key_and_the_viewer_url(demo):
    assert "DEMO" in demo.banner and "throwaway" in demo.banner
    assert KEY_PATTERN.match(demo.key)
    assert f"{demo.url}/ui/#key={demo.key}" in demo.banner
    viewer = requests.get(f"{demo.url}/ui/", timeout=TIMEOUT)
    assert viewer.status_code == 200 and "text/html" in viewer.headers["Content-Type"]


def test_it_is_seeded_with_sessions_in_every_status_with_titles_and_events(demo):
    page = demo.sessions()
    assert page["pagination"]["total"] >= 12
    assert {session["status"] for session in page["data"]} == set(STATUSES)
    for session in page["data"]:
        assert session["prd"]["title"]
    completed = next(s for s in page["data"] if s["status"] == "completed")
    detail = requests.get(f"{demo.url}{SESSIONS}/{completed['id']}", headers=demo.headers,
                          timeout=TIMEOUT).json()
    assert detail["assemblyState"]["progress"] == 100
    assert detail["productObjectHash"] and detail["plan"]["components"]
    types = [event["type"] for event in detail["events"]]
    assert types.count("status.changed") == 4 and "progress" in types
    assert [event["sequence"] for event in detail["events"]] == list(range(1, len(types) + 1))


def test_the_simulator_moves_sessions_through_the_lifecycle(demo):
    def snapshot():
        return {s["id"]: (s["status"], s["updatedAt"]) for s in demo.sessions()["data"]}
    before = snapshot()

    def moved():
        now = snapshot()
        changed = [sid for sid, state in now.items() if before.get(sid) != state]
        return len(now) > len(before) or len(changed) >= 3
    wait_until(moved, 20, "the simulator to create or move sessions")
    # Every move went through the rules: statuses changed only with their event.
    for session in demo.sessions(status="completed")["data"][:3]:
        events = requests.get(f"{demo.url}{SESSIONS}/{session['id']}/events",
                              params={"limit": 1000}, headers=demo.headers,
                              timeout=TIMEOUT).json()["data"]
        moves = [e["payload"]["to"] for e in events if e["type"] == "status.changed"]
        assert moves[-1] == "completed"


@pytest.mark.parametrize("origin", ["http://localhost:5173", "http://127.0.0.1:3000",
                                    "http://localhost:8080"])
def test_cors_is_open_to_local_front_ends(demo, origin):
    answer = requests.options(demo.url + SESSIONS, timeout=TIMEOUT, headers={
        "Origin": origin, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert answer.headers.get("Access-Control-Allow-Origin") == origin
    got = requests.get(demo.url + SESSIONS, headers={**demo.headers, "Origin": origin},
                       timeout=TIMEOUT)
    assert got.headers.get("Access-Control-Allow-Origin") == origin


@pytest.mark.parametrize("origin", ["https://evil.example.com", "http://localhost.evil.com:80",
                                    "http://192.168.1.10:3000", "https://localhost:3000"])
def test_cors_stays_closed_to_other_origins(demo, origin):
    got = requests.get(demo.url + SESSIONS, headers={**demo.headers, "Origin": origin},
                       timeout=TIMEOUT)
    assert got.status_code == 200
    assert "Access-Control-Allow-Origin" not in got.headers


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stopping_ends_everything_and_deletes_the_throwaway_data(tmp_path, signum):
    before = demo_folders()
    demo = Demo(tmp_path, "--pace", "0.1")
    created = demo_folders() - before
    assert len(created) == 1
    assert demo.stop(signum) == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(demo.url + "/healthz", timeout=2)
    assert not (demo_folders() & created)
    assert "Demo stopped" in demo.err_path.read_text()
    # Its gunicorn went with it: nothing listens on the port and no process is left.
    leftover = subprocess.run(["pgrep", "-f", f"127.0.0.1:{demo.port}"], capture_output=True)
    assert leftover.stdout == b""


def test_db_keeps_the_data_across_runs(tmp_path):
    path = tmp_path / "kept.db"
    first = Demo(tmp_path, "--pace", "0.1", "--db", str(path))
    ids = {s["id"] for s in first.sessions()["data"]}
    assert first.stop() == 0
    assert path.is_file()
    with sqlite3.connect(path) as stored:
        assert stored.execute("SELECT count(*) FROM session").fetchone()[0] >= len(ids)
    second = Demo(tmp_path, "--pace", "0.1", "--db", str(path))
    try:
        assert "as the --db file left it" in second.banner
        assert ids <= {s["id"] for s in second.sessions()["data"]}
    finally:
        assert second.stop() == 0


def test_serve_neither_seeds_nor_opens_cors(tmp_path):
    from servers import start_gunicorn
    with start_gunicorn(tmp_path, workers=1) as server:
        key = server.create_key("user_1")
        answer = requests.get(server.url + SESSIONS, headers={
            "Authorization": f"Bearer {key}", "Origin": "http://localhost:5173"},
            timeout=TIMEOUT)
        assert answer.json()["pagination"]["total"] == 0
        assert "Access-Control-Allow-Origin" not in answer.headers
        with sqlite3.connect(server.db_path) as stored:
            assert stored.execute("SELECT count(*) FROM session").fetchone()[0] == 0
        assert requests.get(server.url + "/ui/", timeout=TIMEOUT).status_code == 200
