"""gensessions.testing and its pytest fixtures, as a project that tests against gensessions
uses them: each gives a real service on a database of its own, and leaves nothing behind.
"""
import os
import subprocess
import sys
import textwrap

import requests

from gensessions.testing import embedded, live_server
from helpers import SESSIONS, TIMEOUT


def test_embedded_gives_an_app_a_client_and_a_key_on_a_fresh_database():
    with embedded() as first:
        created = first.client.post(SESSIONS, json={"prd": {"title": "x"}},
                                    headers=first.headers)
        assert created.status_code == 201
        other = first.new_key("someone_else")
        listed = first.client.get(SESSIONS, headers={"Authorization": f"Bearer {other}"})
        assert listed.json["pagination"]["total"] == 0  # another user's view
        folder = os.path.dirname(first.app.config["DATABASE_URL"])
        assert os.path.isdir(folder)
    assert not os.path.exists(folder)  # nothing left behind
    with embedded({"SESSION_TTL": 60}) as second:  # a fresh database each time
        assert second.client.get(SESSIONS, headers=second.headers).json["pagination"][
            "total"] == 0
        created = second.client.post(SESSIONS, json={}, headers=second.headers).json
        assert created["expiresAt"] > created["createdAt"]


def test_live_server_serves_on_a_free_port_and_stops():
    with live_server(RATE_LIMIT="2/minute") as server:
        assert requests.get(server.url + "/healthz", timeout=TIMEOUT).status_code == 200
        answers = [requests.get(server.url + SESSIONS, headers=server.headers,
                                timeout=TIMEOUT).status_code for _ in range(3)]
        assert answers == [200, 200, 429]  # its settings are the environment given
        folder, process = server.folder, server.process
    assert process.poll() == 0  # stopped, cleanly
    assert not folder.exists()
    try:
        requests.get(server.url + "/healthz", timeout=2)
        raise AssertionError("the server still answers")
    except requests.ConnectionError:
        pass


PROJECT_TESTS = '''
import requests

pytest_plugins = ["gensessions.pytest_plugin"]
SESSIONS = "/v1/products/generation/sessions"


def test_in_process(gensessions_app):
    answer = gensessions_app.client.post(SESSIONS, json={}, headers=gensessions_app.headers)
    assert answer.status_code == 201


def test_a_fresh_database_per_test(gensessions_app):
    listed = gensessions_app.client.get(SESSIONS, headers=gensessions_app.headers)
    assert listed.json["pagination"]["total"] == 0


def test_a_real_server(gensessions_server):
    answer = requests.post(gensessions_server.url + SESSIONS, json={},
                           headers=gensessions_server.headers, timeout=30)
    assert answer.status_code == 201
'''


def run_pytest(folder, *arguments):
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "PYTEST_ADDOPTS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *arguments], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_pytest_fixtures_work_when_asked_for(tmp_path):
    (tmp_path / "test_project.py").write_text(PROJECT_TESTS)
    result = run_pytest(tmp_path, "test_project.py")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 passed" in result.stdout


def test_the_pytest_fixtures_are_not_there_unless_asked_for(tmp_path):
    (tmp_path / "test_project.py").write_text(textwrap.dedent('''
        def test_uses_it(gensessions_app):
            pass
    '''))
    result = run_pytest(tmp_path, "test_project.py")
    assert result.returncode != 0
    assert "fixture 'gensessions_app' not found" in result.stdout
