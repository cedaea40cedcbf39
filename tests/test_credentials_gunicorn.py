"""Credentials against a real gunicorn (3 workers, one SQLite file), driven over HTTP.

Covers: a key revoked with `flask revoke-key`, and a key created with `--expires-in`, is
refused (401) by every one of the 3 workers, each of which served it (200) before, and no
request made after the revocation (or after the expiry) is served; a `read` key gets 403 on
every write and 200 on every read; the raw key and its secret reach neither the server's log
nor the SQLite files nor a response, while its public id is logged; error answers never carry
a traceback or a file path.

The worker that answered a request is found through the access log: each request carries a
unique X-Request-Id, and the log line with that id names the worker's `pid`.
"""
import json
import re
import secrets
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import pytest
import requests

from helpers import (KEY_PATTERN, SESSIONS, TIMEOUT, bearer, poll, public_id, secret_of,
                     wait_until)
from servers import start_gunicorn

WORKERS = 3
# Requests per round when spreading a key over the workers, and the bound on all rounds.
ROUND = 24
MAX_REQUESTS = 2000
# The lifetime of the expiring key: long enough to reach every worker before it ends.
EXPIRES_SECONDS = 10
BOOTED = re.compile(r"Booting worker with pid: (\d+)")
EXPIRES = re.compile(r"expires (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_gunicorn(tmp_path_factory.mktemp("credentials"), workers=WORKERS,
                        forbid_traceback=True) as server:
        yield server


@pytest.fixture(scope="module")
def workers(server):
    """The pids of the server's 3 workers, as gunicorn announced them when booting them."""
    return wait_until(lambda: pids if len(pids := set(BOOTED.findall(server.log()))) == WORKERS
                      else None, 10, f"gunicorn to boot {WORKERS} workers")


def new_key(server, user_id, *options):
    """`flask create-key` on the server's database; return (the key, the command's stderr)."""
    result = server.flask("create-key", "--user-id", user_id, *options)
    key = result.stdout.strip()
    assert KEY_PATTERN.fullmatch(key), result.stdout
    return key, result.stderr


def access_lines(server, start=0):
    """The access log's JSON lines (gunicorn's own lines, and a partial last line, skipped)."""
    lines = []
    for text in server.log(start).splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and "pid" in line:
            lines.append(line)
    return lines


@dataclass
class Answer:
    request_id: str
    status: int
    sent: float       # time.time() when the request was sent
    received: float   # time.time() when its answer had arrived
    line: dict = None  # its access-log line, once found

    @property
    def pid(self):
        return self.line["pid"]


def get_once(url, headers):
    """One GET of the session list on a fresh connection (no requests.Session)."""
    request_id = f"cred-{uuid.uuid4().hex}"
    sent = time.time()
    response = requests.get(url + SESSIONS, headers={**headers, "X-Request-Id": request_id},
                            timeout=TIMEOUT)
    return Answer(request_id, response.status_code, sent, time.time())


def attach_lines(server, answers):
    """Find each answer's access-log line by its request id (waiting for the log to catch up)."""
    def found():
        by_id = {line["request_id"]: line for line in access_lines(server)}
        if all(answer.request_id in by_id for answer in answers):
            return by_id
        return None
    by_id = wait_until(found, 10, "the access-log lines of the requests just made")
    for answer in answers:
        answer.line = by_id[answer.request_id]


def pids_answering(answers, status, credential=None):
    return {answer.pid for answer in answers if answer.status == status
            and (credential is None or answer.line["credential"] == credential)}


def drive(server, headers, done, what):
    """GET in parallel rounds of fresh connections until `done(answers)`; return the answers.

    Fails, naming `what`, when MAX_REQUESTS were not enough.
    """
    answers = []
    with ThreadPoolExecutor(max_workers=12) as pool:
        while len(answers) < MAX_REQUESTS:
            batch = list(pool.map(lambda _: get_once(server.url, headers), range(ROUND)))
            attach_lines(server, batch)
            answers += batch
            if done(answers):
                return answers
    by_status = {}
    for answer in answers:
        by_status.setdefault(answer.status, set()).add(answer.pid)
    pytest.fail(f"{len(answers)} requests did not get {what}; "
                f"worker pids by status: {by_status}")


