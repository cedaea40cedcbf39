"""What the test modules share: the contract's constants, requests, credentials, the CLI,
assertions, polling, a browser page. Fixtures and hooks are in conftest.py; a real server is
in servers.py, the test databases in databases.py.

    from helpers import SESSIONS, assert_error, bearer
"""
import http.client
import json
import os
import pathlib
import queue
import re
import socket
import threading
import time
from calendar import timegm
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from gensessions import create_app
from gensessions.db import connected
from gensessions.models import ApiKey, Session
from gensessions.testing import bearer, free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent

# --- the contract ---------------------------------------------------------------------------

SESSIONS = "/v1/products/generation/sessions"
STATUSES = ("intake", "planning", "generating", "assembling", "completed", "failed",
            "cancelled")
NON_TERMINAL = ("intake", "planning", "generating", "assembling")
TERMINAL = ("completed", "failed", "cancelled")
# An API key as the service prints it: gsk_<12 hex: public id>_<secret>.
KEY_PATTERN = re.compile(r"^gsk_[0-9a-f]{12}_[A-Za-z0-9_-]{40,}$")
# A timestamp as the contract writes it (RFC 3339, milliseconds, UTC): TIMESTAMP_TEXT to
# build other patterns with, TIMESTAMP to match a whole value.
TIMESTAMP_TEXT = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
TIMESTAMP = re.compile(rf"^{TIMESTAMP_TEXT}$")
JSON_HEADERS = {"Content-Type": "application/json"}
# The keys of an OpenAPI path item that name operations.
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# The logger of the access lines, and the line a finished purge run logs.
ACCESS = "gensessions.access"
RUN_LINE = re.compile(r"purge run pid=(\d+) purged=(\d+) duration_ms=(\d+) "
                      r"started_at=(\d+) finished_at=(\d+)")

# --- time -----------------------------------------------------------------------------------

DAY = 24 * 3600
# Where the `clock` fixture freezes time: 2026-11-23T09:15:30.123Z, in epoch milliseconds.
NOW = 1_795_425_330_123
# Seconds a test waits for one HTTP answer from a real server.
TIMEOUT = 30
# Live-stream tests: their servers' STREAM_HEARTBEAT_SECONDS, and what a bound of the
# contract is given on top on a loaded 2-core machine (the watcher wakes a stream in 20 ms).
HEARTBEAT = 1
SLACK = 0.5
# Under CI nothing is skipped for want of a service (PostgreSQL, Redis, Chromium).
CI = os.environ.get("CI", "").lower() not in ("", "0", "false")


def iso(ms):
    """Epoch milliseconds as the contract's timestamp text."""
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Clock:
    """A controllable "now" for the whole app (app.clock.now_ms is the one source)."""

    def __init__(self, start_ms):
        self.ms = start_ms

    def now_ms(self):
        return self.ms

    def advance(self, seconds):
        self.ms += int(seconds * 1000)


def poll(condition, seconds, interval=0.02):
    """Return the first true value of `condition` within `seconds`, else the last false one."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_until(condition, seconds, what):
    """Poll `condition` until it returns a true value, or fail after `seconds`."""
    value = poll(condition, seconds)
    if not value:
        pytest.fail(f"timed out after {seconds}s waiting for {what}")
    return value


# --- apps and credentials -------------------------------------------------------------------

# The settings of a test app: rate limits and the in-server purge off.
QUIET = {"TESTING": True, "PURGE_SCHEDULE": "off", "RATE_LIMIT": "off"}


def new_app(database_url, **settings):
    """create_app on `database_url` with QUIET, then `settings`."""
    return create_app({"DATABASE_URL": database_url, **QUIET, **settings})


def issue_key(app, user_id="user_1", organization_id=None, scope="write"):
    """A new API key of `user_id` in `app`'s database, through the key model."""
    with connected(app):
        _, key = ApiKey.issue(user_id, 0, organization_id=organization_id, scope=scope)
    return key


def raw_key(headers):
    """The key an Authorization header sends."""
    return headers["Authorization"].removeprefix("Bearer ")


def public_id(key):
    return key.removeprefix("gsk_").partition("_")[0]


def secret_of(key):
    """Everything after the key's second underscore (a secret may itself hold '_')."""
    return key.removeprefix("gsk_").partition("_")[2]


# --- requests -------------------------------------------------------------------------------

def session_url(session_id):
    return f"{SESSIONS}/{session_id}"


def events_url(session_id):
    return f"{SESSIONS}/{session_id}/events"


def nest(depth, leaf="bottom"):
    """`depth` objects, each inside the one before."""
    value = leaf
    for _ in range(depth):
        value = {"k": value}
    return value


