"""Rate limiting per credential: 429 in the contract's shape with its headers, one bucket per
credential (per address without one), exempt routes, `off`, bad settings fail at start, the
bucket key hides the secret, and counts shared by gunicorn workers through Redis."""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gensessions.ratelimit import credential_key
from helpers import CI, SESSIONS, TIMEOUT, assert_error, bearer, issue_key
from servers import start_gunicorn

LIMIT = 3
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
# A Redis database of its own; every run uses a fresh key, so its bucket is new without a flush.
REDIS_URI = os.environ.get("TEST_REDIS_URI", "redis://127.0.0.1:6379/14")
SERVER_LIMIT = 10
SERVER_REQUESTS = 30


@pytest.fixture
def limited(make_app):
    """An app limited to 3 requests a minute per credential."""
    return make_app(RATE_LIMIT=f"{LIMIT}/minute")


@pytest.fixture
def client(limited):
    return limited.test_client()


def statuses(client, count, path=SESSIONS, **kwargs):
    return [client.get(path, **kwargs).status_code for _ in range(count)]


# --- 429 and its headers ----------------------------------------------------------------

def test_requests_up_to_the_limit_succeed_and_the_next_is_429(client):
    headers = bearer(issue_key(client.application))
    assert statuses(client, LIMIT + 1, headers=headers) == [200] * LIMIT + [429]


def test_429_is_the_contracts_error_shape(client):
    headers = bearer(issue_key(client.application))
    statuses(client, LIMIT, headers=headers)
    body = assert_error(client.get(SESSIONS, headers=headers), 429)
    assert set(body) == {"error"}


def test_429_has_a_positive_integer_retry_after(client):
    headers = bearer(issue_key(client.application))
    statuses(client, LIMIT, headers=headers)
    response = client.get(SESSIONS, headers=headers)
    assert response.status_code == 429
    retry_after = response.headers["Retry-After"]
    assert retry_after.isdigit(), retry_after
    assert 0 < int(retry_after) <= 60


def test_429_has_both_families_of_rate_limit_headers(client):
    headers = bearer(issue_key(client.application))
    statuses(client, LIMIT, headers=headers)
    response = client.get(SESSIONS, headers=headers)
    assert response.status_code == 429
    assert set(RATE_HEADERS) <= set(response.headers.keys())
    for family in ("X-RateLimit-", "RateLimit-"):
        assert response.headers[family + "Limit"] == str(LIMIT)
        assert response.headers[family + "Remaining"] == "0"


def test_x_ratelimit_reset_is_an_epoch_time_within_the_window(client):
    headers = bearer(issue_key(client.application))
    before = time.time()
    statuses(client, LIMIT, headers=headers)
    reset = client.get(SESSIONS, headers=headers).headers["X-RateLimit-Reset"]
    assert before - 1 <= float(reset) <= time.time() + 61


def test_ratelimit_reset_is_seconds_from_now_within_the_window(client):
    headers = bearer(issue_key(client.application))
    statuses(client, LIMIT, headers=headers)
    reset = client.get(SESSIONS, headers=headers).headers["RateLimit-Reset"]
    assert reset.isdigit(), reset
    assert 0 <= int(reset) <= 60