def check_worker_pids(server, workers):
    """Every access line so far was written by one of the 3 booted workers, and all 3 wrote."""
    logged = {line["pid"] for line in access_lines(server)}
    assert {str(pid) for pid in logged} == workers, (logged, workers)
    assert len(logged) == WORKERS


# --- revocation and expiry, on every worker ---------------------------------------------

def test_revoked_key_is_refused_by_every_worker(server, workers):
    key, _ = new_key(server, "revoked_user")
    credential = f"key:{public_id(key)}"
    before = drive(server, bearer(key),
                   lambda answers: len(pids_answering(answers, 200, credential)) == WORKERS,
                   f"a 200 for {credential} from each of the {WORKERS} workers")
    assert {answer.status for answer in before} == {200}
    check_worker_pids(server, workers)

    server.flask("revoke-key", public_id(key))
    revoked_at = time.time()
    after = drive(server, bearer(key),
                  lambda answers: len(pids_answering(answers, 401)) == WORKERS
                  or any(answer.status != 401 for answer in answers),
                  f"a 401 from each of the {WORKERS} workers")
    served = [(answer.status, answer.pid) for answer in after if answer.status != 401]
    assert served == [], "answered after revoke-key returned"
    assert all(answer.sent >= revoked_at for answer in after)
    assert {str(pid) for pid in pids_answering(after, 401)} == workers
    assert {answer.line["credential"] for answer in after} == {None}
    check_worker_pids(server, workers)


def test_expired_key_is_refused_by_every_worker(server, workers):
    key, stderr = new_key(server, "expiring_user", "--expires-in", f"{EXPIRES_SECONDS}s")
    match = EXPIRES.search(stderr)
    assert match, stderr
    expires_at = datetime.fromisoformat(match.group(1)).timestamp()
    credential = f"key:{public_id(key)}"

    before = drive(server, bearer(key),
                   lambda answers: len(pids_answering(answers, 200, credential)) == WORKERS
                   or any(answer.status != 200 for answer in answers),
                   f"a 200 for {credential} from each of the {WORKERS} workers")
    early = [answer for answer in before if answer.status != 200]
    assert not early, (
        f"the key was refused before every worker served it (raise EXPIRES_SECONDS if the "
        f"answers came after its expiry): {[(a.status, a.received - expires_at) for a in early]}")
    assert len(pids_answering(before, 200, credential)) == WORKERS

    # Wait for the expiry by polling the server: one request at a time until it refuses.
    polled = []

    def refused():
        polled.append(get_once(server.url, bearer(key)))
        return polled[-1].status == 401
    assert poll(refused, expires_at - time.time() + 10, interval=0.05), \
        f"the key still works {time.time() - expires_at:.1f}s after its expiry"
    after = drive(server, bearer(key),
                  lambda answers: len(pids_answering(answers, 401)) == WORKERS
                  or any(answer.status != 401 for answer in answers),
                  f"a 401 from each of the {WORKERS} workers")
    assert [answer.status for answer in after if answer.status != 401] == []
    assert {str(pid) for pid in pids_answering(after, 401)} == workers

    # An answer that arrived before the expiry was a 200; a request sent after it, a 401.
    for answer in before + polled + after:
        if answer.received < expires_at:
            assert answer.status == 200, (answer, expires_at)
        if answer.sent >= expires_at:
            assert answer.status == 401, (answer, expires_at)
    assert {200, 401} <= {answer.status for answer in polled + after}
    check_worker_pids(server, workers)


# --- the read scope -------------------------------------------------------------------------

def assert_error_shape(response, status):
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) <= {"error", "details"}, body
    assert isinstance(body["error"], str) and body["error"]
    return body