def operations(document):
    """(method, path, operation) of every operation of an OpenAPI document, in its order."""
    return [(method, path, operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS]


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


def all_events(http, base_url, session_id, headers=None, timeout=TIMEOUT):
    """Every event of a session on a real server, page after page (`http`: a requests
    Session, or the requests module)."""
    events, after = [], 0
    while True:
        response = http.get(f"{base_url}{events_url(session_id)}?limit=1000&after={after}",
                            headers=headers, timeout=timeout)
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["data"]
        if not page["pagination"]["hasMore"]:
            return events
        after = page["data"][-1]["sequence"]


def assert_http_error(response, status, code=None, path=None):
    """assert_error for an answer of a real server (a `requests` Response)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    assert "X-Request-Id" in response.headers
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"]
    if code is not None:
        matches = [d for d in body["details"]
                   if d["code"] == code and (path is None or d["path"] == path)]
        assert matches, body
        return matches[0]
    return body


# --- a real server's access log -------------------------------------------------------------

def access_lines(log):
    """The access lines (dicts) in a server's log text."""
    return [json.loads(line) for line in log.splitlines() if line.startswith('{"method"')]


def logged_request(server, request_id, seconds=5):
    """The access line of the request that sent (or got) `request_id`, from `server.log()`.
    (The line is written before the answer leaves, so it is there once the answer is.)"""
    def find():
        return next((line for line in access_lines(server.log())
                     if line["request_id"] == request_id), None)
    return wait_until(find, seconds, f"the access line of request {request_id}")


def request_id():
    """A fresh X-Request-Id, to find a request's access line (and its worker's pid)."""
    return f"test-{os.urandom(8).hex()}"


# --- Server-Sent Events from a real server --------------------------------------------------

def stream_url(base_url, session_id, **query):
    """The URL of a session's event stream on a real server, with `query` (None left out)."""
    query = {name: value for name, value in query.items() if value is not None}
    return (f"{base_url}{SESSIONS}/{session_id}/events/stream"
            + (f"?{urlencode(query)}" if query else ""))


class EventStream:
    """One GET of an event stream (`text/event-stream`), read by a thread as it arrives, so
    that a test waits for what comes with a deadline.

        with EventStream(stream_url(server.url, session_id), bearer(key)) as stream:
            assert stream.status == 200
            events = stream.read_events(3)        # the next 3 events (dicts), in order

    `status`, `headers` (case-insensitive) and, when the answer is no stream, `body`. Each
    message ("block": the lines up to a blank line) is a dict: `event`, `id`, `data` (its
    data lines joined, None without any), `retry`, `comments` (the text of `:` lines), and
    `at` (time.monotonic() when it was read). `lines` keeps every line as received.
    `closed_at` is when the server's end of the connection closed (None while open).
    """

    # Streams not closed yet: close_all() ends them (a test that fails half-way).
    opened = set()

    def __init__(self, url, headers=None, timeout=TIMEOUT):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                                     timeout=timeout)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.opened_at = time.monotonic()
        self.connection.request("GET", target,
                                headers={"Accept": "text/event-stream", **(headers or {})})
        self.socket = self.connection.sock
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.headers = self.response.headers
        self.lines = []
        self.body = None
        self.closed_at = None
        self._blocks = queue.Queue()
        self._over = False
        self._thread = None
        if self.status == 200 and self.headers.get("Content-Type", "").startswith(
                "text/event-stream"):
            EventStream.opened.add(self)
            self._thread = threading.Thread(target=self._read, daemon=True,
                                            name="test-event-stream")
            self._thread.start()
        else:
            self.body = self.response.read()
            self.closed_at = time.monotonic()
            self.response.close()
            self.connection.close()

    @classmethod
    def close_all(cls):
        for stream in list(cls.opened):
            stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def json(self):
        """The answer's body as JSON, when it was no stream (an error)."""
        return json.loads(self.body)

    def _read(self):
        block = {}
        try:
            while True:
                raw = self.response.readline()
                if not raw:
                    return
                line = raw.decode("utf-8").rstrip("\r\n")
                self.lines.append(line)
                if not line:  # a blank line ends a message
                    if block:
                        block["at"] = time.monotonic()
                        data = block.get("data")
                        block["data"] = "\n".join(data) if data is not None else None
                        self._blocks.put(block)
                    block = {}
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if not field:
                    block.setdefault("comments", []).append(value)
                elif field == "data":
                    block.setdefault("data", []).append(value)
                else:
                    block[field] = value
        except (OSError, ValueError, http.client.HTTPException):
            return  # closed by close(), or reset
        finally:
            self.closed_at = time.monotonic()
            self._blocks.put(None)
            self.response.close()

    def next_block(self, seconds=TIMEOUT):
        """The next message (a dict, see the class), or None once the stream has closed;
        fails after `seconds` with neither."""
        if self._over:
            return None
        try:
            block = self._blocks.get(timeout=seconds)
        except queue.Empty:
            pytest.fail(f"no message and no close within {seconds}s; lines so far: "
                        f"{self.lines[-10:]}")
        if block is None:
            self._over = True
        return block

    def read_events(self, count, seconds=TIMEOUT):
        """The next `count` events (their data as dicts), skipping comments and `retry:`;
        fails if the stream ends (`end`, `gone`, closed) or `seconds` pass first. Each event's
        message must have `id: <sequence>` and no `event:` field."""
        deadline = time.monotonic() + seconds
        events = []
        while len(events) < count:
            block = self.next_block(max(0.0, deadline - time.monotonic()))
            assert block is not None, f"closed after {len(events)} of {count} events"
            if block["data"] is None:
                continue
            assert "event" not in block, (block, events)
            event = json.loads(block["data"])
            assert block["id"] == str(event["sequence"]), block
            events.append(event)
        return events

    def events_until_keep_alive(self, seconds=TIMEOUT):
        """The events (dicts) sent before the next keep-alive comment: what a replay held,
        when nothing is appended meanwhile."""
        deadline = time.monotonic() + seconds
        events = []
        while True:
            block = self.next_block(max(0.0, deadline - time.monotonic()))
            assert block is not None, f"closed after {len(events)} events, before a keep-alive"
            if "keep-alive" in block.get("comments", ()):
                assert block["data"] is None, block
                return events
            if block["data"] is not None:
                assert "event" not in block, block
                event = json.loads(block["data"])
                assert block["id"] == str(event["sequence"]), block
                events.append(event)

    def read_to_close(self, seconds=TIMEOUT):
        """Every message until the server closes the stream; fails if it has not within
        `seconds`."""
        deadline = time.monotonic() + seconds
        blocks = []
        while True:
            block = self.next_block(max(0.0, deadline - time.monotonic()))
            if block is None:
                return blocks
            blocks.append(block)

    def close(self):
        """Close our end (the reader thread stops)."""
        EventStream.opened.discard(self)
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(5)
        self.connection.close()
        self.socket.close()


