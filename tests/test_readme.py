"""The README stays true: its curl walk-through runs as written against a real gunicorn."""
import json
import re
import subprocess

from helpers import ROOT
from servers import start_gunicorn

README = (ROOT / "README.md").read_text(encoding="utf-8")


def walk_through():
    """The README's curl walk-through: the shell block that starts with BASE=."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    walks = [block for block in blocks if block.startswith("BASE=")]
    assert len(walks) == 1, "the README should have one walk-through block"
    return walks[0]


def test_readme_walk_through_runs_as_written(tmp_path):
    with start_gunicorn(tmp_path, workers=2, forbid_traceback=True) as server:
        key = server.flask("dev-key").stdout.strip()
        # As written, but for the port of this test's server.
        script = walk_through().replace("127.0.0.1:8000", server.url.removeprefix("http://"))
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True,
                              text=True, timeout=60, env={**server.env, "GS_KEY": key})
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == 9, done.stdout
    assert all("error" not in answer for answer in answers), done.stdout
    assert done.stdout.splitlines()[-2] == "204"  # the DELETE
    assert answers[-1]["status"] == "ok"  # /healthz
    assert answers[-3]["status"] == "completed"  # the PATCH with If-Match


def test_readme_documents_every_setting():
    from gensessions.config import DEFAULTS
    for name in DEFAULTS:
        assert f"`{name}`" in README, f"{name} is not in the README's configuration table"


def test_readme_documents_every_cli_command(app):
    for name in app.cli.list_commands(None):
        assert f"`{name}" in README, f"flask {name} is not in the README"
