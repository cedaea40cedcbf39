"""The package as a user installs it: a wheel built from the repository's files, installed
into a fresh virtualenv, used from a project that has its own `app`, `models` and `schemas`.
"""
import json
import re
import shutil
import subprocess
import sys
import urllib.request
import zipfile

import pytest

from gensessions import __version__
from gensessions.testing import LiveServer
from helpers import KEY_PATTERN, ROOT

# A host project's own packages, named as generically as gensessions' folders are.
HOST_PACKAGES = {"app": "def create_app():\n    return 'the host app'\n",
                 "models": "class ApiKey:\n    owner = 'host'\n",
                 "schemas": "OWNER = 'host'\n"}


def run(*command, cwd=None, timeout=600):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """A wheel built from the files a commit would hold (a clean copy, as a clone has)."""
    source = tmp_path_factory.mktemp("source")
    files = run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                cwd=ROOT).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
        str(source))
    [built] = out.glob("gensessions-*.whl")
    return built


@pytest.fixture(scope="module")
def host(tmp_path_factory, wheel):
    """A host project (its own app/, models/, schemas/) with a fresh virtualenv that has the
    wheel installed; returns (project folder, the virtualenv's bin folder)."""
    project = tmp_path_factory.mktemp("host")
    for name, text in HOST_PACKAGES.items():
        (project / name).mkdir()
        (project / name / "__init__.py").write_text(text)
    run(sys.executable, "-m", "venv", str(project / "venv"))
    bin_folder = project / "venv" / "bin"
    run(str(bin_folder / "python"), "-m", "pip", "install", "--quiet",
        "--disable-pip-version-check",
        str(wheel))
    return project, bin_folder


def test_the_wheel_holds_one_import_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"gensessions", f"gensessions-{__version__}.dist-info"}, tops
    for module in ("gensessions/__init__.py", "gensessions/models/__init__.py",
                   "gensessions/schemas/__init__.py", "gensessions/testing.py",
                   "gensessions/gunicorn_config.py", "gensessions/client.py",
                   "gensessions/static/ui/index.html", "gensessions/static/ui/viewer.js",
                   "gensessions/static/ui/viewer.css", "gensessions/static/ui/favicon.svg"):
        assert module in names
    entry_points = zipfile.ZipFile(wheel).read(
        f"gensessions-{__version__}.dist-info/entry_points.txt").decode()
    assert "gensessions = gensessions.console:main" in entry_points


def test_it_imports_beside_the_hosts_own_packages(host):
    project, bin_folder = host
    probe = ("import app, models, schemas\n"
             "from gensessions import create_app\n"
             "from gensessions.models import ApiKey\n"
             "assert app.create_app() == 'the host app'\n"
             "assert models.ApiKey.owner == 'host' and schemas.OWNER == 'host'\n"
             "assert ApiKey.__module__ == 'gensessions.models.api_key'\n"
             "import gensessions, os\n"
             "print(os.path.dirname(gensessions.__file__))\n")
    location = run(str(bin_folder / "python"), "-c", probe, cwd=project).stdout.strip()
    assert location.startswith(str(project / "venv"))  # the wheel's copy, not the repository's


def test_the_command_lists_every_command(host):
    project, bin_folder = host
    listed = run(str(bin_folder / "gensessions"), "--help", cwd=project).stdout
    for command in ("serve", "demo", "init-db", "migrate", "create-key", "dev-key", "list-keys",
                    "revoke-key", "purge-expired", "purge-status", "openapi"):
        assert re.search(rf"^\s+{command}\s", listed, re.M), (command, listed)
    for command in ("serve", "demo", "create-key", "purge-expired"):
        assert "Usage: gensessions " + command in run(
            str(bin_folder / "gensessions"), command, "--help", cwd=project).stdout


def test_create_key_prints_only_the_key_and_keeps_data_in_the_working_directory(host):
    project, bin_folder = host
    printed = run(str(bin_folder / "gensessions"), "create-key", "--user-id", "host_user",
                  cwd=project).stdout
    assert KEY_PATTERN.fullmatch(printed.strip()) and printed.count("\n") == 1, printed
    assert (project / "instance" / "gensessions.db").is_file()
    assert not list((project / "venv").rglob("gensessions.db"))


def test_serve_answers_with_the_installed_version(host, tmp_path):
    project, bin_folder = host
    server = LiveServer(tmp_path, workers=1, cwd=project, python=str(bin_folder / "python"))
    try:
        server.start()
        with urllib.request.urlopen(server.url + "/v1/openapi.json", timeout=10) as answer:
            document = json.load(answer)
        with urllib.request.urlopen(server.url + "/ui/assets/viewer.js", timeout=10) as answer:
            assert b"EventSource" in answer.read()  # the viewer, from the installed package
        key = server.create_key("served_user")
        request = urllib.request.Request(
            server.url + "/v1/products/generation/sessions", data=b"{}", method="POST",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 201
    finally:
        assert server.stop() == 0, server.log()[-2000:]
    assert document["info"]["version"] == __version__
    assert "/v1/products/generation/sessions" in document["paths"]
