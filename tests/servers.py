"""A real server for the tests: gensessions.testing's LiveServer (`gensessions serve`: gunicorn
with the package's settings, on a free local port, in its own process group, with its own
SQLite file, instance folder and log), with the checks a test wants.

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
import subprocess
import sys

import pytest

from gensessions.testing import NOT_INHERITED, LiveServer, ServerError
from helpers import KEY_PATTERN, ROOT

HEALTHY_SECONDS = 20
STOP_SECONDS = 25
CLI_SECONDS = 30
# Settings of the caller's shell that would override the server's bind, workers and threads.
UNSET = NOT_INHERITED


class GunicornServer(LiveServer):
    """One server on `folder`/server.db, logging to `folder`/server.log; see `start`.

    The environment is this process's, without UNSET, with the database and instance folder
    in `folder`, RATE_LIMIT and PURGE_SCHEDULE off, then `settings` (environment variables).
    A failure to start is a test failure, with the end of the server's log.
    """

    def __init__(self, folder, workers=2, **settings):
        super().__init__(folder, workers=workers, cwd=ROOT, **settings)

    def start(self, wait=True):
        """Launch it; with `wait`, return once /healthz answers 200 (else stop it, fail)."""
        try:
            return super().start(wait=wait, seconds=HEALTHY_SECONDS)
        except ServerError as error:
            pytest.fail(f"the server did not start: {error}", pytrace=False)

    def healthy(self):
        """Whether /healthz answers 200 now; fail at once if the server has exited."""
        try:
            return super().healthy()
        except ServerError as error:
            pytest.fail(str(error), pytrace=False)

    def flask(self, *args, check=True):
        """Run `flask --app wsgi <args>` (the repository's CLI) on the server's database and
        environment."""
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args],
                                cwd=ROOT, env=self.env, capture_output=True, text=True,
                                timeout=CLI_SECONDS)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    def create_key(self, user_id, org_id=None, scope="write"):
        """A new API key through `gensessions create-key`, checked against the key format."""
        key = super().create_key(user_id, org_id, scope)
        assert KEY_PATTERN.fullmatch(key), key
        return key

    def stop(self, seconds=STOP_SECONDS):
        return super().stop(seconds)


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
    assert not server.killed, f"the server did not stop within {STOP_SECONDS} s of SIGTERM"
    assert code == 0, server.log()[-2000:]
    if forbid_traceback:
        assert "Traceback" not in server.log(), server.log()[-2000:]
