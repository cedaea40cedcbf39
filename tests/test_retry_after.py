"""Retry-After only where it means something: on 429 (the limiter's seconds to wait) and on
503 (its own `1`), never on the answers the rate limit lets through (issue 14: every 200
carried Flask-Limiter's `Retry-After: 60`).

The apps here come from the `make_app` fixture, rate-limited (unlike the `app` fixture's).
"""
import pytest

from helpers import SESSIONS, bearer, issue_key

LIMITED = {"RATE_LIMIT": "3/minute"}


@pytest.fixture
def limited(make_app):
    return make_app(**LIMITED)


@pytest.fixture
def headers(limited):
    return bearer(issue_key(limited))


def test_answers_within_the_limit_carry_no_retry_after(limited, headers):
    client = limited.test_client()
    created = client.post(SESSIONS, json={}, headers=headers)
    answers = [created, client.get(f"{SESSIONS}/{created.json['id']}", headers=headers),
               client.get(f"{SESSIONS}/sess_missing", headers=headers)]
    assert [response.status_code for response in answers] == [201, 200, 404]
    for response in answers:
        assert "Retry-After" not in response.headers
        assert response.headers["RateLimit-Remaining"].isdigit()  # the other headers stay


def test_a_refused_credential_gets_no_retry_after(limited):
    response = limited.test_client().get(SESSIONS)
    assert response.status_code == 401
    assert "Retry-After" not in response.headers


def test_429_carries_retry_after(limited, headers):
    client = limited.test_client()
    statuses = [client.get(SESSIONS, headers=headers).status_code for _ in range(3)]
    response = client.get(SESSIONS, headers=headers)
    assert statuses + [response.status_code] == [200, 200, 200, 429]
    assert 0 < int(response.headers["Retry-After"]) <= 60
    assert "X-Gensessions-Limiter-Retry-After" not in response.headers


def test_503_keeps_its_own_retry_after_under_the_rate_limit(make_app, tmp_path):
    # A database file in a folder that does not exist: every query fails, the API answers 503.
    app = make_app(DATABASE_URL=str(tmp_path / "missing" / "test.db"), **LIMITED)
    response = app.test_client().get(SESSIONS, headers=bearer("gsk_a_b"))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"  # the limiter turned it into ~60 before
