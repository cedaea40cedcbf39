"""The viewer (/ui/) as a person uses it, in headless Chromium driven by Playwright, against
a real gunicorn: the list shows what the API returns, a session page follows appends and
status changes without a reload, the key leaves the address bar, nothing leaves 127.0.0.1,
the console stays clean, and it fits a phone. Screenshots go to test-artifacts/ (the
README's are copies of them).
"""
import pytest
import requests
from playwright.sync_api import expect

from helpers import SESSIONS, TIMEOUT, Page, bearer
from servers import start_gunicorn

LIVE_SECONDS = 5_000  # ms a page may take to show a change made through the API


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_gunicorn(tmp_path_factory.mktemp("viewer"), workers=2,
                        STREAM_HEARTBEAT_SECONDS="2") as running:
        running.key = running.create_key("viewer_user")
        running.headers = bearer(running.key)
        yield running


def api(server, method, path="", **options):
    answer = requests.request(method, server.url + SESSIONS + path, headers=server.headers,
                              timeout=TIMEOUT, **options)
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


def new_session(server, title, status=None):
    session = api(server, "POST", json={"prd": {"title": title, "description": "viewer test"}})
    if status:
        api(server, "PATCH", f"/{session['id']}", json={"status": status})
    return session


def test_without_a_key_only_the_sign_in_shows(page, server):
    page.page.goto(server.url + "/ui/")
    page.page.wait_for_selector("#sign-in-form")
    assert page.page.is_visible("#sign-in") and not page.page.is_visible("#list")
    assert page.page.locator("#rows tr").count() == 0
    page.page.fill("#key-input", "gsk_000000000000_" + "x" * 43)
    page.page.click("#sign-in-form button")
    page.page.wait_for_selector("#sign-in-error:not([hidden])")
    assert page.page.is_visible("#sign-in") and not page.page.is_visible("#list")
    page.page.fill("#key-input", server.key)
    page.page.click("#sign-in-form button")
    page.page.wait_for_selector("#list:not([hidden])")
    assert page.errors == [] or all("401" in error for error in page.errors)


def test_the_list_shows_what_the_api_returns(page, server):
    for n, status in enumerate(["planning", "completed", None, "failed"]):
        new_session(server, f"List product {n}", status)
    page.page.goto(f"{server.url}/ui/#key={server.key}")
    page.page.wait_for_selector("#rows tr")
    assert "#key" not in page.page.url and server.key not in page.page.url
    assert page.page.evaluate("sessionStorage.getItem('gensessions.key')") == server.key
    expected = api(server, "GET", params={"limit": 20})["data"]
    expect(page.page.locator("#rows tr")).to_have_count(len(expected))
    shown = [[cell.inner_text().strip() for cell in row.locator("td").all()]
             for row in page.page.locator("#rows tr").all()]
    assert [row[0] for row in shown] == [session["id"] for session in expected]  # full ids
    assert [row[1] for row in shown] == [session["status"] for session in expected]
    assert [row[2] for row in shown] == [session["prd"]["title"] for session in expected]
    assert all(row[3] for row in shown)
    page.screenshot("viewer-list.png")
    # The status filter asks the API for that status only.
    page.page.select_option("#status-filter", "completed")
    completed = api(server, "GET", params={"status": "completed"})["data"]
    expect(page.page.locator("#rows tr td:nth-child(2)")).to_have_text(
        ["completed"] * len(completed))
    assert page.errors == []
    assert page.hosts() <= {"127.0.0.1"}


def test_the_list_pages(page, server):
    for n in range(23):
        new_session(server, f"Paged product {n}")
    page.page.goto(f"{server.url}/ui/#key={server.key}")
    page.page.wait_for_selector("#rows tr")
    first = page.page.locator("#rows tr td:first-child").all_inner_texts()
    assert len(first) == 20 and page.page.is_enabled("#next")
    page.page.click("#next")
    expect(page.page.locator("#rows tr td").first).not_to_have_text(first[0])
    second = page.page.locator("#rows tr td:first-child").all_inner_texts()
    assert not set(first) & set(second)
    page.page.click("#previous")
    expect(page.page.locator("#rows tr td").first).to_have_text(first[0])
    assert page.errors == []


