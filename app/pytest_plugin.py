"""pytest fixtures for projects that test against gensessions.

Registered only when asked for: `pytest_plugins = ["gensessions.pytest_plugin"]` in your
conftest.py. Then:

    def test_create(gensessions_app):          # in-process, a fresh database per test
        answer = gensessions_app.client.post("/v1/products/generation/sessions", json={},
                                             headers=gensessions_app.headers)
        assert answer.status_code == 201

    def test_from_a_browser(gensessions_server):   # a real server, one per test module
        requests.get(gensessions_server.url + "/healthz")
"""
import pytest

from .testing import embedded, live_server


@pytest.fixture
def gensessions_app():
    """An EmbeddedService (`.app`, `.client`, `.key`, `.headers`) on a fresh database."""
    with embedded() as service:
        yield service


@pytest.fixture(scope="module")
def gensessions_server(tmp_path_factory):
    """A LiveServer (`.url`, `.key`, `.headers`) shared by the tests of a module."""
    with live_server(tmp_path_factory.mktemp("gensessions-server")) as server:
        yield server
