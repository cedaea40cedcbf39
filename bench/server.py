"""A server for the benchmarks: gensessions.testing's LiveServer (the tests' launcher too),
started with its own settings, stopped after."""
import os
import pathlib
import subprocess
import sys
from contextlib import contextmanager

from gensessions.testing import LiveServer, ServerError, free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent

__all__ = ["ROOT", "flask", "free_port", "gunicorn"]


@contextmanager
def gunicorn(workdir, app=None, **settings):
    """Serve `app` ("module:name" from the repository, e.g. "bench.hello:app"; the service,
    through `gensessions serve`, by default) with the service's gunicorn settings; yield
    (base URL, environment), the environment with GUNICORN_PID, the gunicorn master's pid.

    `settings` are environment variables for the server (DATABASE_URL defaults to
    `workdir`/bench.db); the purge schedule and rate limit are off unless given, so that
    they do not disturb the measurement. WEB_CONCURRENCY and THREADS of the caller's shell
    still choose the worker and thread counts (2 and 8 by default).
    """
    settings.setdefault("DATABASE_URL", str(workdir / "bench.db"))
    threads = os.environ.get("THREADS")
    server = LiveServer(workdir, workers=int(os.environ.get("WEB_CONCURRENCY", "2")),
                        threads=int(threads) if threads else None, wsgi_app=app, cwd=ROOT,
                        **settings)
    try:
        server.start()
    except ServerError as error:
        raise SystemExit(f"gunicorn did not start ({error}); see {server.log_path}") from None
    try:
        yield server.url, {**server.env, "GUNICORN_PID": str(server.process.pid)}
    finally:
        server.stop(30)


def flask(env, *args):
    """Run `flask --app wsgi ARGS` against the server's database; return its stdout."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=True).stdout.strip()