@pytest.fixture(scope="module")
def read_and_write(server):
    """A write key and a read key of one user, and a session (with one event) of that user."""
    write, _ = new_key(server, "scoped_user", "--scope", "write")
    read, _ = new_key(server, "scoped_user", "--scope", "read")
    session = requests.post(server.url + SESSIONS, json={"prd": {"name": "kept"}},
                            headers=bearer(write), timeout=TIMEOUT)
    assert session.status_code == 201, session.text
    session_id = session.json()["id"]
    event = requests.post(f"{server.url}{SESSIONS}/{session_id}/events",
                          json={"type": "info", "message": "first"}, headers=bearer(write),
                          timeout=TIMEOUT)
    assert event.status_code == 201, event.text
    return write, read, session_id


WRITES = [
    ("POST", "", {}),
    ("PATCH", "/{id}", {"status": "planning"}),
    ("DELETE", "/{id}", None),
    ("POST", "/{id}/events", {"type": "info", "message": "x"}),
]
READS = ["", "/{id}", "/{id}/events"]


def test_read_key_gets_403_on_every_write_and_200_on_every_read(server, read_and_write):
    write, read, session_id = read_and_write
    before = requests.get(f"{server.url}{SESSIONS}/{session_id}", headers=bearer(write),
                          timeout=TIMEOUT).json()
    total_before = requests.get(server.url + SESSIONS, headers=bearer(write),
                                timeout=TIMEOUT).json()["pagination"]["total"]
    for method, suffix, body in WRITES:
        response = requests.request(method, server.url + SESSIONS + suffix.format(id=session_id),
                                    json=body, headers=bearer(read), timeout=TIMEOUT)
        error = assert_error_shape(response, 403)
        assert "read" in error["error"], (method, suffix, error)
    for suffix in READS:
        response = requests.get(server.url + SESSIONS + suffix.format(id=session_id),
                                headers=bearer(read), timeout=TIMEOUT)
        assert response.status_code == 200, (suffix, response.text)
        assert response.headers["Content-Type"].startswith("application/json")
    read_view = requests.get(f"{server.url}{SESSIONS}/{session_id}", headers=bearer(read),
                             timeout=TIMEOUT).json()
    assert read_view == before
    listing = requests.get(server.url + SESSIONS, headers=bearer(read), timeout=TIMEOUT).json()
    assert session_id in [item["id"] for item in listing["data"]]
    events = requests.get(f"{server.url}{SESSIONS}/{session_id}/events", headers=bearer(read),
                          timeout=TIMEOUT).json()
    assert [event["message"] for event in events["data"]] == ["first"]
    # Nothing the read key tried was done.
    after = requests.get(f"{server.url}{SESSIONS}/{session_id}", headers=bearer(write),
                         timeout=TIMEOUT).json()
    assert after == before
    assert after["status"] == "intake" and len(after["events"]) == 1
    assert requests.get(server.url + SESSIONS, headers=bearer(write),
                        timeout=TIMEOUT).json()["pagination"]["total"] == total_before


# --- the raw key appears nowhere ------------------------------------------------------------

