"""A Python client generated from the live OpenAPI document drives a real gunicorn.

openapi-python-client reads GET /v1/openapi.json as served; the generated package is
imported under a unique name and its sync / sync_detailed functions create, patch, append
to and read back a session, so the document's schemas, parameters and answers are checked
against what the service really sends.
"""
import importlib
import json
import pathlib
import re
import subprocess
import sys
import uuid

import pytest

from helpers import TIMEOUT, operations

GENERATOR = pathlib.Path(sys.executable).parent / "openapi-python-client"


# --- a real gunicorn (conftest's `server`) --------------------------------------------------

@pytest.fixture(scope="module")
def key(server):
    return server.create_key("client_user", org_id="client_org")


# --- the generated package ------------------------------------------------------------------

@pytest.fixture(scope="module")
def generated(server, served_document, tmp_path_factory):
    """Generate the client from the served document; yield (package, generator output).

    With --meta none the output folder is the package itself; its name is unique so that
    it cannot shadow or be shadowed by anything importable, and it is dropped from
    sys.modules and sys.path afterwards.
    """
    assert GENERATOR.exists(), f"{GENERATOR} is missing: run `make dev-install`"
    folder = tmp_path_factory.mktemp("client")
    doc_path = folder / "openapi.json"
    doc_path.write_text(json.dumps(served_document))
    # No post hooks: they would run ruff from PATH, which is formatting only, and slow.
    config_path = folder / "config.yaml"
    config_path.write_text("post_hooks: []\n")
    name = f"gensessions_client_{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(doc_path), "--output-path",
         str(folder / name), "--meta", "none", "--config", str(config_path)],
        cwd=folder, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert (folder / name / "__init__.py").exists(), output
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(name), output
    finally:
        sys.path.remove(str(folder))
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def load(package, dotted):
    return importlib.import_module(f"{package.__name__}.{dotted}")


def snake(operation_id):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


@pytest.fixture(scope="module")
def api(generated, server, key):
    """An authenticated generated client and the modules the tests call."""
    package, _ = generated
    url = server.url
    client = package.AuthenticatedClient(base_url=url, token=key, timeout=TIMEOUT)
    modules = {name: load(package, f"api.{name}") for name in (
        "sessions.create_session", "sessions.update_session", "sessions.get_session",
        "events.append_event", "events.list_events")}
    with client:
        yield client, modules, package


def test_generator_reports_no_warnings_about_the_document(generated):
    _, output = generated
    assert "warning" not in output.lower(), output
    assert "error" not in output.lower(), output


def test_every_operation_has_a_generated_function(generated, served_document):
    package, _ = generated
    operation_ids = [(operation["tags"][0], operation["operationId"])
                     for _, _, operation in operations(served_document)]
    assert len(operation_ids) == 11
    for tag, operation_id in operation_ids:
        module = load(package, f"api.{tag}.{snake(operation_id)}")
        # sync/asyncio (parsed body only) exist only where the 200 declares a body schema
        for function in ("sync_detailed", "asyncio_detailed"):
            assert callable(getattr(module, function, None)), (operation_id, function)


def test_openapi_document_through_the_generated_client(generated, server, served_document):
    package, _ = generated
    url = server.url
    with package.Client(base_url=url, timeout=TIMEOUT) as client:
        served = load(package, "api.operations.openapi_document").sync_detailed(client=client)
    assert served.status_code == 200
    assert served.parsed is not None and served.parsed.to_dict() == served_document
    assert json.loads(served.content) == served_document


def test_healthz_through_the_generated_client(generated, server):
    package, _ = generated
    url = server.url
    with package.Client(base_url=url, timeout=TIMEOUT) as client:
        health = load(package, "api.operations.healthz").sync(client=client)
    assert isinstance(health, package.models.Health), health
    assert health.status == package.models.HealthStatus.OK
    assert health.purge.runs == 0
    assert health.purge.last_trigger is None


