"""The OpenAPI document: valid, complete, equal to the committed copy; the /docs page."""
import json
import re

import pytest
from openapi_spec_validator import validate

from gensessions.schemas import examples
from gensessions.schemas.errors import CODES
from helpers import ROOT, SESSIONS

SESSION = SESSIONS + "/{session_id}"
EVENTS = SESSION + "/events"
OPERATIONS = {
    ("post", SESSIONS): "createSession",
    ("get", SESSIONS): "listSessions",
    ("get", SESSION): "getSession",
    ("patch", SESSION): "updateSession",
    ("delete", SESSION): "deleteSession",
    ("post", EVENTS): "appendEvent",
    ("get", EVENTS): "listEvents",
    ("get", EVENTS + "/stream"): "streamEvents",
    ("post", SESSION + "/stream-tokens"): "createStreamToken",
    ("get", "/healthz"): "healthz",
    ("get", "/v1/openapi.json"): "openapiDocument",
}


@pytest.fixture
def document(client):
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.content_type == "application/json; charset=utf-8"
    return response.json


def resolve(document, item):
    """Follow one local $ref."""
    while "$ref" in item:
        node = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def test_document_is_valid_openapi(document):
    validate(document)
    assert document["openapi"] == "3.0.3"


def test_document_needs_no_credential(client):
    assert client.get("/v1/openapi.json").status_code == 200


def test_committed_copy_equals_the_live_document(document):
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert committed == document, "run: .venv/bin/flask --app wsgi openapi -o docs/openapi.json"