def test_raw_key_is_in_no_log_database_file_or_answer(server, read_and_write):
    write, read, session_id = read_and_write
    forged = f"gsk_{public_id(write)}_{secrets.token_urlsafe(32)}"
    calls = [
        ("POST", SESSIONS, bearer(write), {}, 201),
        ("GET", SESSIONS, bearer(write), None, 200),
        ("GET", SESSIONS, {"Authorization": write}, None, 200),
        ("POST", f"{SESSIONS}/{session_id}/events", bearer(write), {"type": "info"}, 201),
        ("GET", f"{SESSIONS}/{session_id}", bearer(read), None, 200),
        ("GET", f"{SESSIONS}/{session_id}/events", bearer(read), None, 200),
        ("POST", SESSIONS, bearer(read), {}, 403),
        ("DELETE", f"{SESSIONS}/{session_id}", bearer(read), None, 403),
        ("GET", SESSIONS, bearer(forged), None, 401),
        ("POST", SESSIONS, bearer(forged), {}, 401),
        ("GET", SESSIONS, bearer(write + "x"), None, 401),
        ("GET", SESSIONS, {"Authorization": f"Basic {write}"}, None, 401),
        ("GET", f"{SESSIONS}/sess_{'x' * 24}", bearer(write), None, 404),
    ]
    answers = []
    for method, path, headers, body, status in calls:
        response = requests.request(method, server.url + path, json=body, headers=headers,
                                    timeout=TIMEOUT)
        assert response.status_code == status, (method, path, response.text)
        answers.append(response)
    wait_until(lambda: sum(1 for line in access_lines(server)
                           if line["credential"] in (f"key:{public_id(write)}",
                                                     f"key:{public_id(read)}")) >= 8,
               10, "the access lines of these requests")

    log = server.log().encode()
    database = b"".join(path.read_bytes() for path in
                        (server.db_path, server.db_path.with_name("server.db-wal"),
                         server.db_path.with_name("server.db-shm")) if path.exists())
    assert server.db_path.exists() and database
    for key in (write, read, forged):
        for text in (key, secret_of(key)):
            needle = text.encode()
            assert needle not in log, f"{text[:8]}... is in the server's log"
            assert needle not in database, f"{text[:8]}... is in the database files"
            for response in answers:
                where = (response.request.method, response.url, response.text)
                assert needle not in response.content, where
                assert text not in str(response.headers), response.headers
    # The places searched are the right ones: the log names the keys by their public ids,
    # and the database holds the keys' rows.
    for key in (write, read):
        assert f"key:{public_id(key)}".encode() in log
        assert public_id(key).encode() in database


# --- error answers carry no traceback, no path ----------------------------------------------

def test_error_answers_carry_no_traceback_or_file_path(server, read_and_write):
    write, read, session_id = read_and_write
    json_type = {"Content-Type": "application/json"}
    cases = [
        ("POST", SESSIONS, {**bearer(write), **json_type}, b'{"prd": ', 400),
        ("POST", f"{SESSIONS}/{session_id}/events", {**bearer(write), **json_type},
         b'{"type": "info", "message": NaN}', 400),
        ("GET", SESSIONS, {}, None, 401),
        ("GET", SESSIONS, {"Authorization": "Bearer gsk_0123456789ab_nope"}, None, 401),
        ("GET", SESSIONS, {"Authorization": "Bearer not.a.jwt"}, None, 401),
        ("PATCH", f"{SESSIONS}/{session_id}", {**bearer(read), **json_type},
         b'{"status": "planning"}', 403),
        ("GET", f"{SESSIONS}/sess_{'x' * 24}", bearer(write), None, 404),
        ("GET", f"{SESSIONS}/{'../' * 8}etc/passwd", bearer(write), None, 404),
        ("GET", "/v1/no/such/route", bearer(write), None, 404),
        ("GET", "/wsgi.py", {}, None, 404),
        ("PUT", SESSIONS, bearer(write), b"{}", 405),
        ("DELETE", SESSIONS, bearer(write), None, 405),
        ("POST", SESSIONS, {**bearer(write), **json_type},
         b'{"prd": "' + b"x" * (1024 * 1024) + b'"}', 413),
        ("POST", SESSIONS, {**bearer(write), "Content-Type": "text/plain"}, b"{}", 415),
    ]
    for method, path, headers, body, status in cases:
        response = requests.request(method, server.url + path, data=body, headers=headers,
                                    timeout=TIMEOUT)
        what = (method, path[:60], status)
        assert_error_shape(response, status)
        for needle in (b"Traceback", b"/work/", b".py", b'File "'):
            assert needle not in response.content, (what, response.text)
    assert "Traceback" not in server.log()