# --- a real server's API, as the live tests call it -------------------------------------

class Api:
    """A server (servers.GunicornServer) and one user's key (a new one made with the CLI
    unless given), with the requests the tests make. Every request sends its own
    X-Request-Id, so its access line (and worker) can be found; `anonymous` ones send no
    Authorization."""

    def __init__(self, server, user_id="live_user", scope="write", key=None):
        self.server, self.url = server, server.url
        self.user_id = user_id
        self.key = key or server.create_key(user_id, scope=scope)
        self.headers = bearer(self.key)

    def call(self, method, path, http=requests, headers=None, expect=None, anonymous=False,
             **kwargs):
        sent = {} if anonymous else dict(self.headers)
        sent.update({"X-Request-Id": request_id(), **(headers or {})})
        response = http.request(method, self.url + path, timeout=TIMEOUT, headers=sent,
                                **kwargs)
        if expect is not None:
            assert response.status_code == expect, (response.status_code, response.text)
        return response

    def new_session(self):
        return self.call("POST", SESSIONS, json={}, expect=201).json()

    def append(self, session_id, message, http=requests, **headers):
        return self.call("POST", events_url(session_id), http=http, headers=headers,
                         json={"type": "progress", "message": message}, expect=201).json()

    def set_status(self, session_id, status, http=requests):
        return self.call("PATCH", session_url(session_id), http=http,
                         json={"status": status}, expect=200).json()

    def events(self, session_id):
        page = self.call("GET", events_url(session_id) + "?limit=1000", expect=200).json()
        assert not page["pagination"]["hasMore"]
        return page["data"]

    def stream(self, session_id, headers=None, anonymous=False, **query):
        sent = {} if anonymous else dict(self.headers)
        sent.update({"X-Request-Id": request_id(), **(headers or {})})
        return EventStream(stream_url(self.url, session_id, **query), sent)

    def pid(self, answer):
        """The pid of the worker that answered (a requests Response or an EventStream)."""
        return logged_request(self.server, answer.headers["X-Request-Id"])["pid"]

    def workers(self):
        """The master's worker processes, now."""
        master = self.server.process.pid
        with open(f"/proc/{master}/task/{master}/children") as children:
            return {int(pid) for pid in children.read().split()}

    def through(self, pid):
        """A requests.Session whose keep-alive connection is served by worker `pid`."""
        for _ in range(60):
            http = requests.Session()
            if self.pid(self.call("GET", "/healthz", http=http, expect=200)) == pid:
                return http
            http.close()
        pytest.fail(f"no connection reached worker {pid} in 60 tries")

    def append_via(self, pid, session_id, message):
        """Append an event through worker `pid` (checked in the access log)."""
        with self.through(pid) as http:
            response = self.call("POST", events_url(session_id), http=http,
                                 json={"type": "progress", "message": message}, expect=201)
        assert self.pid(response) == pid
        return response.json()


