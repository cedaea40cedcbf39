"""A progress screen in a real browser: headless Chromium runs tests/pages/live.html, served
from a tiny http.server on another local port (another origin, allowed by CORS_ORIGINS).
The page gets a stream token with fetch from an API key, opens EventSource with
`access_token`, and shows each event as it comes; the test appends events and changes the
status through the API and reads the page's DOM as it changes.

Chromium is driven by Playwright (conftest's `browser` fixture; helpers.Page records the
page's console errors, among them refused requests and CORS failures, and its uncaught
exceptions): without it the test skips, or fails when the CI variable is set.
"""
import functools
import http.server
import threading
import time
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from helpers import ROOT, Api, Page, access_lines, events_url, free_port
from servers import start_gunicorn

PAGES = ROOT / "tests" / "pages"
# Seconds the page has to show what was appended.
SHOWN_SECONDS = 5


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


def shown(page):
    """What the page shows: its state, the session's final status, and each event's item."""
    return {"state": page.locator("#state").text_content(),
            "status": page.locator("#status").text_content(),
            "events": [[int(item.get_attribute("data-sequence")),
                        item.get_attribute("data-last-event-id"), item.text_content()]
                       for item in page.locator("#events li").all()]}


def showing(page, what, *expected):
    """Wait until the page shows what each of `expected` says (a locator and the text, or the
    count, it must have), all within SHOWN_SECONDS; what it then shows."""
    deadline = time.monotonic() + SHOWN_SECONDS
    for selector, wanted in expected:
        # at least 1 ms: 0 would mean no deadline
        timeout = max(1, (deadline - time.monotonic()) * 1000)
        try:
            if isinstance(wanted, int):
                expect(page.page.locator(selector)).to_have_count(wanted, timeout=timeout)
            else:
                expect(page.page.locator(selector)).to_have_text(wanted, timeout=timeout)
        except AssertionError as error:
            pytest.fail(f"the page did not show {what} within {SHOWN_SECONDS}s: "
                        f"{shown(page.page)}; problems: {page.errors}\n{error}", pytrace=False)
    return shown(page.page)


def test_a_browser_page_follows_a_session_with_a_stream_token(browser, page_server, tmp_path):
    with start_gunicorn(tmp_path / "server", workers=2, forbid_traceback=True,
                        CORS_ORIGINS=page_server, STREAM_HEARTBEAT_SECONDS=1) as server:
        api = Api(server, "browser_user")
        session_id = api.new_session()["id"]
        api.append(session_id, "queued")
        with Page(browser) as page:
            page.page.goto(f"{page_server}/live.html#api={quote(server.url)}"
                           f"&session={session_id}&key={api.key}")
            now = showing(page, "the event appended before it opened",
                          ("#state", "open"), ("#events li", 1))
            assert now["state"] == "open" and now["events"] == [[1, "1", "progress: queued"]]
            api.append(session_id, "planning the catalogue")
            showing(page, "an appended event", ("#events li", 2))
            api.set_status(session_id, "generating")
            api.append(session_id, "generating 3 products")
            showing(page, "a status change and an event", ("#events li", 4))
            api.set_status(session_id, "completed")
            now = showing(page, "the end", ("#state", "ended"))
            assert now == {"state": "ended", "status": "completed", "events": [
                [1, "1", "progress: queued"],
                [2, "2", "progress: planning the catalogue"],
                [3, "3", "status.changed: Status changed from intake to generating"],
                [4, "4", "progress: generating 3 products"],
                [5, "5", "status.changed: Status changed from generating to completed"]]}
            assert [event["sequence"] for event in api.events(session_id)] == [1, 2, 3, 4, 5]
            assert page.errors == []
            # Nothing but the page's server and the API.
            assert page.hosts() <= {"127.0.0.1"}, page.requests
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
