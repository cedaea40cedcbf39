"""Response headers every answer carries, and CORS for browser clients (off by default).

Covers: X-Content-Type-Options and Referrer-Policy on every answer; the strict
Content-Security-Policy on JSON answers but not on the /docs/ HTML page;
Cache-Control: no-store on authenticated and /v1 API answers; CORS off unless
CORS_ORIGINS is set; with it set, exact origin matching, preflights that need
no credential, exposed headers, no Access-Control-Allow-Credentials, `*`, and
malformed CORS_ORIGINS refused at start; preflights never count against the
rate limit.
"""
import pytest

from helpers import SESSIONS, assert_error, bearer, issue_key

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
APP_ORIGIN = "https://app.example.com"
LOCAL_ORIGIN = "http://localhost:3000"
ORIGINS = f"{APP_ORIGIN},{LOCAL_ORIGIN}"
MISSING = f"{SESSIONS}/sess_doesnotexist0000000000000"
BOGUS = {"Authorization": "Bearer gsk_0123456789ab_notasecretthatexists"}


def tokens(value):
    """A comma-separated header value as a set of lower-case tokens."""
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


def cors_headers(response):
    return {name: value for name, value in response.headers.items()
            if name.lower().startswith("access-control-")}


# --- a sample of every kind of answer -------------------------------------------------------

# (id, method, path, needs credential, request options, expected status, JSON answer)
SAMPLE = [
    ("healthz", "GET", "/healthz", False, {}, 200, True),
    ("openapi", "GET", "/v1/openapi.json", False, {}, 200, True),
    ("docs-page", "GET", "/docs/", False, {}, 200, False),
    ("list-200", "GET", SESSIONS, True, {}, 200, True),
    ("create-201", "POST", SESSIONS, True, {"json": {}}, 201, True),
    ("malformed-400", "POST", SESSIONS, True,
     {"data": b"{", "content_type": "application/json"}, 400, True),
    ("no-credential-401", "GET", SESSIONS, False, {}, 401, True),
    ("missing-404", "GET", MISSING, True, {}, 404, True),
    ("unrouted-404", "GET", "/v1/nope", False, {}, 404, True),
    ("method-405", "PUT", SESSIONS, True, {"json": {}}, 405, True),
    ("too-large-413", "POST", SESSIONS, True,
     {"data": b" " * (1024 * 1024 + 1), "content_type": "application/json"}, 413, True),
]
SAMPLE_IDS = [item[0] for item in SAMPLE]


def send(client, auth_headers, item, extra_headers=None):
    _, method, path, needs_credential, options, status, _ = item
    headers = dict(auth_headers) if needs_credential else {}
    headers.update(extra_headers or {})
    response = client.open(path, method=method, headers=headers, **options)
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    return response


@pytest.mark.parametrize("item", SAMPLE, ids=SAMPLE_IDS)
def test_every_answer_forbids_sniffing_and_referrers(client, auth_headers, item):
    response = send(client, auth_headers, item)
    assert response.headers.get("X-Content-Type-Options") == "nosniff"
    assert response.headers.get("Referrer-Policy") == "no-referrer"


@pytest.mark.parametrize("item", [item for item in SAMPLE if item[6]],
                         ids=[item[0] for item in SAMPLE if item[6]])
def test_json_answers_carry_the_strict_content_security_policy(client, auth_headers, item):
    response = send(client, auth_headers, item)
    assert response.mimetype == "application/json"
    assert response.headers.get("Content-Security-Policy") == JSON_POLICY