def test_a_session_page_follows_appends_and_status_changes_live(page, server):
    session = new_session(server, "Live product")
    sid = session["id"]
    api(server, "PATCH", f"/{sid}", json={"status": "generating", "plan": {"steps": ["a"]},
                                          "assemblyState": {"progress": 10}})
    page.page.goto(f"{server.url}/ui/sessions/{sid}#key={server.key}")
    page.page.wait_for_selector("#live:not([hidden])")
    assert "#key" not in page.page.url and page.page.url.endswith(f"/ui/sessions/{sid}")
    assert page.page.inner_text("#session-id") == sid
    assert page.page.inner_text("#title") == "Live product"
    assert page.page.locator("#timeline li").count() == 1  # the status.changed event
    # An append through the API shows up without a reload.
    api(server, "POST", f"/{sid}/events", json={
        "type": "progress", "message": "Generated the knowledge base", "payload": {"n": 1}})
    page.page.wait_for_selector("#timeline li:nth-child(2)", timeout=LIVE_SECONDS)
    assert "Generated the knowledge base" in page.page.inner_text("#timeline li:nth-child(2)")
    # A progress change and a status change, too.
    api(server, "PATCH", f"/{sid}", json={"status": "assembling",
                                          "assemblyState": {"progress": 75}})
    expect(page.page.locator(".step-current")).to_have_text("assembling",
                                                            timeout=LIVE_SECONDS)
    expect(page.page.locator("#progress-text")).to_have_text("75%", timeout=LIVE_SECONDS)
    assert page.page.locator("#progress-bar").get_attribute("value") == "75"
    expect(page.page.locator("#timeline li")).to_have_count(3)
    page.screenshot("viewer-session.png")
    page.page.click("#documents details:nth-child(2) summary")  # the plan, collapsed at first
    assert '"steps"' in page.page.inner_text("#documents details:nth-child(2) pre")
    page.page.click("#timeline li:nth-child(2) details summary")  # payload on demand
    assert '"n": 1' in page.page.inner_text("#timeline li:nth-child(2) details pre")
    # Completed: the stream ends and the page says so.
    api(server, "PATCH", f"/{sid}", json={"status": "completed",
                                          "assemblyState": {"progress": 100}})
    expect(page.page.locator(".step-current")).to_have_text("completed", timeout=LIVE_SECONDS)
    page.page.wait_for_selector("#live", state="hidden", timeout=LIVE_SECONDS)
    sequences = [int(item.get_attribute("data-sequence"))
                 for item in page.page.locator("#timeline li").all()]
    assert sequences == [1, 2, 3, 4]  # every event once, in order
    assert page.errors == []
    assert page.hosts() <= {"127.0.0.1"}


def test_a_deleted_session_says_so(page, server):
    sid = new_session(server, "Doomed product", "planning")["id"]
    page.page.goto(f"{server.url}/ui/sessions/{sid}#key={server.key}")
    page.page.wait_for_selector("#live:not([hidden])")
    api(server, "DELETE", f"/{sid}")
    page.page.wait_for_selector("#gone:not([hidden])", timeout=LIVE_SECONDS)


def test_it_fits_a_phone(browser, server):
    with Page(browser, width=390, height=844) as phone:
        sid = new_session(server, "Phone product", "generating")["id"]
        phone.page.goto(f"{server.url}/ui/#key={server.key}")
        phone.page.wait_for_selector("#rows tr")
        width = phone.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, width  # nothing wider than the screen
        phone.page.goto(f"{server.url}/ui/sessions/{sid}")  # the key stays in the tab
        phone.page.wait_for_selector("#timeline li")
        assert phone.page.evaluate("document.documentElement.scrollWidth") <= 390
        phone.screenshot("viewer-phone.png")
        assert phone.errors == []


def test_the_page_runs_under_a_policy_without_unsafe_inline(server):
    for path in ("/ui/", "/ui/sessions/sess_anything"):
        answer = requests.get(server.url + path, timeout=TIMEOUT)
        policy = answer.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in policy and "script-src 'self'" in policy
        assert "<script>" not in answer.text and " style=" not in answer.text
        assert "http://" not in answer.text and "https://" not in answer.text  # no CDN