def test_session_lifecycle_through_the_generated_client(api):
    client, api_modules, package = api
    models = package.models
    create = api_modules["sessions.create_session"]
    update = api_modules["sessions.update_session"]
    get = api_modules["sessions.get_session"]
    append = api_modules["events.append_event"]
    list_events = api_modules["events.list_events"]

    # createSession, with a PRD
    prd = {"title": "Lamp", "features": ["dimmable", "usb-c"], "budget": 40}
    created = create.sync_detailed(client=client, body=models.SessionCreate(
        prd=models.SessionCreatePrdType0.from_dict(prd), catalog_version="cat-1"))
    assert created.status_code == 201, created.content
    session = created.parsed
    assert isinstance(session, models.Session), created.content
    assert re.fullmatch(r"sess_[A-Za-z0-9_-]{20,}", session.id)
    assert session.status == models.SessionStatus.INTAKE
    assert session.prd.to_dict() == prd
    assert (session.user_id, session.organization_id) == ("client_user", "client_org")
    assert session.catalog_version == "cat-1"
    assert session.plan is None
    assert created.headers["Location"].endswith(f"/sessions/{session.id}")

    # updateSession: status planning and a plan, guarded by the ETag just received
    plan = {"steps": ["outline", "draft"], "model": "m-1"}
    patched = update.sync_detailed(session.id, client=client, if_match=created.headers["ETag"],
                                   body=models.SessionPatch(
                                       status=models.SessionPatchStatus.PLANNING,
                                       plan=models.SessionPatchPlanType0.from_dict(plan)))
    assert patched.status_code == 200, patched.content
    assert isinstance(patched.parsed, models.Session), patched.content
    assert patched.parsed.status == models.SessionStatus.PLANNING
    assert patched.parsed.plan.to_dict() == plan
    assert patched.parsed.prd.to_dict() == prd
    assert patched.parsed.updated_at >= session.updated_at

    # appendEvent
    appended = append.sync(session.id, client=client, body=models.EventCreate(
        type_="progress", message="outline ready", stage="planning",
        payload=models.EventCreatePayloadType0.from_dict({"percent": 25})))
    assert isinstance(appended, models.Event), appended
    assert (appended.session_id, appended.sequence, appended.type_) == (session.id, 2,
                                                                        "progress")

    # getSession: the fields and both events, oldest first
    detail = get.sync(session.id, client=client)
    assert isinstance(detail, models.SessionDetail), detail
    assert detail.id == session.id
    assert detail.status == models.SessionDetailStatus.PLANNING
    assert detail.prd.to_dict() == prd
    assert detail.plan.to_dict() == plan
    assert detail.catalog_version == "cat-1"
    assert detail.product_object is None and detail.assembly_state is None
    assert detail.created_at == session.created_at
    assert detail.expires_at > detail.created_at
    assert [(e.sequence, e.type_) for e in detail.events] == [(1, "status.changed"),
                                                              (2, "progress")]
    changed, progress = detail.events
    assert changed.stage == "planning"
    assert changed.message == "Status changed from intake to planning"
    assert changed.payload.to_dict() == {"from": "intake", "to": "planning"}
    assert (progress.id, progress.message, progress.stage) == (appended.id, "outline ready",
                                                               "planning")
    assert progress.payload.to_dict() == {"percent": 25}
    assert progress.created_at == appended.created_at
    assert all((e.user_id, e.organization_id) == ("client_user", "client_org")
               for e in detail.events)

    # listEvents after sequence 1: only the appended event
    page = list_events.sync_detailed(session.id, client=client, after="1", limit=10)
    assert page.status_code == 200, page.content
    assert isinstance(page.parsed, models.EventPage), page.content
    assert [e.id for e in page.parsed.data] == [appended.id]
    assert page.parsed.pagination.has_more is False
    assert page.parsed.pagination.limit == 10


def test_errors_parse_into_the_documented_models(api, generated, server):
    client, api_modules, package = api
    models = package.models
    get = api_modules["sessions.get_session"]
    append = api_modules["events.append_event"]

    missing = get.sync_detailed("sess_doesnotexistdoesnotexist", client=client)
    assert missing.status_code == 404
    assert isinstance(missing.parsed, models.Error), missing.content
    assert missing.parsed.error

    created = api_modules["sessions.create_session"].sync(client=client,
                                                          body=models.SessionCreate())
    invalid = append.sync_detailed(created.id, client=client,
                                   body=models.EventCreate(type_=""))
    assert invalid.status_code == 400, invalid.content
    assert isinstance(invalid.parsed, models.ValidationError), invalid.content
    assert [detail.path for detail in invalid.parsed.details] == ["type"]

    url = server.url
    anonymous = package.AuthenticatedClient(base_url=url, token="gsk_000000000000_" + "x" * 40)
    with anonymous:
        refused = get.sync_detailed(created.id, client=anonymous)
    assert refused.status_code == 401
    assert isinstance(refused.parsed, models.Error), refused.content