def test_docs_page_is_not_given_the_json_policy(client):
    """`default-src 'none'` would stop swagger-ui's own scripts and styles from loading."""
    response = client.get("/docs/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert "swagger" in response.get_data(as_text=True).lower()
    assert "Content-Security-Policy" not in response.headers


@pytest.mark.parametrize("item", SAMPLE, ids=SAMPLE_IDS)
def test_answers_to_requests_with_a_credential_are_not_stored(client, auth_headers, item):
    """Any request carrying Authorization: whatever it was shown must not be cached
    (for the 401 sample, a refused credential)."""
    credential = BOGUS if item[5] == 401 else auth_headers
    response = send(client, auth_headers, item, extra_headers=credential)
    assert "no-store" in tokens(response.headers.get("Cache-Control"))


def test_api_401_without_credential_is_not_stored(client):
    response = client.get(SESSIONS)
    assert_error(response, 401)
    assert "no-store" in tokens(response.headers.get("Cache-Control"))


@pytest.mark.parametrize("path", [SESSIONS, f"{MISSING}/events", MISSING])
def test_api_answers_are_not_stored(client, auth_headers, path):
    response = client.get(path, headers=auth_headers)
    assert response.status_code in (200, 404)
    assert "no-store" in tokens(response.headers.get("Cache-Control"))


def test_healthz_without_credential_is_never_marked_cacheable(client):
    """/healthz shows nobody's data, so no-store is not required (today it sends no
    Cache-Control at all); but a load balancer must never be told to cache it."""
    response = client.get("/healthz")
    assert response.status_code == 200
    directives = tokens(response.headers.get("Cache-Control"))
    assert "public" not in directives
    assert not any(item.startswith(("max-age", "s-maxage")) for item in directives)


# --- CORS off (the default) -----------------------------------------------------------------

@pytest.mark.parametrize("path", [SESSIONS, "/healthz", "/v1/openapi.json"])
def test_cors_is_off_by_default(client, auth_headers, path):
    response = client.get(path, headers={**auth_headers, "Origin": APP_ORIGIN})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert cors_headers(response) == {}


def test_preflight_gets_no_cors_headers_by_default(client):
    response = client.options(SESSIONS, headers={
        "Origin": APP_ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert cors_headers(response) == {}


# --- CORS on --------------------------------------------------------------------------------

def bearer_for(app):
    """A fresh API key on `app`'s database, as Authorization headers."""
    return bearer(issue_key(app, organization_id="org_1"))


@pytest.fixture
def cors_app(make_app):
    return make_app(CORS_ORIGINS=ORIGINS)


@pytest.fixture
def cors_client(cors_app):
    return cors_app.test_client()


@pytest.fixture
def cors_auth(cors_app):
    return bearer_for(cors_app)


def preflight(client, path, origin=APP_ORIGIN, method="POST",
              request_headers="authorization, content-type, idempotency-key, if-match"):
    headers = {"Origin": origin, "Access-Control-Request-Method": method}
    if request_headers:
        headers["Access-Control-Request-Headers"] = request_headers
    return client.options(path, headers=headers)


@pytest.mark.parametrize("origin", [APP_ORIGIN, LOCAL_ORIGIN])
def test_listed_origin_is_allowed_and_may_read_the_headers(cors_client, cors_auth, origin):
    response = cors_client.get(SESSIONS, headers={**cors_auth, "Origin": origin})
    assert response.status_code == 200
    assert response.headers.get("Access-Control-Allow-Origin") == origin
    assert "origin" in tokens(response.headers.get("Vary"))
    exposed = tokens(response.headers.get("Access-Control-Expose-Headers"))
    assert {"etag", "x-request-id", "location", "retry-after"} <= exposed
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_created_answer_exposes_location_and_etag_to_a_listed_origin(cors_client, cors_auth):
    response = cors_client.post(SESSIONS, json={}, headers={**cors_auth, "Origin": APP_ORIGIN})
    assert response.status_code == 201
    assert response.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN
    assert {"etag", "location"} <= tokens(response.headers.get("Access-Control-Expose-Headers"))


@pytest.mark.parametrize("origin", [
    "https://evil.example.com",
    "https://app.example.com.evil.com",   # a listed origin as a prefix
    "https://evil.app.example.com",       # a listed origin as a suffix
    "https://app.example.co",
    "http://app.example.com",             # scheme differs
    "https://app.example.com:8443",       # port differs
    "https://app.example.com:443",        # not how a browser serializes it: refused too
    "http://localhost:3001",
    "https://localhost:3000",
    "http://localhost",
    "null",                               # sandboxed iframes, file:// pages
])
def test_unlisted_origin_gets_no_allow_origin(cors_client, cors_auth, origin):
    response = cors_client.get(SESSIONS, headers={**cors_auth, "Origin": origin})
    assert response.status_code == 200  # CORS is the browser's check; the server answers
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Credentials" not in response.headers


@pytest.mark.parametrize("origin", ["https://APP.example.com", "HTTPS://app.example.com"])
def test_origin_differing_only_in_case_is_matched_and_echoed(cors_client, cors_auth, origin):
    """Flask-Cors compares origins case-insensitively (str.casefold), since schemes and host
    names are (RFC 3986, RFC 4343), and echoes the Origin header as sent. Browsers serialize
    origins in lower case, so this only ever concerns non-browser clients: the same origin,
    spelled differently. It grants nothing to another site."""
    response = cors_client.get(SESSIONS, headers={**cors_auth, "Origin": origin})
    assert response.status_code == 200
    assert response.headers.get("Access-Control-Allow-Origin") == origin


def test_401_to_a_listed_origin_is_readable_by_the_browser(cors_client):
    response = cors_client.get(SESSIONS, headers={"Origin": APP_ORIGIN})
    assert_error(response, 401)
    assert response.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN
    assert "x-request-id" in tokens(response.headers.get("Access-Control-Expose-Headers"))


@pytest.mark.parametrize("path,method", [
    (SESSIONS, "POST"),
    (SESSIONS, "GET"),
    (f"{SESSIONS}/sess_abc", "PATCH"),
    (f"{SESSIONS}/sess_abc", "DELETE"),
    (f"{SESSIONS}/sess_abc/events", "POST"),
    (f"{SESSIONS}/sess_abc/events", "GET"),
], ids=["create", "list", "update", "delete", "append-event", "list-events"])
def test_preflight_is_answered_without_a_credential(cors_client, path, method):
    response = preflight(cors_client, path, method=method)
    assert 200 <= response.status_code < 300, response.status_code
    assert "WWW-Authenticate" not in response.headers
    assert response.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN
    methods = tokens(response.headers.get("Access-Control-Allow-Methods"))
    assert {"post", "patch", "delete"} <= methods
    assert {"authorization", "content-type", "idempotency-key", "if-match"} <= tokens(
        response.headers.get("Access-Control-Allow-Headers"))
    assert response.headers.get("Access-Control-Max-Age") == "600"
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_preflight_does_not_allow_an_unlisted_method_or_header(cors_client):
    response = preflight(cors_client, SESSIONS, method="PUT",
                         request_headers="x-evil, authorization")
    assert "put" not in tokens(response.headers.get("Access-Control-Allow-Methods"))
    assert "x-evil" not in tokens(response.headers.get("Access-Control-Allow-Headers"))


@pytest.mark.parametrize("origin", ["https://evil.example.com", "http://app.example.com"])
def test_preflight_from_an_unlisted_origin_gets_no_cors_headers(cors_client, origin):
    response = preflight(cors_client, SESSIONS, origin=origin)
    assert "WWW-Authenticate" not in response.headers
    assert cors_headers(response) == {}


def test_wildcard_allows_any_origin_without_credentials(make_app):
    app = make_app(CORS_ORIGINS="*")
    client = app.test_client()
    headers = bearer_for(app)
    response = client.get(SESSIONS, headers={**headers, "Origin": "https://anyone.example"})
    assert response.status_code == 200
    assert response.headers.get("Access-Control-Allow-Origin") == "*"
    assert "Access-Control-Allow-Credentials" not in response.headers
    answer = preflight(client, SESSIONS, origin="https://anyone.example")
    assert 200 <= answer.status_code < 300
    assert answer.headers.get("Access-Control-Allow-Origin") == "*"
    assert "Access-Control-Allow-Credentials" not in answer.headers


def test_cors_origins_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", LOCAL_ORIGIN)
    client = make_app().test_client()
    assert client.get("/healthz", headers={"Origin": LOCAL_ORIGIN}).headers.get(
        "Access-Control-Allow-Origin") == LOCAL_ORIGIN
    assert "Access-Control-Allow-Origin" not in client.get(
        "/healthz", headers={"Origin": APP_ORIGIN}).headers


@pytest.mark.parametrize("value", [
    "app.example.com",
    "https://app.example.com/",
    "https://a.com/path",
    "ftp://x.com",
    "https://app.example.com,app.example.com",
    "https://app.example.com https://b.example.com",
    "https://*.example.com",
    "https://app.example.com:port",
])
def test_malformed_cors_origins_stop_the_app_at_start(make_app, value):
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        make_app(CORS_ORIGINS=value)


def test_malformed_cors_origins_in_the_environment_stop_the_app(make_app, monkeypatch):
    monkeypatch.setenv("CORS_ORIGINS", "ftp://x.com")
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        make_app()


def test_preflights_do_not_count_against_the_rate_limit(make_app):
    app = make_app(CORS_ORIGINS=ORIGINS, RATE_LIMIT="2/minute")
    client = app.test_client()
    headers = {**bearer_for(app), "Origin": APP_ORIGIN}
    for _ in range(5):
        response = preflight(client, SESSIONS)
        assert 200 <= response.status_code < 300, response.status_code
    assert [client.get(SESSIONS, headers=headers).status_code for _ in range(2)] == [200, 200]
    # The limit is on: a third request is refused, and the browser may read why.
    refused = client.get(SESSIONS, headers=headers)
    assert_error(refused, 429)
    assert refused.headers.get("Access-Control-Allow-Origin") == APP_ORIGIN
    assert "retry-after" in tokens(refused.headers.get("Access-Control-Expose-Headers"))
