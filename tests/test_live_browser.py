"""A progress screen in a real browser: headless Chromium runs tests/pages/live.html, served
from a tiny http.server on another local port (another origin, allowed by CORS_ORIGINS).
The page gets a stream token with fetch from an API key, opens EventSource with
`access_token`, and shows each event as it comes; the test appends events and changes the
status through the API and reads the page's DOM as it changes.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: fds 3
and 4, JSON messages ended by NUL), with nothing but the standard library, which also
reports every console message, uncaught exception and network error of the page.
Chromium comes from Debian's `chromium` package (tests/ensure_chromium.sh installs it);
without it the module skips, or fails when the CI variable is set.
"""
import functools
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
from urllib.parse import quote

import pytest

from helpers import CI, ROOT, Api, access_lines, events_url, free_port, poll
from servers import start_gunicorn

PAGES = ROOT / "tests" / "pages"
# Seconds the page has to show what was appended.
SHOWN_SECONDS = 5
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--remote-debugging-pipe",
    # No host name resolves: nothing the browser or the page asks for leaves the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


@pytest.fixture(scope="module")
def chromium():
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    if os.access(binary, os.X_OK):
        return binary
    reason = ("headless Chromium is not installed (Debian package `chromium`, /usr/bin/chromium);"
              " tests/ensure_chromium.sh installs it when run as root")
    if CI:
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


class DevTools:
    """Headless Chromium driven over the DevTools protocol on a pipe: `send` a command to
    the browser or to the page (after `open`), and the page's `problems` so far (console
    errors, uncaught exceptions, errors the browser logged, such as refused requests)."""

    def __init__(self, binary, folder):
        to_browser, self._commands = os.pipe()
        self._answers, from_browser = os.pipe()
        profile = folder / "profile"
        env = dict(os.environ, XDG_CONFIG_HOME=str(profile / "config"),
                   XDG_CACHE_HOME=str(profile / "cache"))
        self.stderr = open(folder / "chromium.log", "wb")
        # Chromium reads commands on fd 3 and writes answers on fd 4.
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}', binary,
             *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(to_browser, from_browser), stdin=subprocess.DEVNULL,
            stdout=self.stderr, stderr=self.stderr, env=env, start_new_session=True)
        os.close(to_browser)
        os.close(from_browser)
        self._next_id = 0
        self._answered = {}
        self._condition = threading.Condition()
        self.messages = []  # every event the page's session reported
        self.session = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        buffer = b""
        with os.fdopen(self._answers, "rb", buffering=0) as answers:
            while True:
                chunk = answers.read(65536)
                if not chunk:
                    break
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                with self._condition:
                    for raw in messages:
                        message = json.loads(raw)
                        if "id" in message:
                            self._answered[message["id"]] = message
                        elif message.get("sessionId") == self.session:
                            self.messages.append(message)
                    self._condition.notify_all()
        with self._condition:
            self._answered[None] = "closed"
            self._condition.notify_all()

    def send(self, method, params=None, page=True, seconds=15):
        """A command's result, to the page's session (`page`) or to the browser."""
        self._next_id += 1
        command = {"id": self._next_id, "method": method, "params": params or {}}
        if page:
            command["sessionId"] = self.session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        with self._condition:
            answered = self._condition.wait_for(
                lambda: self._next_id in self._answered or None in self._answered, seconds)
        assert answered and self._next_id in self._answered, \
            f"no answer to {method} (chromium: {self.log()[-1500:]})"
        answer = self._answered.pop(self._next_id)
        assert "error" not in answer, (method, answer)
        return answer["result"]

    def open(self, url):
        """Open `url` in a new page, reporting its console, exceptions and log."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, page=False)
        self.session = self.send("Target.attachToTarget", {
            "targetId": target["targetId"], "flatten": True}, page=False)["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", {"url": url})

    def evaluate(self, expression):
        result = self.send("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True})
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def problems(self):
        """What the page's console would show as errors."""
        with self._condition:
            messages = list(self.messages)
        found = []
        for message in messages:
            method, params = message["method"], message.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(("console", [arg.get("value") for arg in params["args"]]))
            elif method == "Runtime.exceptionThrown":
                found.append(("exception", params["exceptionDetails"].get("text"),
                              params["exceptionDetails"].get("exception", {}).get(
                                  "description")))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(("log", params["entry"].get("text"), params["entry"].get("url")))
        return found

    def log(self):
        return (self.stderr.name and open(self.stderr.name, errors="replace").read()) or ""

    def close(self):
        try:
            if self.process.poll() is None:
                os.write(self._commands, json.dumps(
                    {"id": 0, "method": "Browser.close"}).encode() + b"\0")
                self.process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            try:  # its helper processes share its process group: leave none behind
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait()
            os.close(self._commands)
            self._reader.join(5)
            self.stderr.close()


