"""Stream tokens through a real gunicorn with 2 workers on SQLite.

POST .../stream-tokens gives any key of the session's owner (a read key too) a token that
reads that session's stream as `?access_token=` and nothing else: not another endpoint,
not another session's stream, not in the Authorization header. It expires (a stream opened
before runs on), a changed one is refused, one signed by another database is refused; it
works on every worker; and it is never in the server's log, in an error body or in the
database. (Across two servers on one PostgreSQL database: test_live_postgres.py.)
"""
import base64
import json
import re
import sqlite3
import time

import pytest
import requests

from gensessions.client import StreamError, follow
from helpers import (SESSIONS, TIMEOUT, Api, access_lines, assert_http_error, epoch, events_url,
                     session_url, stream_url, streams_on_both_workers, wait_until)
from servers import start_gunicorn

TOKEN = re.compile(r"^gst_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$")
SETTINGS = {"STREAM_HEARTBEAT_SECONDS": 1, "STREAM_MAX_SECONDS": 30}
MISSING = "sess_" + "x" * 24


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_gunicorn(tmp_path_factory.mktemp("tokens"), workers=2, forbid_traceback=True,
                        **SETTINGS) as server:
        yield server


@pytest.fixture(scope="module")
def api(server):
    return Api(server, "token_user")


@pytest.fixture(scope="module")
def other(server):
    """Another user of the same server."""
    return Api(server, "other_user")


def issue(api, session_id, expect=201):
    answer = api.call("POST", f"{session_url(session_id)}/stream-tokens", expect=expect)
    return answer.json()["token"] if expect == 201 else answer


def token_stream(api, session_id, token, **query):
    """The session's stream read with `token` (no Authorization header)."""
    return api.stream(session_id, anonymous=True, access_token=token, **query)


def test_write_and_read_keys_get_a_token_for_their_own_session_only(api, other, server):
    session_id = api.new_session()["id"]
    reader = Api(server, "token_user", scope="read")
    for holder in (api, reader):
        issued_at = time.time()
        answer = holder.call("POST", f"{session_url(session_id)}/stream-tokens", expect=201)
        body = answer.json()
        assert set(body) == {"token", "expiresAt"}
        assert TOKEN.fullmatch(body["token"]), body
        assert abs(epoch(body["expiresAt"]) - (issued_at + 900)) < 5  # STREAM_TOKEN_TTL
        assert answer.headers["Cache-Control"] == "no-store"
    # Another user's session answers as a missing one does; no credential, 401.
    foreign = other.call("POST", f"{session_url(session_id)}/stream-tokens")
    missing = other.call("POST", f"{session_url(MISSING)}/stream-tokens")
    assert_http_error(foreign, 404)
    assert foreign.json() == missing.json() == api.call(
        "POST", f"{session_url(MISSING)}/stream-tokens").json()
    assert_http_error(api.call("POST", f"{session_url(session_id)}/stream-tokens",
                               anonymous=True), 401)


def test_a_token_reads_its_sessions_stream_on_every_worker(api, server):
    session_id = api.new_session()["id"]
    first = api.append(session_id, "one")
    reader = Api(server, "token_user", scope="read")
    tokens = [issue(api, session_id), issue(reader, session_id)]
    streams = [token_stream(api, session_id, token) for token in tokens]
    on_both = streams_on_both_workers(api, session_id, anonymous=True, access_token=tokens[0])
    streams += list(on_both.values())
    for stream in streams:
        assert stream.status == 200, stream.body
        assert stream.read_events(1) == [first]
        line = access_lines(server.log())
        logged = next(item for item in line if item["request_id"] ==
                      stream.headers["X-Request-Id"])
        assert (logged["user_id"], logged["credential"]) == ("token_user", "stream:token_user")
    second = api.append(session_id, "two")
    final = api.set_status(session_id, "cancelled")
    for stream in streams:
        blocks = [b for b in stream.read_to_close(5) if b["data"] is not None]
        assert [json.loads(b["data"]) for b in blocks[:-1]] == [second] + api.events(
            session_id)[2:]
        assert (blocks[-1]["event"], json.loads(blocks[-1]["data"])) == ("end", final)
    # gensessions.client.follow takes a token too.
    followed = follow(api.url, session_id, tokens[1], token=True)
    assert list(followed) == api.events(session_id)
    assert followed.ending == "end"


