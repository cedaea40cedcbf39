"""What holds for the API holds for any blueprint nested in it, decided from the blueprints
(issue 14): a blueprint registered under the API's at test time, with no other edit, needs
the credential, is rate-limited and is in the OpenAPI document under a tag of its own.
Also: @answers makes the answer, and the decorators refuse an order that would break it.

The apps here come from the `make_app` fixture, rate-limited where a test says so (unlike
the `app` fixture's).
"""
import pytest
from flask import Blueprint, Response
from marshmallow import Schema, fields

from gensessions import api
from gensessions.http import answers, use_body
from gensessions.idempotency import idempotent
from gensessions.openapi import build_spec
from helpers import SESSIONS, bearer, issue_key

WIDGETS = "/v1/widgets"


class WidgetSchema(Schema):
    name = fields.String(required=True)
    size = fields.Integer(required=True)


class WidgetCreateSchema(Schema):
    name = fields.String(required=True)


def widgets_blueprint(**attributes):
    """A blueprint as a new module of the API would make it."""
    widgets = Blueprint("widgets", __name__, url_prefix="/widgets")
    widgets.description = "Widgets: a blueprint nested in the API's at test time"
    for name, value in attributes.items():
        setattr(widgets, name, value)

    @widgets.get("")
    @answers(200, WidgetSchema(), description="A widget")
    def get_widget():
        """Get the widget."""
        return {"name": "sprocket", "size": 3, "secret": "never dumped"}

    @widgets.post("")
    @idempotent
    @answers(201, WidgetSchema(), description="A new widget", headers=("Location",))
    @use_body(WidgetCreateSchema())
    def make_widget(body):
        """Make a widget."""
        return {**body, "size": 1}, {"Location": WIDGETS}

    @widgets.get("/stream")
    @answers(200, {"type": "string"}, description="Widgets, live",
             media_type="text/event-stream")
    def stream_widgets():
        """Stream widgets."""
        return Response("data: {}\n\n", mimetype="text/event-stream")
    return widgets


def nest_in_api(monkeypatch, blueprint):
    """Register `blueprint` under the API's blueprint for this test only.

    The API blueprint is a module global that earlier apps of this process have registered,
    after which Flask refuses new children; the test lifts that for itself and restores it.
    """
    monkeypatch.setattr(api.bp, "_blueprints", list(api.bp._blueprints))
    monkeypatch.setattr(api.bp, "_got_registered_once", False)
    api.bp.register_blueprint(blueprint)


def test_a_nested_blueprint_is_rate_limited(monkeypatch, make_app):
    nest_in_api(monkeypatch, widgets_blueprint())
    app = make_app(RATE_LIMIT="2/minute")
    client, headers = app.test_client(), bearer(issue_key(app))
    answers_ = [client.get(WIDGETS, headers=headers) for _ in range(3)]
    assert [response.status_code for response in answers_] == [200, 200, 429]
    assert answers_[0].json == {"name": "sprocket", "size": 3}
    assert answers_[2].headers["Retry-After"].isdigit()


def test_a_nested_blueprint_needs_the_credential(monkeypatch, make_app):
    nest_in_api(monkeypatch, widgets_blueprint())
    response = make_app(RATE_LIMIT="2/minute").test_client().get(WIDGETS)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_nested_blueprint_is_in_the_document(monkeypatch, make_app):
    nest_in_api(monkeypatch, widgets_blueprint())
    document = make_app(RATE_LIMIT="2/minute").test_client().get("/v1/openapi.json").json
    tags = {tag["name"]: tag.get("description") for tag in document["tags"]}
    assert tags["widgets"] == "Widgets: a blueprint nested in the API's at test time"
    assert list(tags)[-1] == "operations"  # the public operations' tag stays last
    get = document["paths"][WIDGETS]["get"]
    assert get["operationId"] == "getWidget" and get["tags"] == ["widgets"]
    assert "security" not in get  # the document-wide bearerAuth
    assert {"200", "401", "429", "500", "503"} == set(get["responses"])
    post = document["paths"][WIDGETS]["post"]
    assert {"201", "400", "401", "409", "413", "415", "429", "500", "503"} == set(
        post["responses"])
    assert post["requestBody"]["required"] is True
    assert ("header", "Idempotency-Key") in {(p["in"], p["name"]) for p in post["parameters"]}
    stream = document["paths"][WIDGETS + "/stream"]["get"]["responses"]["200"]
    assert stream["content"] == {"text/event-stream": {"schema": {"type": "string"}}}


def test_a_nested_blueprint_may_opt_out_of_the_rate_limit(monkeypatch, make_app):
    nest_in_api(monkeypatch, widgets_blueprint(rate_limited=False))
    app = make_app(RATE_LIMIT="2/minute")
    client, headers = app.test_client(), bearer(issue_key(app))
    assert [client.get(WIDGETS, headers=headers).status_code for _ in range(4)] == [200] * 4
    document = client.get("/v1/openapi.json").json
    assert "429" not in document["paths"][WIDGETS]["get"]["responses"]
    # ... while the rest of the API still counts.
    statuses = [client.get(SESSIONS, headers=headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_answers_makes_the_answer_with_its_status_and_headers(monkeypatch, make_app):
    nest_in_api(monkeypatch, widgets_blueprint())
    app = make_app()
    client, headers = app.test_client(), bearer(issue_key(app))
    response = client.post(WIDGETS, json={"name": "cog"},
                           headers={**headers, "Idempotency-Key": "w1"})
    assert response.status_code == 201 and response.json == {"name": "cog", "size": 1}
    assert response.headers["Location"] == WIDGETS
    assert response.content_type == "application/json; charset=utf-8"
    replayed = client.post(WIDGETS, json={"name": "cog"},
                           headers={**headers, "Idempotency-Key": "w1"})
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert (replayed.status_code, replayed.json) == (201, response.json)
    streamed = client.get(WIDGETS + "/stream", headers=headers)  # a Response goes as it is
    assert (streamed.status_code, streamed.mimetype) == (200, "text/event-stream")
    assert streamed.get_data(as_text=True) == "data: {}\n\n"


def test_a_route_without_answers_is_refused_by_the_document(monkeypatch, make_app):
    bare = Blueprint("bare", __name__, url_prefix="/bare")

    @bare.get("")
    def undocumented():
        return {}
    nest_in_api(monkeypatch, bare)
    app = make_app()
    with pytest.raises(ValueError, match="api.bare.undocumented"):
        build_spec(app)


def test_idempotent_must_be_above_answers():
    def view():
        return {}
    with pytest.raises(TypeError, match="@idempotent above @answers"):
        idempotent(view)
    with pytest.raises(TypeError, match="@answers below @idempotent"):
        answers(200, WidgetSchema())(idempotent(answers(200, WidgetSchema())(view)))


def test_the_document_and_the_docs_page_still_serve_without_the_database(make_app, tmp_path):
    # (app/db.py: their blueprints say `without_database`.)
    client = make_app(DATABASE_URL=str(tmp_path / "missing" / "test.db")).test_client()
    assert client.get("/v1/openapi.json").status_code == 200
    assert client.get("/docs/").status_code == 200
    assert client.get(SESSIONS, headers=bearer("gsk_x_y")).status_code == 503
