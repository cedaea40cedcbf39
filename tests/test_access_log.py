"""The access log: one JSON line per request on `gensessions.access` (method, path, status,
duration_ms, request_id, user_id, credential's public name, remote_addr, pid), never the
credential itself nor the query string; and the same on a real gunicorn's stderr."""
import json
import logging
import uuid

import pytest
import requests

from helpers import ACCESS, SESSIONS, TIMEOUT, wait_until
from servers import start_gunicorn

FIELDS = {"method", "path", "status", "duration_ms", "request_id", "user_id", "credential",
          "remote_addr", "pid"}


def access_lines(caplog):
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == ACCESS]


def one_line(caplog, response):
    """The one access line the request wrote, checked against its response."""
    lines = access_lines(caplog)
    assert len(lines) == 1, lines
    line = lines[0]
    assert set(line) == FIELDS
    assert line["status"] == response.status_code
    assert line["request_id"] == response.headers["X-Request-Id"]
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    return line


@pytest.fixture
def access(caplog):
    caplog.set_level(logging.INFO, logger=ACCESS)
    return caplog


@pytest.fixture
def user(make_key):
    return make_key(user_id="logged_user")


# --- one line per request, for every kind of answer -----------------------------------------

def test_201_is_one_line_with_the_callers_user_id(client, user, access):
    response = client.post(SESSIONS, json={}, headers=user)
    line = one_line(access, response)
    assert line["status"] == 201
    assert (line["method"], line["path"], line["user_id"]) == ("POST", SESSIONS, "logged_user")
    assert line["credential"] == "key:" + user["Authorization"].split("_")[1]
    assert line["remote_addr"] == "127.0.0.1"


def test_200_is_one_line_with_the_callers_user_id(client, user, access):
    response = client.get(SESSIONS, headers=user)
    line = one_line(access, response)
    assert (line["method"], line["status"], line["user_id"]) == ("GET", 200, "logged_user")


def test_401_is_one_line_with_a_null_user_id(client, access):
    response = client.get(SESSIONS)
    line = one_line(access, response)
    assert (line["status"], line["user_id"], line["path"]) == (401, None, SESSIONS)
    assert line["credential"] is None


def test_404_is_one_line_with_the_callers_user_id(client, user, access):
    path = f"{SESSIONS}/sess_{'x' * 24}"
    response = client.get(path, headers=user)
    line = one_line(access, response)
    assert (line["status"], line["user_id"], line["path"]) == (404, "logged_user", path)


def test_404_of_an_unknown_route_is_one_line(client, access):
    response = client.delete("/nowhere")
    line = one_line(access, response)
    assert (line["method"], line["status"], line["user_id"]) == ("DELETE", 404, None)


def test_400_is_one_line_with_the_path_without_its_query(client, user, access):
    response = client.get(SESSIONS + "?limit=abc", headers=user)
    line = one_line(access, response)
    assert (line["status"], line["path"], line["user_id"]) == (400, SESSIONS, "logged_user")


def test_413_is_one_line(client, user, access):
    response = client.post(SESSIONS, data=b" " * (1024 * 1024 + 1),
                           headers={**user, "Content-Type": "application/json"})
    line = one_line(access, response)
    assert (line["status"], line["method"], line["user_id"]) == (413, "POST", "logged_user")


def test_request_id_sent_by_the_client_is_logged(client, user, access):
    response = client.get(SESSIONS, headers={**user, "X-Request-Id": "client-chosen-42"})
    assert one_line(access, response)["request_id"] == "client-chosen-42"


def test_each_request_writes_exactly_one_line(client, user, access):
    responses = [client.get(SESSIONS, headers=user), client.get(SESSIONS),
                 client.get("/healthz"), client.post(SESSIONS, json={"x": 1}, headers=user)]
    lines = access_lines(access)
    assert [line["request_id"] for line in lines] == [
        r.headers["X-Request-Id"] for r in responses]
    assert [line["status"] for line in lines] == [200, 401, 200, 400]


def test_each_access_record_is_one_line_of_json(client, user, access):
    client.post(SESSIONS, json={"prd": {"title": "line\nbreak"}}, headers=user)
    client.get(SESSIONS + "/evil%0Apath", headers=user)
    messages = [record.getMessage() for record in access.records if record.name == ACCESS]
    assert len(messages) == 2
    assert not [message for message in messages if "\n" in message]


# --- what never appears in any log record ----------------------------------------------------

