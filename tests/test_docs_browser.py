"""The /docs page as a person sees it: headless Chromium renders Swagger UI from a real gunicorn.

Chromium runs the page's JavaScript, so the rendered DOM shows whether Swagger UI really
loaded the served document and drew every operation of it. Chromium's net log lists every
request the page made, which must all go to the local server (the assets come from the
flask-swagger-ui package, not from a CDN). A screenshot goes to test-artifacts/docs.png.

Chromium comes from Debian's `chromium` package (tests/ensure_chromium.sh installs it);
without it the module skips, or fails when the CI variable is set.
"""
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from helpers import CI, ROOT, TIMEOUT
from servers import start_gunicorn

ARTIFACTS = ROOT / "test-artifacts"
DOCS = "/docs/"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
CHROMIUM_TIMEOUT = 90
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=15000",
    # Chromium itself still calls Google hosts (sign-in, updates) despite the flags above:
    # no host name resolves, so nothing the browser or the page asks for leaves the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


# --- chromium -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    binary = shutil.which("chromium") or "/usr/bin/chromium"
    if os.access(binary, os.X_OK):
        return binary
    reason = ("headless Chromium is not installed (Debian package `chromium`, /usr/bin/chromium);"
              " `make test` installs it through tests/ensure_chromium.sh when run as root")
    if CI:
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def run_chromium(binary, url, folder, name, *extra):
    """Run headless Chromium once with a fresh profile; return (stdout, its net log events)."""
    profile = folder / f"{name}-profile"
    profile.mkdir()
    net_log = folder / f"{name}-netlog.json"
    env = dict(os.environ, XDG_CONFIG_HOME=str(profile / "config"),
               XDG_CACHE_HOME=str(profile / "cache"))
    process = subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--log-net-log={net_log}",
         *extra, url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT}s on {url}")
    finally:
        try:  # its helper processes share its process group: leave none behind
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]
    return stdout.decode(), read_net_log(net_log)


def read_net_log(path):
    """The net log's events, each with its type's name; tolerate a log left unclosed."""
    text = path.read_text(errors="replace")
    try:
        log = json.loads(text)
    except json.JSONDecodeError:
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    return [dict(event, type=names[event["type"]]) for event in log["events"]]


def page_requests(events, page_url):
    """URLs the page asked for (navigation, subresources, XHR, redirects), in order.

    Chromium's own requests (sign-in, component updates) have no initiator and are not
    the navigation itself; everything else counts, whatever its initiator.
    """
    sources, urls = set(), []
    for event in events:
        params = event.get("params") or {}
        if event["type"] == "URL_REQUEST_START_JOB" and "url" in params:
            initiator = params.get("initiator")
            if initiator in (None, "not an origin") and params["url"] != page_url:
                continue
            sources.add(event["source"]["id"])
            urls.append(params["url"])
        elif event["type"] == "URL_REQUEST_REDIRECT_JOB" and event["source"]["id"] in sources:
            urls.append(params.get("location", "<redirect>"))
    return urls


def is_local(url):
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob"):
        return True
    return parts.scheme in ("http", "https") and parts.hostname in LOCAL_HOSTS


# --- the rendered DOM -----------------------------------------------------------------------

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
        "source", "track", "wbr"}
FIELDS = {"opblock-summary-method": "method", "opblock-summary-path": "path",
          "opblock-summary-description": "description"}
URL_ATTRIBUTES = {"src", "href", "action", "formaction", "poster", "data", "srcset"}


class RenderedDom(HTMLParser):
    """Swagger UI's operation blocks, the title, error boxes and every URL-valued attribute."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.stack = []      # (tag, classes, id) of the open elements
        self.operations = {}  # opblock id -> {"classes", "method", "path", "dataPath", ...}
        self.title = ""
        self.errors = []
        self.urls = []       # (tag, attribute, value)
        self.feed(html)
        self.close()

    def _attributes(self, tag, attrs):
        attrs = dict(attrs)
        for name in URL_ATTRIBUTES & attrs.keys():
            self.urls.append((tag, name, attrs[name] or ""))
        return attrs

    def handle_starttag(self, tag, attrs):
        attrs = self._attributes(tag, attrs)
        classes = (attrs.get("class") or "").split()
        element_id = attrs.get("id") or ""
        if "opblock" in classes and element_id.startswith("operations-"):
            self.operations[element_id] = {"classes": classes, "method": "", "path": "",
                                           "description": "", "dataPath": None}
        if "opblock-summary-path" in classes and self._operation():
            self._operation()["dataPath"] = attrs.get("data-path")
        if "errors-wrapper" in classes:
            self.errors.append(element_id or tag)
        if tag not in VOID:
            self.stack.append((tag, classes, element_id))

    def handle_startendtag(self, tag, attrs):
        self._attributes(tag, attrs)

    def handle_endtag(self, tag):
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                return

    def _operation(self):
        for _, _, element_id in reversed(self.stack):
            if element_id in self.operations:
                return self.operations[element_id]
        return None

    def handle_data(self, data):
        if any(tag in ("h1", "h2") and "title" in classes for tag, classes, _ in self.stack):
            self.title += data
        operation = self._operation()
        if operation is None:
            return
        for _, classes, _ in reversed(self.stack):
            field = next((FIELDS[name] for name in classes if name in FIELDS), None)
            if field:
                operation[field] += data.replace("\u200b", "")
                return


def operations_of(document):
    """(method, path, tag, operationId, summary) of every operation in the document."""
    return [(method, path, operation["tags"][0], operation["operationId"],
             operation.get("summary", ""))
            for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS]


# --- a real gunicorn -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Base URL of a 2-worker gunicorn on a temporary SQLite file."""
    with start_gunicorn(tmp_path_factory.mktemp("gunicorn"), workers=2,
                        forbid_traceback=True) as server:
        yield server.url


