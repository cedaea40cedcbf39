"""The /docs page as a person sees it: headless Chromium renders Swagger UI from a real gunicorn.

Chromium runs the page's JavaScript, so the rendered DOM shows whether Swagger UI really
loaded the served document and drew every operation of it. The page records every request
it made, which must all go to the local server (the assets come from the flask-swagger-ui
package, not from a CDN). A screenshot goes to test-artifacts/docs.png.

Chromium is driven by Playwright (conftest's `browser` fixture): without it the module's
browser tests skip, or fail when the CI variable is set.
"""
import re
import struct
import zlib
from collections import namedtuple
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests

from helpers import TIMEOUT, Page, operations

DOCS = "/docs/"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# The screenshot's size (the viewport's).
WIDTH, HEIGHT = 1280, 3000


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
            for method, path, operation in operations(document)]


# --- the page in Chromium (conftest's `server`: a real gunicorn) ----------------------------

Rendered = namedtuple("Rendered", "dom requested page_url errors screenshot")


@pytest.fixture(scope="module")
def rendered(browser, server):
    """The docs page once Swagger UI has drawn it in a WIDTHxHEIGHT viewport: its DOM, the
    URLs the page requested, its URL, its console errors, and test-artifacts/docs.png."""
    page_url = server.url + DOCS
    with Page(browser, width=WIDTH, height=HEIGHT) as page:
        page.page.goto(page_url)
        # Swagger UI draws the operations once it has the document, then asks for nothing.
        page.page.locator(".opblock").first.wait_for()
        page.page.wait_for_load_state("networkidle")
        dom = page.page.content()
        path = page.screenshot("docs.png", full_page=False)
    return Rendered(dom, page.requests, page_url, page.errors, path)


# --- the served page ------------------------------------------------------------------------

def test_docs_redirects_to_docs_with_a_slash(server):
    response = requests.get(server.url + "/docs", allow_redirects=False, timeout=TIMEOUT)
    assert 300 <= response.status_code < 400
    assert urljoin(server.url + "/docs", response.headers["Location"]) == server.url + DOCS


def test_served_html_names_only_local_urls(server):
    response = requests.get(server.url + DOCS, timeout=TIMEOUT)
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

def test_every_operation_of_the_document_is_rendered(rendered, served_document):
    page = RenderedDom(rendered.dom)
    expected = {f"operations-{tag}-{operation_id}": (method, path, summary)
                for method, path, tag, operation_id, summary in operations_of(served_document)}
    assert len(expected) == 11
    assert sorted(page.operations) == sorted(expected), "Swagger UI did not render them all"
    for element_id, (method, path, summary) in expected.items():
        block = page.operations[element_id]
        assert f"opblock-{method}" in block["classes"], (element_id, block)
        assert block["method"].strip() == method.upper(), (element_id, block)
        assert block["dataPath"] == path, (element_id, block)
        assert block["path"].strip() == path, (element_id, block)
        assert block["description"].strip() == summary, (element_id, block)


def test_rendered_page_shows_the_title_and_no_error(rendered, served_document):
    page = RenderedDom(rendered.dom)
    assert page.title.startswith(served_document["info"]["title"]), page.title
    assert served_document["info"]["version"] in page.title, page.title
    assert page.errors == []
    assert "Failed to load API definition" not in rendered.dom
    assert rendered.errors == []  # the console's


def test_rendered_dom_links_only_locally(rendered, served_document):
    """Nothing on the page points away from the server but the links the document itself
    names for a reader to follow (its license); none is loaded (see the next test)."""
    attributes = RenderedDom(rendered.dom).urls
    assert attributes, "no URL-valued attribute at all: the DOM is not Swagger UI's"
    named = {served_document["info"]["license"]["url"]}
    absolute = [(tag, name, urljoin(rendered.page_url, value)) for tag, name, value in attributes
                if not value.startswith("#")]
    assert [entry for entry in absolute if not is_local(entry[2])
            and not (entry[0] == "a" and entry[2] in named)] == []


def test_page_requests_only_the_local_server(rendered, server):
    requested = rendered.requested
    assert requested[0] == rendered.page_url
    assert [url for url in requested if not is_local(url)] == []
    assert {server.url + path for path in (
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


def test_screenshot_is_a_non_trivial_png(rendered):
    path = rendered.screenshot
    data = path.read_bytes()
    assert len(data) > 50_000, f"{path} is only {len(data)} bytes"
    width, height, rows = png_rows(data)
    assert (width, height) == (WIDTH, HEIGHT) == (1280, 3000)
    # a blank or error page has a handful of distinct rows; the rendered docs have hundreds
    assert len(set(rows)) > 300, f"{path} has only {len(set(rows))} distinct rows"
