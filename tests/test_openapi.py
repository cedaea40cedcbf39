"""The OpenAPI document: valid, complete, equal to the committed copy; the /docs page."""
import json
import pathlib
import re

import pytest
from openapi_spec_validator import validate

from gensessions.schemas import examples
from gensessions.schemas.errors import CODES

ROOT = pathlib.Path(__file__).resolve().parent.parent
SESSIONS = "/v1/products/generation/sessions"
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
        if rule.endpoint.startswith(("swagger_ui.", "static")):
            continue
        path = re.sub(r"<([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (method.lower(), path) in OPERATIONS, (method, path)


@pytest.mark.parametrize("method, path", [key for key in OPERATIONS if key[1].startswith("/v1/p")])
def test_api_operations_need_the_bearer_credential(document, method, path):
    op = document["paths"][path][method]
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
    ("get", SESSION, {"200", "400", "401", "429", "404", "500", "503"}),
    ("patch", SESSION, {"200", "400", "401", "429", "403", "404", "409", "412", "413", "415", "500",
                        "503"}),
    ("delete", SESSION, {"204", "400", "401", "429", "403", "404", "412", "500", "503"}),
    ("post", EVENTS, {"201", "400", "401", "429", "403", "404", "409", "413", "415", "500", "503"}),
    ("get", EVENTS, {"200", "400", "401", "429", "404", "500", "503"}),
    ("get", "/healthz", {"200", "503"}),
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
        "getSession", "updateSession", "deleteSession", "appendEvent", "listEvents"}


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