@pytest.fixture(scope="module")
def document(server):
    response = requests.get(server + "/v1/openapi.json", timeout=TIMEOUT)
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def rendered(server, chromium, tmp_path_factory):
    """(the DOM after Swagger UI ran, URLs the page requested, page URL)."""
    page_url = server + DOCS
    dom, events = run_chromium(chromium, page_url, tmp_path_factory.mktemp("dom"), "dom",
                               "--dump-dom")
    return dom, page_requests(events, page_url), page_url


@pytest.fixture(scope="module")
def screenshot(server, chromium, tmp_path_factory):
    """test-artifacts/docs.png, a 1280x3000 screenshot; (path, URLs the page requested)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "docs.png"
    path.unlink(missing_ok=True)
    page_url = server + DOCS
    _, events = run_chromium(chromium, page_url, tmp_path_factory.mktemp("shot"), "shot",
                             f"--screenshot={path}", "--window-size=1280,3000",
                             "--hide-scrollbars")
    return path, page_requests(events, page_url)


# --- the served page ------------------------------------------------------------------------

def test_docs_redirects_to_docs_with_a_slash(server):
    response = requests.get(server + "/docs", allow_redirects=False, timeout=TIMEOUT)
    assert 300 <= response.status_code < 400
    assert urljoin(server + "/docs", response.headers["Location"]) == server + DOCS


def test_served_html_names_only_local_urls(server):
    response = requests.get(server + DOCS, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    html = response.text
    absolute = re.findall(r"""https?://[^\s"'<>)]+""", html)
    assert [url for url in absolute if not is_local(url)] == []
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui-standalone-preset.js",
            "/docs/swagger-ui.css"} <= set(assets), assets
    # relative to this server: no scheme, no protocol-relative //host
    assert [url for url in assets if not (url.startswith("/") and not url.startswith("//"))
            ] == []
    assert '"url": "/v1/openapi.json"' in html


# --- the page as Chromium rendered it -------------------------------------------------------

def test_every_operation_of_the_document_is_rendered(rendered, document):
    dom, _, _ = rendered
    page = RenderedDom(dom)
    expected = {f"operations-{tag}-{operation_id}": (method, path, summary)
                for method, path, tag, operation_id, summary in operations_of(document)}
    assert len(expected) == 9
    assert sorted(page.operations) == sorted(expected), "Swagger UI did not render them all"
    for element_id, (method, path, summary) in expected.items():
        block = page.operations[element_id]
        assert f"opblock-{method}" in block["classes"], (element_id, block)
        assert block["method"].strip() == method.upper(), (element_id, block)
        assert block["dataPath"] == path, (element_id, block)
        assert block["path"].strip() == path, (element_id, block)
        assert block["description"].strip() == summary, (element_id, block)


def test_rendered_page_shows_the_title_and_no_error(rendered, document):
    dom, _, _ = rendered
    page = RenderedDom(dom)
    assert page.title.startswith(document["info"]["title"]), page.title
    assert document["info"]["version"] in page.title, page.title
    assert page.errors == []
    assert "Failed to load API definition" not in dom


def test_rendered_dom_links_only_locally(rendered):
    dom, _, page_url = rendered
    attributes = RenderedDom(dom).urls
    assert attributes, "no URL-valued attribute at all: the DOM is not Swagger UI's"
    absolute = [(tag, name, urljoin(page_url, value)) for tag, name, value in attributes
                if not value.startswith("#")]
    assert [entry for entry in absolute if not is_local(entry[2])] == []


def test_page_requests_only_the_local_server(rendered, server):
    _, requested, page_url = rendered
    assert requested[0] == page_url
    assert [url for url in requested if not is_local(url)] == []
    assert {server + path for path in (
        "/docs/swagger-ui-bundle.js", "/docs/swagger-ui-standalone-preset.js",
        "/docs/swagger-ui.css", "/v1/openapi.json")} <= set(requested), requested


# --- the screenshot -------------------------------------------------------------------------

def png_rows(data):
    """(width, height, raw filtered scanlines) of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, chunks = 8, {}
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunks.setdefault(kind, []).append(data[position + 8:position + 8 + length])
        position += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][0][:10])
    assert (depth, colour) in ((8, 2), (8, 6)), (depth, colour)
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = 1 + width * (3 if colour == 2 else 4)
    assert len(raw) == stride * height
    return width, height, [raw[i:i + stride] for i in range(0, len(raw), stride)]


def test_screenshot_is_a_non_trivial_png(screenshot):
    path, requested = screenshot
    data = path.read_bytes()
    assert len(data) > 50_000, f"{path} is only {len(data)} bytes"
    width, height, rows = png_rows(data)
    assert (width, height) == (1280, 3000)
    # a blank or error page has a handful of distinct rows; the rendered docs have hundreds
    assert len(set(rows)) > 300, f"{path} has only {len(set(rows))} distinct rows"
    assert [url for url in requested if not is_local(url)] == []