def test_a_token_opens_nothing_but_its_sessions_stream(api):
    session_id = api.new_session()["id"]
    api.append(session_id, "one")
    sibling = api.new_session()["id"]  # the same user's other session
    token = issue(api, session_id)
    before = api.call("GET", session_url(session_id), expect=200).json()
    query = {"params": {"access_token": token}}
    # As ?access_token=, on every other endpoint: no credential at all (401).
    for method, path, body in (
            ("GET", session_url(session_id), None),
            ("GET", events_url(session_id), None),
            ("GET", events_url(session_id) + "?wait=1", None),
            ("POST", events_url(session_id), {"type": "info"}),
            ("PATCH", session_url(session_id), {"status": "planning"}),
            ("DELETE", session_url(session_id), None),
            ("POST", f"{session_url(session_id)}/stream-tokens", None),
            ("GET", SESSIONS, None),
            ("POST", SESSIONS, {})):
        answer = api.call(method, path, anonymous=True, json=body, **query)
        assert_http_error(answer, 401)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert token not in answer.text
    # In the Authorization header, nowhere either (the stream included).
    for method, path in (("GET", events_url(session_id) + "/stream"),
                         ("GET", session_url(session_id)), ("GET", events_url(session_id))):
        answer = api.call(method, path, headers={"Authorization": f"Bearer {token}"})
        assert_http_error(answer, 401)
        assert token not in answer.text
    with api.stream(session_id, anonymous=True,
                    headers={"Authorization": f"Bearer {token}"}) as refused:
        assert refused.status == 401
    # Another session's stream, even the same user's: 404, exactly as a missing one.
    with token_stream(api, sibling, token) as foreign, \
            token_stream(api, MISSING, token) as missing:
        assert (foreign.status, missing.status) == (404, 404)
        assert foreign.json() == missing.json()
        assert foreign.headers["Content-Type"] == missing.headers["Content-Type"]
        assert token.encode() not in foreign.body
    assert api.call("GET", session_url(session_id), expect=200).json() == before
    assert len(api.events(session_id)) == 1


@pytest.fixture(scope="module")
def brief(tmp_path_factory):
    """A server whose stream tokens last 1 second."""
    with start_gunicorn(tmp_path_factory.mktemp("brief"), workers=2, forbid_traceback=True,
                        STREAM_TOKEN_TTL=1, **SETTINGS) as server:
        yield Api(server, "token_user")


def test_an_expired_token_is_refused_but_a_stream_opened_before_runs_on(brief):
    api = brief
    session_id = api.new_session()["id"]
    answer = api.call("POST", f"{session_url(session_id)}/stream-tokens", expect=201).json()
    token, expires_at = answer["token"], epoch(answer["expiresAt"])
    streams = streams_on_both_workers(api, session_id, anonymous=True, access_token=token)
    assert time.time() < expires_at, "the streams should open before the token expires"

    def refused():
        with token_stream(api, session_id, token) as again:
            if again.status == 200:
                return None
            return again
    again = wait_until(refused, 5, "the token to expire")
    assert time.time() >= expires_at - 0.05
    assert again.status == 401, again.body
    assert again.headers["WWW-Authenticate"].startswith("Bearer")
    assert token.encode() not in again.body
    # The streams opened before go on: a new event reaches them, keep-alives come.
    event = api.append(session_id, "after the expiry")
    for stream in streams.values():
        assert stream.read_events(1, 5) == [event]
        assert stream.events_until_keep_alive(3) == []
    with pytest.raises(StreamError) as refusal:
        next(follow(api.url, session_id, token, token=True))
    assert refusal.value.status == 401


def forged(token, change):
    """`token` with its payload (a JSON list) changed by `change`, its signature kept."""
    payload, _, signature = token[4:].partition(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    encoded = base64.urlsafe_b64encode(json.dumps(change(fields), separators=(",", ":"))
                                       .encode()).rstrip(b"=").decode()
    return f"gst_{encoded}.{signature}"


def flip(text, index):
    return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1:]


