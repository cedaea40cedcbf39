"""Testing against gensessions: the service in your process, or a real server beside it.

    from gensessions.testing import embedded, live_server

    with embedded() as service:      # an app on a fresh temporary SQLite database
        answer = service.client.post("/v1/products/generation/sessions", json={},
                                     headers=service.headers)

    with live_server() as server:    # gunicorn in a subprocess, on a free local port
        requests.get(server.url + "/v1/products/generation/sessions",
                     headers=server.headers)

Each comes with a fresh write key (`.key`, and `.headers` to send it) and owns its
database: nothing is shared between two of them, and nothing is left behind. For pytest,
`pytest_plugins = ["gensessions.pytest_plugin"]` in a conftest.py adds the fixtures
`gensessions_app` and `gensessions_server`.

Rate limits and the in-server purge are off unless the config or settings turn them on.
"""
import contextlib
import os
import pathlib
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from . import clock, create_app
from .db import close_database, connected
from .watch import watcher
from .models import ApiKey

SESSIONS = "/v1/products/generation/sessions"
QUIET = {"TESTING": True, "RATE_LIMIT": "off", "PURGE_SCHEDULE": "off"}
# The caller's shell settings that would override the server's bind and worker count.
NOT_INHERITED = ("GUNICORN_CMD_ARGS", "BIND", "WEB_CONCURRENCY", "THREADS")


def bearer(key):
    """The Authorization header that sends `key`."""
    return {"Authorization": f"Bearer {key}"}


class EmbeddedService:
    """An app in this process: `.app`, a test `.client`, and a write `.key` of `.user_id`."""

    def __init__(self, app, user_id, organization_id):
        self.app = app
        self.client = app.test_client()
        self.user_id = user_id
        self.key = self.new_key(user_id, organization_id)
        self.headers = bearer(self.key)

    def new_key(self, user_id, organization_id=None, scope="write"):
        """Another API key on this app's database (another user's, a read key...)."""
        with connected(self.app):
            _, key = ApiKey.issue(user_id, clock.now_ms(), organization_id=organization_id,
                                  scope=scope)
        return key


@contextlib.contextmanager
def embedded(config=None, *, user_id="user_1", organization_id=None):
    """An EmbeddedService on a temporary SQLite file, removed at the end of the block.

    `config` adds to (or overrides) the app's settings, as `create_app(config)` takes them.
    """
    with tempfile.TemporaryDirectory(prefix="gensessions-") as folder:
        app = create_app({**QUIET, "DATABASE_URL": os.path.join(folder, "gensessions.db"),
                          "INSTANCE_PATH": folder, **(config or {})})
        try:
            yield EmbeddedService(app, user_id, organization_id)
        finally:
            watcher(app).close()
            close_database(app)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerError(RuntimeError):
    """The server did not start, or a command against its database failed."""


class LiveServer:
    """gensessions under gunicorn in a subprocess (its own process group), on a free port of
    127.0.0.1, with its database, instance folder and log in `folder`.

    The environment is this process's (without the shell's bind and worker settings), then
    the database and instance folder in `folder`, RATE_LIMIT and PURGE_SCHEDULE off, then
    `settings` (environment variables, e.g. RATE_LIMIT="10/minute"). `wsgi_app` serves another
    WSGI app ("module:name", importable from `cwd`) with the same gunicorn settings, for
    comparisons; otherwise it is `gensessions serve`. `python` is the interpreter to run it
    with (another virtualenv's, to test an installation).
    """

    def __init__(self, folder, *, workers=2, threads=None, wsgi_app=None, cwd=None,
                 python=sys.executable, **settings):
        self.python = python
        self.folder = pathlib.Path(folder)
        self.workers = workers
        self.threads = threads
        self.wsgi_app = wsgi_app
        self.cwd = cwd
        self.db_path = self.folder / "server.db"
        self.log_path = self.folder / "server.log"
        self.address = f"127.0.0.1:{free_port()}"
        self.url = f"http://{self.address}"
        self.env = {name: value for name, value in os.environ.items()
                    if name not in NOT_INHERITED}
        self.env.update(DATABASE_URL=str(self.db_path), INSTANCE_PATH=str(self.folder),
                        RATE_LIMIT="off", PURGE_SCHEDULE="off")
        if threads is not None:
            self.env["THREADS"] = str(threads)  # the settings add STREAM_MAX for streams
        self.env.update({name: str(value) for name, value in settings.items()})
        self.process = None
        self.killed = False
        self.key = self.headers = None

    def command(self):
        options = ["--bind", self.address, "--workers", str(self.workers)]
        if self.wsgi_app is None:
            return [self.python, "-m", "gensessions", "serve", *options]
        from .console import GUNICORN_CONFIG
        return [self.python, "-m", "gunicorn", "--config", GUNICORN_CONFIG, *options,
                self.wsgi_app]

    def start(self, wait=True, seconds=30):
        """Launch the server; with `wait`, return once /healthz answers 200 (else stop it and
        raise ServerError with the end of its log)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=self.cwd, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        if wait:
            try:
                self.wait_healthy(seconds)
            except BaseException:
                self.stop()
                raise
        return self

    def wait_healthy(self, seconds):
        deadline = time.monotonic() + seconds
        while not self.healthy():
            if time.monotonic() > deadline:
                raise ServerError(f"no answer from {self.url}/healthz in {seconds} s:\n"
                                  + self.log()[-2000:])
            time.sleep(0.05)

    def healthy(self):
        """Whether /healthz answers 200 now; raises ServerError once the server has exited."""
        if self.process.poll() is not None:
            raise ServerError(f"the server exited with {self.process.returncode}:\n"
                              + self.log()[-2000:])
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as answer:
                return answer.status == 200
        except (OSError, urllib.error.URLError):
            # Not listening yet, or the workers are still booting.
            return False

    def cli(self, *arguments, check=True):
        """Run `gensessions <arguments>` on the server's database and environment."""
        result = subprocess.run([self.python, "-m", "gensessions", *arguments],
                                env=self.env, cwd=self.cwd, capture_output=True, text=True,
                                timeout=60)
        if check and result.returncode != 0:
            raise ServerError(f"gensessions {' '.join(arguments)} failed:\n{result.stderr}")
        return result

    def create_key(self, user_id, organization_id=None, scope="write"):
        """A new API key of the server's database, made by `gensessions create-key`."""
        options = ["--user-id", user_id, "--scope", scope]
        if organization_id:
            options += ["--org-id", organization_id]
        return self.cli("create-key", *options).stdout.strip()

    def log(self, start=0):
        """The server's log (gunicorn's and the app's stderr) from byte `start` on."""
        return self.log_path.read_bytes()[start:].decode(errors="replace")

    def log_size(self):
        return self.log_path.stat().st_size

    def stop(self, seconds=25):
        """SIGTERM, then wait `seconds`; past that, SIGKILL the whole process group (and set
        `killed`). Return the exit code; does nothing more once the server has exited."""
        if self.process is None:
            return None
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.killed = True
            return self.process.wait()


@contextlib.contextmanager
def live_server(folder=None, *, user_id="user_1", organization_id=None, workers=1,
                **settings):
    """A started LiveServer with a write key of `user_id` (`.key`, `.headers`), stopped at the
    end of the block; its folder is temporary unless `folder` is given."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="gensessions-"))
        server = LiveServer(folder, workers=workers, **settings)
        stack.callback(server.stop)
        server.start()
        server.key = server.create_key(user_id, organization_id)
        server.headers = bearer(server.key)
        yield server