def test_remaining_counts_down_on_successful_answers(client):
    headers = bearer(issue_key(client.application))
    responses = [client.get(SESSIONS, headers=headers) for _ in range(LIMIT)]
    assert [r.status_code for r in responses] == [200] * LIMIT
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0"]
    assert [r.headers["RateLimit-Remaining"] for r in responses] == ["2", "1", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {str(LIMIT)}


# --- buckets ----------------------------------------------------------------------------

def test_a_second_key_is_served_while_the_first_is_limited(client):
    first = bearer(issue_key(client.application, "user_1"))
    second = bearer(issue_key(client.application, "user_2"))
    assert statuses(client, LIMIT + 1, headers=first)[-1] == 429
    response = client.get(SESSIONS, headers=second)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == str(LIMIT - 1)


def test_one_bucket_per_credential_across_all_api_routes(client):
    headers = bearer(issue_key(client.application))
    created = client.post(SESSIONS, json={}, headers=headers)
    session = f"{SESSIONS}/{created.json['id']}"
    answers = [created.status_code,
               client.get(session, headers=headers).status_code,
               client.get(session + "/events", headers=headers).status_code,
               client.get(SESSIONS, headers=headers).status_code]
    assert answers == [201, 200, 200, 429]


def test_bare_and_bearer_forms_of_a_key_share_one_bucket(client):
    key = issue_key(client.application)
    answers = [client.get(SESSIONS, headers={"Authorization": key}).status_code,
               client.get(SESSIONS, headers=bearer(key)).status_code,
               client.get(SESSIONS, headers={"Authorization": key}).status_code,
               client.get(SESSIONS, headers=bearer(key)).status_code]
    assert answers == [200, 200, 200, 429]


def test_requests_without_credentials_are_limited_per_address(client):
    here = {"REMOTE_ADDR": "192.0.2.10"}
    assert statuses(client, LIMIT + 1, environ_base=here) == [401] * LIMIT + [429]


def test_another_address_without_credentials_has_its_own_bucket(client):
    statuses(client, LIMIT + 1, environ_base={"REMOTE_ADDR": "192.0.2.10"})
    response = client.get(SESSIONS, environ_base={"REMOTE_ADDR": "192.0.2.11"})
    assert response.status_code == 401
    assert response.headers["X-RateLimit-Remaining"] == str(LIMIT - 1)


@pytest.mark.parametrize("path", ["/healthz", "/v1/openapi.json", "/docs/"])
def test_exempt_routes_are_never_limited(client, path):
    key = issue_key(client.application)
    answers = [client.get(path, headers=bearer(key)) for _ in range(5 * LIMIT)]
    answers += [client.get(path) for _ in range(5 * LIMIT)]
    assert [response.status_code for response in answers] == [200] * (10 * LIMIT)
    assert not [name for response in answers for name in RATE_HEADERS
                if name in response.headers]


@pytest.mark.parametrize("path", ["/healthz", "/v1/openapi.json", "/docs/"])
def test_exempt_routes_do_not_use_up_the_bucket(client, path):
    headers = bearer(issue_key(client.application))
    for _ in range(5 * LIMIT):
        client.get(path, headers=headers)
    response = client.get(SESSIONS, headers=headers)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Remaining"] == str(LIMIT - 1)


# --- settings ----------------------------------------------------------------------------

def test_off_sends_no_rate_limit_headers_and_never_429(make_app):
    app = make_app(RATE_LIMIT="off")
    client, headers = app.test_client(), bearer(issue_key(app))
    answers = [client.get(SESSIONS, headers=headers) for _ in range(50)]
    answers += [client.get(SESSIONS) for _ in range(50)]
    assert [r.status_code for r in answers] == [200] * 50 + [401] * 50
    assert not [name for r in answers for name in RATE_HEADERS + ("Retry-After",)
                if name in r.headers]


@pytest.mark.parametrize("value", ["lots", "10/fortnight"])
def test_a_malformed_rate_limit_fails_at_start_naming_the_setting(make_app, value):
    with pytest.raises(ValueError, match="RATE_LIMIT") as raised:
        make_app(RATE_LIMIT=value)
    assert value in str(raised.value)


@pytest.mark.parametrize("form", ["Bearer {}", "{}", "bearer  {}  "])
def test_the_bucket_key_never_contains_the_credential(limited, form):
    key = issue_key(limited)
    secret = key.split("_", 2)[2]
    with limited.test_request_context(SESSIONS, headers={"Authorization": form.format(key)}):
        bucket = credential_key()
    assert key not in bucket
    assert secret not in bucket
    assert bucket == "key:" + key.split("_")[1]  # the key's public id


def test_the_bucket_key_is_the_same_for_the_bare_and_bearer_forms(limited):
    key = issue_key(limited)
    buckets = set()
    for value in (key, f"Bearer {key}"):
        with limited.test_request_context(SESSIONS, headers={"Authorization": value}):
            buckets.add(credential_key())
    assert len(buckets) == 1


# --- shared counts under a real gunicorn ------------------------------------------------

def require_redis():
    """Skip without a reachable Redis; under CI, fail instead."""
    try:
        import redis
        redis.Redis.from_url(REDIS_URI, socket_connect_timeout=2, socket_timeout=2).ping()
        return
    except ImportError:
        reason = "the redis package is not installed (pip install -e .[dev])"
    except redis.RedisError as error:
        reason = f"Redis is not reachable at {REDIS_URI}: {error}"
    if CI:
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    """gunicorn, 2 workers, RATE_LIMIT=10/minute counted in Redis; yields (it, a fresh key)."""
    require_redis()
    with start_gunicorn(tmp_path_factory.mktemp("ratelimit"), workers=2,
                        RATE_LIMIT=f"{SERVER_LIMIT}/minute",
                        RATE_LIMIT_STORAGE_URI=REDIS_URI) as server:
        yield server, server.create_key("limited")


def test_two_gunicorn_workers_share_the_count_through_redis(redis_server):
    server, key = redis_server

    def get(_):  # no session: a fresh connection each time, so both workers take some
        return requests.get(server.url + SESSIONS, headers=bearer(key),
                            timeout=TIMEOUT).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(get, range(SERVER_REQUESTS)))
    assert (answers.count(200), answers.count(429)) == (
        SERVER_LIMIT, SERVER_REQUESTS - SERVER_LIMIT), server.log()[-2000:]