def test_cli_writes_the_live_document(runner, document, tmp_path):
    target = tmp_path / "openapi.json"
    result = runner.invoke(args=["openapi", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert json.loads(target.read_text(encoding="utf-8")) == document


def test_every_route_is_documented_with_its_operation_id(app, document):
    documented = {(method, path): op["operationId"]
                  for path, item in document["paths"].items() for method, op in item.items()}
    assert documented == OPERATIONS
    for rule in app.url_map.iter_rules():
        blueprint = app.blueprints.get(rule.endpoint.rpartition(".")[0])
        if rule.endpoint == "static" or not getattr(blueprint, "in_openapi", True):
            continue  # Flask's static files, the docs page and the viewer: pages, not the API
        path = re.sub(r"<([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method.lower(), path) in OPERATIONS, (method, path)


@pytest.mark.parametrize("method, path", [key for key in OPERATIONS if key[1].startswith("/v1/p")])
def test_api_operations_need_the_bearer_credential(document, method, path):
    op = document["paths"][path][method]
    if path.endswith("/events/stream"):  # the bearer credential, or a stream token
        assert op["security"] == [{"bearerAuth": []}, {"streamToken": []}]
    else:
        assert "security" not in op  # the document-wide bearerAuth applies
    assert document["security"] == [{"bearerAuth": []}]
    assert "401" in op["responses"] and "500" in op["responses"]
    assert op["summary"]


@pytest.mark.parametrize("method, path", [("get", "/healthz"), ("get", "/v1/openapi.json")])
def test_public_operations_need_no_credential(document, method, path):
    assert document["paths"][path][method]["security"] == []


def test_bearer_security_scheme(document):
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"


@pytest.mark.parametrize("method, path, statuses", [
    ("post", SESSIONS, {"201", "400", "401", "429", "403", "409", "413", "415", "500", "503"}),
    ("get", SESSIONS, {"200", "400", "401", "429", "500", "503"}),
    # 405: a session id holding `/` (out of its pattern) can make the URL another route's
    # (the stream-tokens route takes only POST, the events route no PATCH or DELETE).
    ("get", SESSION, {"200", "400", "401", "429", "404", "405", "500", "503"}),
    ("patch", SESSION, {"200", "400", "401", "429", "403", "404", "405", "409", "412", "413",
                        "415", "500", "503"}),
    ("delete", SESSION, {"204", "400", "401", "429", "403", "404", "405", "412", "500", "503"}),
    # ... and an empty one the session route's.
    ("post", EVENTS, {"201", "400", "401", "429", "403", "404", "405", "409", "413", "415", "500",
                      "503"}),
    ("get", EVENTS, {"200", "400", "401", "429", "404", "500", "503"}),
    ("get", EVENTS + "/stream", {"200", "204", "400", "401", "429", "404", "500", "503"}),
    ("post", SESSION + "/stream-tokens", {"201", "400", "401", "429", "404", "405", "500",
                                          "503"}),
    ("get", "/healthz", {"200", "503"}),
    ("get", "/v1/openapi.json", {"200"}),
])
def test_every_answer_an_operation_can_give_is_documented(document, method, path, statuses):
    assert set(document["paths"][path][method]["responses"]) == statuses


def test_every_response_documents_x_request_id(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                headers = resolve(document, response)["headers"]
                assert "X-Request-Id" in headers, (method, path, status)


@pytest.mark.parametrize("method, path, status, header", [
    ("post", SESSIONS, "201", "ETag"), ("post", SESSIONS, "201", "Location"),
    ("get", SESSION, "200", "ETag"), ("patch", SESSION, "200", "ETag"),
    ("post", SESSIONS, "201", "Idempotent-Replayed"),
    ("post", EVENTS, "201", "Idempotent-Replayed"),
])
def test_success_headers_are_documented(document, method, path, status, header):
    assert header in document["paths"][path][method]["responses"][status]["headers"]


def parameters(document, method, path):
    op = document["paths"][path][method]
    resolved = [resolve(document, p) for p in op.get("parameters", [])]
    return {(p["in"], p["name"]): p for p in resolved}


@pytest.mark.parametrize("method, path", [("patch", SESSION), ("delete", SESSION)])
def test_if_match_is_documented(document, method, path):
    assert ("header", "If-Match") in parameters(document, method, path)


@pytest.mark.parametrize("method, path", [("post", SESSIONS), ("post", EVENTS)])
def test_idempotency_key_is_documented(document, method, path):
    schema = parameters(document, method, path)[("header", "Idempotency-Key")]["schema"]
    assert (schema["minLength"], schema["maxLength"]) == (1, 255)


def test_list_query_parameters_carry_the_contract_bounds(document):
    params = parameters(document, "get", SESSIONS)
    assert params[("query", "limit")]["schema"]["minimum"] == 1
    assert params[("query", "limit")]["schema"]["maximum"] == 100
    assert params[("query", "offset")]["schema"]["minimum"] == 0
    assert params[("query", "status")]["schema"]["enum"] == [
        "intake", "planning", "generating", "assembling", "completed", "failed", "cancelled"]
    assert ("query", "cursor") in params
    events = parameters(document, "get", EVENTS)
    assert events[("query", "limit")]["schema"]["maximum"] == 1000
    assert ("query", "after") in events


def test_session_schema_has_the_status_enum_and_camel_case_fields(document):
    session = document["components"]["schemas"]["Session"]
    assert session["properties"]["status"]["enum"][0] == "intake"
    assert {"userId", "organizationId", "productObjectHash", "assemblyState", "createdAt",
            "expiresAt"} <= set(session["properties"])
    assert session["properties"]["createdAt"]["format"] == "date-time"
    assert session["properties"]["prd"]["nullable"] is True


def test_validation_error_documents_the_details_and_their_codes(document):
    response = resolve(document, {"$ref": "#/components/responses/Error400"})
    schema = resolve(document, response["content"]["application/json"]["schema"])
    assert "details" in schema["required"]
    detail = resolve(document, schema["properties"]["details"]["items"])
    assert detail["properties"]["code"]["enum"] == list(CODES)
    assert set(detail["required"]) == {"code", "message", "path"}


def test_request_bodies_reject_unknown_keys_and_show_the_vendor_examples(document):
    create = document["paths"][SESSIONS]["post"]["requestBody"]["content"]["application/json"]
    assert create["example"] == examples.CREATE_SESSION
    patch = document["paths"][SESSION]["patch"]["requestBody"]["content"]["application/json"]
    assert patch["example"] == examples.UPDATE_SESSION


def test_create_links_to_the_operations_on_the_new_session(document):
    links = document["paths"][SESSIONS]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} == {
        "getSession", "updateSession", "deleteSession", "appendEvent", "listEvents",
        "streamEvents", "createStreamToken"}


def test_docs_redirects_to_the_page(client):
    response = client.get("/docs")
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/docs/")


def test_docs_page_uses_only_its_own_assets(client):
    response = client.get("/docs/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "/v1/openapi.json" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)
    assets = re.findall(r"""(?:src|href)=["'](/docs/[^"']+)["']""", html)
    assert "/docs/swagger-ui-bundle.js" in assets
    for asset in assets:
        with client.get(asset) as served:
            assert served.status_code == 200, asset


# --- what the server accepts, exactly (issue 14) ------------------------------------------

def schema_of(document, method, path, location, name):
    return resolve(document, parameters(document, method, path)[(location, name)]["schema"])


def matches(schema, value):
    """Whether a string `value` meets a string schema's length and pattern. The document's
    patterns are anchored `^...$` and otherwise read the same in ECMA-262 and Python, but for
    `$`, which Python also matches before a final newline: hence fullmatch."""
    pattern = schema["pattern"]
    assert pattern.startswith("^") and pattern.endswith("$"), pattern
    return (schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value))
            and re.fullmatch(pattern[1:-1], value) is not None)


@pytest.mark.parametrize("method, path, body_required", [
    ("post", SESSIONS, False), ("patch", SESSION, False), ("post", EVENTS, True)])
def test_request_bodies_are_required_where_the_server_requires_them(
        document, client, auth_headers, method, path, body_required):
    assert document["paths"][path][method]["requestBody"]["required"] is body_required
    url = path.replace("{session_id}", client.post(SESSIONS, headers=auth_headers).json["id"])
    response = client.open(url, method=method.upper(), headers=auth_headers)
    assert (response.status_code == 400) is body_required, response.json


CURSORS = ["", "1.0", "+1", "1", "9" * 20, "1.", ".sess_a", "1.sess_a", "0.a",
           "1795425330123.sess_x", "1" * 15 + ".a", "1" * 16 + ".a", "1." + "a" * 64,
           "1." + "a" * 65, "1.a.b", "1.a b", "1.a\x00", "\u0661.a", "MTc5NTQyNTMzMDEyMy5zZXNzX2E"]
AFTERS = ["", "1.0", "+1", "-1", "0", "1", "9" * 18, "9" * 19, "9" * 20, "evt_", "evt_x",
          "evt_" + "a" * 60, "evt_" + "a" * 61, "evt_a.b", "sess_abc", "\u0661", " 1", "1\n"]


@pytest.mark.parametrize("value", CURSORS)
def test_cursor_pattern_is_what_the_server_accepts(document, client, auth_headers, value):
    schema = schema_of(document, "get", SESSIONS, "query", "cursor")
    response = client.get(SESSIONS, query_string={"cursor": value}, headers=auth_headers)
    assert response.status_code in (200, 400)
    assert matches(schema, value) is (response.status_code == 200), response.json


@pytest.mark.parametrize("value", AFTERS)
def test_after_pattern_is_what_the_server_accepts(document, client, auth_headers, value):
    schema = schema_of(document, "get", EVENTS, "query", "after")
    url = f"{SESSIONS}/{client.post(SESSIONS, headers=auth_headers).json['id']}/events"
    response = client.get(url, query_string={"after": value}, headers=auth_headers)
    # A well-formed event id of no event of this session is a 400 of its own (data, not form).
    malformed = response.status_code == 400 and response.json["details"][0]["message"] == (
        "Invalid after")
    assert matches(schema, value) is not malformed, response.json


def test_the_cursor_of_a_page_meets_its_own_pattern(document, client, auth_headers):
    for _ in range(2):
        client.post(SESSIONS, headers=auth_headers)
    cursor = client.get(f"{SESSIONS}?limit=1", headers=auth_headers).json["pagination"][
        "nextCursor"]
    assert matches(schema_of(document, "get", SESSIONS, "query", "cursor"), cursor)
    assert client.get(SESSIONS, query_string={"cursor": cursor},
                      headers=auth_headers).status_code == 200


@pytest.mark.parametrize("code", range(256), ids=lambda code: f"U+{code:04X}")
def test_idempotency_key_pattern_is_what_the_server_accepts(document, client, auth_headers,
                                                            code):
    schema = schema_of(document, "post", SESSIONS, "header", "Idempotency-Key")
    for key in (f"a{chr(code)}a", chr(code)):
        try:
            response = client.post(SESSIONS, headers={**auth_headers, "Idempotency-Key": key})
        except ValueError:  # werkzeug will not send a header with a newline
            assert chr(code) in "\r\n"
            continue
        assert response.status_code in (201, 400)
        assert matches(schema, key) is (response.status_code == 201), (key, response.json)


@pytest.mark.parametrize("form, accepted", [
    ("{}", True), ('"x", {}', True), ('{}, "x"', True), ('"x",,{}', True), (', {} ,', True),
    ("*", True), ("W/{}", False), ('"x"', False), ("{} junk", False), ("bare", False),
    ("*, {}", False), ('{}"x"', False)])
def test_if_match_is_honoured_only_in_its_documented_form(document, client, auth_headers, form,
                                                          accepted):
    schema = schema_of(document, "patch", SESSION, "header", "If-Match")
    created = client.post(SESSIONS, headers=auth_headers)
    etag = created.headers["ETag"]
    value = form.replace("{}", etag) if form != "bare" else etag.strip('"')
    response = client.patch(f"{SESSIONS}/{created.json['id']}", json={},
                            headers={**auth_headers, "If-Match": value})
    assert response.status_code == (200 if accepted else 412)
    if accepted:
        assert matches(schema, value)
    else:
        assert response.status_code == 412  # well formed (stale or weak) or not: 412


def test_412_and_405_are_documented_with_their_headers(document):
    responses = document["components"]["responses"]
    assert "If-Match" in responses["Error412"]["description"]
    assert responses["Error405"]["headers"]["Allow"] == {"$ref": "#/components/headers/Allow"}
    assert document["components"]["headers"]["Allow"]["required"] is True


def test_every_component_is_used(document):
    text = json.dumps(document)
    for kind, items in document["components"].items():
        if kind == "securitySchemes":
            continue
        for name in items:
            assert f'"#/components/{kind}/{name}"' in text, (kind, name)


def request_strings(document):
    """(where, schema) of every string a request may carry in its body or its query."""
    found = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                schema = resolve(document, body["schema"])
                found += [((method, path, name), prop)
                          for name, prop in schema["properties"].items()]
            found += [((method, path, p["name"]), p["schema"])
                      for p in map(lambda p: resolve(document, p), op.get("parameters", []))
                      if p["in"] == "query"]
    return [(where, schema) for where, schema in found if schema.get("type") == "string"]


def test_request_strings_exclude_nul_or_have_a_stricter_pattern(document):
    strings = request_strings(document)
    assert len(strings) >= 10
    for where, schema in strings:
        if "enum" in schema:
            continue
        assert "pattern" in schema, where
        assert not matches(schema, "a\x00"), where


def test_free_form_objects_state_their_rules(document):
    prd = document["components"]["schemas"]["SessionCreate"]["properties"]["prd"]
    assert "NUL" in prd["description"] and "2^64-1" in prd["description"]


def test_integers_have_a_format(document):
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "integer":
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)
    integers = list(walk(document))
    assert integers and all(node.get("format") in ("int32", "int64") for node in integers)
    assert document["components"]["schemas"]["Event"]["properties"]["sequence"]["format"] == (
        "int64")


def test_session_ids_in_paths_have_the_id_pattern(document):
    schema = schema_of(document, "get", SESSION, "path", "session_id")
    assert matches(schema, "sess_1234567890abcdefghijklmn")
    assert not matches(schema, "a/events") and not matches(schema, "")


def test_the_create_example_is_what_a_create_answers(document, client, auth_headers):
    response = document["paths"][SESSIONS]["post"]["responses"]["201"]
    example = response["content"]["application/json"]["example"]
    assert example["status"] == "intake"
    answered = client.post(SESSIONS, json=examples.CREATE_SESSION, headers=auth_headers).json
    assert set(example) == set(answered)
    for name in ("status", "prd", "plan", "productObject", "productObjectHash", "assemblyState",
                 "catalogVersion", "schemaVersion"):
        assert example[name] == answered[name], name


def test_the_document_answer_is_typed(document):
    schema = document["paths"]["/v1/openapi.json"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]
    assert schema["additionalProperties"] is True
    assert {"openapi", "info", "paths"} <= set(schema["required"])


def test_tags_come_from_the_blueprints(document):
    tags = {tag["name"]: tag.get("description") for tag in document["tags"]}
    assert list(tags) == ["sessions", "events", "live", "operations"]
    assert tags["sessions"].startswith("Generation sessions")
    assert tags["events"].startswith("A session's append-only event log")
    assert tags["live"] == "Follow a session's events as they happen"