def streams_on_both_workers(api, session_id, anonymous=False, **query):
    """{pid: an open stream of the session served by that worker}, for both workers (a
    new connection lands on either; extra ones are closed)."""
    streams = {}
    for _ in range(60):
        stream = api.stream(session_id, anonymous=anonymous, **query)
        assert stream.status == 200, stream.body
        pid = api.pid(stream)
        if pid in streams:
            stream.close()
        else:
            streams[pid] = stream
        if len(streams) == 2:
            assert set(streams) == api.workers()
            return streams
    pytest.fail("60 streams all landed on one worker")


def wall(monotonic):
    """A time.monotonic() reading as epoch seconds."""
    return monotonic + time.time() - time.monotonic()


def epoch(timestamp):
    """The contract's timestamp text as epoch seconds."""
    seconds = timegm(time.strptime(timestamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds + int(timestamp[20:23]) / 1000


# --- a browser: Playwright driving Debian's Chromium ----------------------------------------

# The browser the browser tests drive (Debian's `chromium`; tests/ensure_chromium.sh installs
# it), how conftest's `browser` fixture launches it, and where screenshots go.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu",
                 # No host name resolves: nothing the browser or a page asks for leaves the
                 # machine.
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
ARTIFACTS = ROOT / "test-artifacts"


class Page:
    """A Playwright page in a browser context of its own (`page`), recording what a person
    would see go wrong: `errors`, the page's console errors (with the browser's own, such as
    a refused request or a CORS failure) and uncaught exceptions; and `requests`, the URL of
    every request it made, in order (navigations, redirects, assets, fetch, EventSource).

        with Page(browser) as page:       # `browser`: conftest's fixture
            page.page.goto(url)
            assert page.errors == [] and page.hosts() <= {"127.0.0.1"}
    """

    def __init__(self, browser, width=1100, height=900):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors, self.requests = [], []
        self.page.on("console", lambda message: message.type in ("error", "assert")
                     and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("request", lambda request: self.requests.append(request.url))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.context.close()

    def hosts(self):
        """The hosts of the page's http(s) and ws(s) requests."""
        return {urlsplit(url).hostname for url in self.requests
                if urlsplit(url).scheme in ("http", "https", "ws", "wss")}

    def screenshot(self, name, full_page=True):
        """The page (its whole length, or the viewport) as test-artifacts/<name>; the path."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        path.unlink(missing_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


# --- the database, through the models -------------------------------------------------------

def start(now, ttl, events=0, user_id="user_1"):
    """A session of `user_id` started at `now` for `ttl` seconds, with `events` events;
    its id. (Inside an app's context, e.g. the `conn` fixture.)"""
    session = Session.start(user_id, "org_1", now, ttl)
    for n in range(events):
        Session.append_event(session.id, user_id, now, type="info", message=str(n))
    return session.id


def session_ids():
    """The ids of every stored session. (Inside an app's context.)"""
    return {row.id for row in Session.select()}


# --- the command line (app.test_cli_runner()) -----------------------------------------------

def invoke(runner, args):
    """Invoke a command as `flask` does: inside the app's context (FlaskGroup pushes one)."""
    with runner.app.app_context():
        return runner.invoke(args=args)


def invoke_ok(runner, *args):
    """Invoke a command that must succeed; its result."""
    result = invoke(runner, list(args))
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    return result


def create_key(runner, *options):
    """Run create-key; return the key, checking stdout holds it and nothing else."""
    result = invoke_ok(runner, "create-key", *options)
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, result.stdout
    return result.stdout.strip()


__all__ = ["ACCESS", "ARTIFACTS", "CHROMIUM", "CHROMIUM_ARGS", "CI", "DAY", "HEARTBEAT",
           "JSON_HEADERS", "SLACK",
           "KEY_PATTERN", "METHODS", "NON_TERMINAL", "NOW", "QUIET", "ROOT", "RUN_LINE",
           "SESSIONS", "STATUSES", "TERMINAL", "TIMEOUT", "TIMESTAMP", "TIMESTAMP_TEXT", "Api",
           "Clock", "EventStream", "Page", "access_lines", "all_events", "assert_error",
           "assert_http_error", "bearer", "create_key", "epoch", "events_url", "free_port",
           "invoke", "invoke_ok", "iso", "issue_key", "logged_request", "nest", "new_app",
           "operations", "poll", "public_id", "raw_key", "request_id", "secret_of", "session_ids",
           "session_url", "start", "stream_url", "streams_on_both_workers", "wait_until", "wall"]