def all_records(caplog):
    return "\n".join(f"{record.name} {record.getMessage()} {record.args!r} {record.exc_text}"
                     for record in caplog.records)


def test_no_record_holds_the_credential(client, make_key, caplog):
    caplog.set_level(logging.DEBUG)
    headers = make_key()
    key = headers["Authorization"].removeprefix("Bearer ")
    created = client.post(SESSIONS, json={}, headers=headers)
    client.get(f"{SESSIONS}/{created.json['id']}", headers={"Authorization": key})
    client.get(SESSIONS, headers={"Authorization": key + "x"})  # a wrong secret: 401
    client.post(SESSIONS, data=b"{", headers={**headers, "Content-Type": "application/json"})
    text = all_records(caplog)
    assert access_lines(caplog), "no access record captured"
    assert key not in text
    assert key.split("_", 2)[2] not in text
    assert "Bearer" not in text


def test_no_record_holds_an_unknown_credential(client, caplog):
    caplog.set_level(logging.DEBUG)
    token = "gsk_0123456789ab_" + "S3cr3tT0kenThatMustNotLeak" * 2
    response = client.get(SESSIONS, headers={"Authorization": token})
    assert response.status_code == 401
    assert "S3cr3tT0ken" not in all_records(caplog)


def test_no_record_holds_the_query_string(client, auth_headers, caplog):
    caplog.set_level(logging.DEBUG)
    responses = [client.get(SESSIONS + "?limit=QuerySecret1", headers=auth_headers),
                 client.get(SESSIONS + "?cursor=QuerySecret2", headers=auth_headers),
                 client.get(SESSIONS + "?apikey=QuerySecret3", headers=auth_headers),
                 client.get("/healthz?token=QuerySecret4")]
    assert [r.status_code for r in responses] == [400, 400, 200, 200]
    text = all_records(caplog)
    assert len(access_lines(caplog)) == 4
    assert "QuerySecret" not in text


# --- under a real gunicorn ----------------------------------------------------------------

def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Run a gunicorn with 2 workers, make a mix of requests, return (their ids, key, log).

    The log is read from where it stood once the server was up and the key was created, so
    it holds the lines of these requests and nothing else the test made.
    """
    with start_gunicorn(tmp_path_factory.mktemp("access"), workers=2) as server:
        key = server.create_key("gunicorn_user")
        start = server.log_size()
        calls = [("POST", SESSIONS, {"Authorization": f"Bearer {key}"}, 201),
                 ("GET", SESSIONS + "?limit=5&secret=QuerySecret", {"Authorization": key}, 200),
                 ("GET", SESSIONS, {}, 401),
                 ("GET", SESSIONS, {"Authorization": key + "x"}, 401),
                 ("GET", f"{SESSIONS}/sess_{'x' * 24}", {"Authorization": f"Bearer {key}"}, 404),
                 ("GET", "/healthz", {}, 200)] * 3
        sent = []
        for method, path, headers, status in calls:
            request_id = f"access-{uuid.uuid4().hex}"
            # no session: a fresh connection each time, so both workers take some
            response = requests.request(method, server.url + path,
                                        json={} if method == "POST" else None,
                                        headers={**headers, "X-Request-Id": request_id},
                                        timeout=TIMEOUT)
            assert response.status_code == status, (path, response.text)
            sent.append((request_id, method, path.partition("?")[0], status))
        wait_until(lambda: len(json_lines(server.log(start))) >= len(sent),
                   10, "the access lines in the server's log")
        yield sent, key, server.log(start), server


def test_gunicorn_writes_one_json_line_per_request(served):
    sent, _, text, _ = served
    lines = json_lines(text)
    assert sorted((line["request_id"], line["method"], line["path"], line["status"])
                  for line in lines) == sorted(sent)
    assert {frozenset(line) for line in lines} == {frozenset(FIELDS)}


def test_gunicorn_access_lines_name_the_authenticated_user(served):
    _, _, text, _ = served
    users = {(line["status"], line["user_id"]) for line in json_lines(text)}
    assert users == {(201, "gunicorn_user"), (200, "gunicorn_user"), (401, None),
                     (404, "gunicorn_user"), (200, None)}


def test_gunicorn_log_never_holds_the_key_or_the_query(served):
    _, key, _, server = served
    whole = server.log()
    assert key not in whole
    assert key.split("_", 2)[2] not in whole
    assert "QuerySecret" not in whole
