"""A real gunicorn for the tests: `gunicorn -c gunicorn.conf.py wsgi:app` on a free local port,
in its own process group, with its own SQLite file, instance folder and log.

    with start_gunicorn(tmp_path, workers=4, RATE_LIMIT="10/minute") as server:
        key = server.create_key("user_1")
        requests.get(server.url + "/healthz")

`start_gunicorn` stops the server when the block ends and then asserts it stopped in time
with exit code 0; `GunicornServer` is the same server without those checks, for tests that
stop it themselves or expect it not to start. Neither leaves a process behind: a server that
does not become healthy is stopped before the failure is raised, and one that ignores SIGTERM
has its whole process group killed.
"""
import contextlib
import os
import pathlib
import signal
import subprocess
import sys

import pytest
import requests

from helpers import KEY_PATTERN, ROOT, free_port, wait_until

HEALTHY_SECONDS = 20
STOP_SECONDS = 25
CLI_SECONDS = 30
# Settings of the caller's shell that would override gunicorn.conf.py's bind and workers.
UNSET = ("GUNICORN_CMD_ARGS", "BIND", "WEB_CONCURRENCY")


class GunicornServer:
    """One gunicorn on `folder`/server.db, logging to `folder`/server.log; see `start`.

    The environment is this process's, without UNSET, with the database and instance folder
    in `folder`, RATE_LIMIT and PURGE_SCHEDULE off, then `settings` (environment variables).
    """

    def __init__(self, folder, workers=2, **settings):
        self.folder = pathlib.Path(folder)
        self.workers = workers
        self.db_path = self.folder / "server.db"
        self.log_path = self.folder / "server.log"
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = {name: value for name, value in os.environ.items() if name not in UNSET}
        self.env.update(DATABASE_URL=str(self.db_path), INSTANCE_PATH=str(self.folder),
                        RATE_LIMIT="off", PURGE_SCHEDULE="off")
        self.env.update(settings)
        self.process = None
        self.killed = False

    def start(self, wait=True):
        """Launch gunicorn; with `wait`, return once /healthz answers 200 (else stop it, fail)."""
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                 "--bind", self.url.removeprefix("http://"), "--workers", str(self.workers),
                 "wsgi:app"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        if wait:
            try:
                wait_until(self.healthy, HEALTHY_SECONDS, "gunicorn to answer /healthz")
            except BaseException:
                self.stop()
                raise
        return self

    def healthy(self):
        """Whether /healthz answers 200 now; fail at once if gunicorn has exited."""
        if self.process.poll() is not None:
            pytest.fail(f"gunicorn exited with {self.process.returncode} before answering:\n"
                        + self.log()[-2000:])
        try:
            return requests.get(self.url + "/healthz", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):
            # Not listening yet, or the workers are still booting (connections wait meanwhile).
            return False

    def log(self, start=0):
        """The server's log (gunicorn's and the app's stderr) from byte `start` on."""
        return self.log_path.read_bytes()[start:].decode(errors="replace")

    def log_size(self):
        """The log's length in bytes now, to read only what comes after with `log(start)`."""
        return self.log_path.stat().st_size

    def flask(self, *args, check=True):
        """Run `flask --app wsgi <args>` on the server's database and environment."""
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args],
                                cwd=ROOT, env=self.env, capture_output=True, text=True,
                                timeout=CLI_SECONDS)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def create_key(self, user_id, org_id=None):
        """A new API key through `flask create-key`, checked against the key format."""
        options = ["--user-id", user_id] + (["--org-id", org_id] if org_id else [])
        key = self.flask("create-key", *options).stdout.strip()
        assert KEY_PATTERN.fullmatch(key), key
        return key

    def stop(self, seconds=STOP_SECONDS):
        """SIGTERM, then wait `seconds`; past that, SIGKILL the whole process group (and set
        `killed`). Return the exit code. Does nothing more once the server has exited."""
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
def start_gunicorn(folder, workers=2, *, forbid_traceback=False, **settings):
    """A healthy GunicornServer for the block; stopped after it, then checked: it stopped
    within STOP_SECONDS of SIGTERM with exit code 0 (and, with `forbid_traceback`, its log
    holds no "Traceback"). The checks are skipped when the block raised."""
    server = GunicornServer(folder, workers, **settings).start()
    try:
        yield server
    finally:
        code = server.stop()
    assert not server.killed, f"gunicorn did not stop within {STOP_SECONDS} s of SIGTERM"
    assert code == 0, server.log()[-2000:]
    if forbid_traceback:
        assert "Traceback" not in server.log(), server.log()[-2000:]