class QuietPages(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def page_server():
    """tests/pages/ on http://127.0.0.1:<port> (a thread of this process); its origin."""
    port = free_port()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(QuietPages, directory=str(PAGES)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


# What the page shows: its state, the session's final status, and each event's item
# (null while it is not loaded).
PAGE_STATE = """document.getElementById("events") && JSON.stringify({
  state: document.getElementById("state").textContent,
  status: document.getElementById("status").textContent,
  events: [...document.querySelectorAll("#events li")].map(
    (item) => [Number(item.dataset.sequence), item.dataset.lastEventId, item.textContent])})"""


def test_a_browser_page_follows_a_session_with_a_stream_token(chromium, page_server, tmp_path):
    with start_gunicorn(tmp_path / "server", workers=2, forbid_traceback=True,
                        CORS_ORIGINS=page_server, STREAM_HEARTBEAT_SECONDS=1) as server:
        api = Api(server, "browser_user")
        session_id = api.new_session()["id"]
        api.append(session_id, "queued")
        browser = DevTools(chromium, tmp_path)
        try:
            browser.open(f"{page_server}/live.html#api={quote(server.url)}"
                         f"&session={session_id}&key={api.key}")

            def shown():
                return json.loads(browser.evaluate(PAGE_STATE) or "null")

            def showing(check, what):
                page = poll(lambda: (lambda now: now if now and check(now) else None)(
                    shown()), SHOWN_SECONDS)
                assert page, f"the page did not show {what} within {SHOWN_SECONDS}s: " \
                             f"{shown()}; problems: {browser.problems()}"
                return page

            page = showing(lambda now: now["state"] == "open" and now["events"],
                           "the event appended before it opened")
            assert page["events"] == [[1, "1", "progress: queued"]]
            api.append(session_id, "planning the catalogue")
            showing(lambda now: len(now["events"]) == 2, "an appended event")
            api.set_status(session_id, "generating")
            api.append(session_id, "generating 3 products")
            page = showing(lambda now: len(now["events"]) == 4, "a status change and an event")
            api.set_status(session_id, "completed")
            page = showing(lambda now: now["state"] == "ended", "the end")
            assert page == {"state": "ended", "status": "completed", "events": [
                [1, "1", "progress: queued"],
                [2, "2", "progress: planning the catalogue"],
                [3, "3", "status.changed: Status changed from intake to generating"],
                [4, "4", "progress: generating 3 products"],
                [5, "5", "status.changed: Status changed from generating to completed"]]}
            assert [event["sequence"] for event in api.events(session_id)] == [1, 2, 3, 4, 5]
            assert browser.problems() == []
        finally:
            browser.close()
        # The page asked for the token with its key (after a CORS preflight), and read the
        # stream with the token.
        logged = access_lines(server.log())
        streams = [line for line in logged
                   if line["path"] == events_url(session_id) + "/stream"]
        assert streams and all(line["credential"] == "stream:browser_user"
                               and line["status"] == 200 for line in streams), streams
        tokens = [(line["method"], line["status"], (line["credential"] or "")[:4])
                  for line in logged if line["path"].endswith("/stream-tokens")]
        assert tokens == [("OPTIONS", 200, ""), ("POST", 201, "key:")]