def test_a_changed_or_foreign_token_is_refused(api, other, brief):
    session_id = api.new_session()["id"]
    sibling = api.new_session()["id"]
    theirs = other.new_session()["id"]
    token = issue(api, session_id)
    sibling_token = issue(api, sibling)
    payload, _, signature = token[4:].partition(".")
    # The payload names [user, organization, session, expiry]: each changed, signature kept.
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert fields[0] == "token_user" and fields[2] == session_id
    foreign_database = issue(brief, brief.new_session()["id"])
    candidates = {
        "signature changed": "gst_" + payload + "." + flip(signature, 5),
        "payload changed": "gst_" + flip(payload, 3) + "." + signature,
        "later expiry": forged(token, lambda f: f[:3] + [f[3] + 10**9]),
        "another session": forged(token, lambda f: f[:2] + [sibling] + f[3:]),
        "another user": forged(token, lambda f: ["other_user", f[1], theirs, f[3]]),
        "the other token's signature": f"gst_{payload}.{sibling_token.partition('.')[2]}",
        "no signature": f"gst_{payload}.",
        "truncated": token[:-1],
        "prefix only": "gst_",
        "not a token": "nonsense",
        "an API key": api.key,
        "signed by another database": foreign_database,
        # Not ASCII: compared as text, the signature check itself raised (a 500).
        "a non-ASCII signature": f"gst_{payload}.\u00e9{signature[1:]}",
        "a non-ASCII payload": f"gst_\u00e9{payload}.{signature}",
    }
    assert TOKEN.fullmatch(candidates["later expiry"])
    for name, candidate in candidates.items():
        for target in (session_id, theirs):
            with token_stream(api, target, candidate) as refused:
                assert refused.status == 401, (name, target, refused.body)
                assert refused.headers["WWW-Authenticate"].startswith("Bearer")
                assert candidate.encode() not in refused.body
                assert signature.encode() not in refused.body
    # The real one still works.
    with token_stream(api, session_id, token) as accepted:
        assert accepted.status == 200


def sqlite_text(path):
    """Every row of every table of the SQLite database at `path`, as SQL text."""
    connection = sqlite3.connect(path)
    try:
        return "\n".join(connection.iterdump())
    finally:
        connection.close()


def test_a_token_is_never_logged_echoed_or_stored(api, other, server):
    session_id = api.new_session()["id"]
    api.append(session_id, "one")
    tokens = [issue(api, session_id) for _ in range(3)]
    marker = "querymarker" + tokens[0][-8:]
    answers = []
    for token in tokens:
        with token_stream(api, session_id, token, marker=marker) as stream:
            assert stream.read_events(1)
        with token_stream(api, MISSING, token, marker=marker) as missing:
            answers.append(missing.body)
        for candidate in (token[:-2], token + "x"):
            with token_stream(api, session_id, candidate, marker=marker) as refused:
                answers.append(refused.body)
        for method, path in (("GET", session_url(session_id)),
                             ("GET", events_url(session_id))):
            answers.append(api.call(method, path, anonymous=True,
                                    params={"access_token": token, "marker": marker}).text)
            answers.append(api.call(method, path, headers={
                "Authorization": f"Bearer {token}"}).text)
        answers.append(requests.get(stream_url(api.url, session_id, access_token=token[:-3]),
                                    timeout=TIMEOUT).text)
    log = server.log()
    stored = sqlite_text(server.db_path)
    assert "server_secret" in stored and "stream-token" in stored  # the signing key is there
    secrets = [item for token in tokens
               for item in (token, token.partition(".")[2], token[:-2], token[:-3])]
    for secret in secrets:
        assert secret not in log, "a token is in the server's log"
        assert secret not in stored, "a token is in the database"
        assert not [body for body in answers if secret in str(body)], "a token in an answer"
    assert marker not in log and "access_token" not in log, "a query string was logged"
    assert "?" not in "".join(line["path"] for line in access_lines(log))
