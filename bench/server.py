"""A gunicorn of the service for the benchmarks: started with its own settings, stopped after."""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(workdir, app="wsgi:app", **settings):
    """Serve `app` (the service by default) with gunicorn.conf.py; yield (base URL, environment).

    `settings` are environment variables for the server (DATABASE_URL defaults to
    a SQLite file in `workdir`); the purge schedule and rate limit are off
    unless given, so that they do not disturb the measurement.
    """
    port = free_port()
    env = dict(os.environ, DATABASE_URL=str(workdir / "bench.db"), INSTANCE_PATH=str(workdir),
               PURGE_SCHEDULE="off", RATE_LIMIT="off", BIND=f"127.0.0.1:{port}")
    env.update({name: str(value) for name, value in settings.items()})
    log_path = workdir / "gunicorn.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [str(pathlib.Path(sys.executable).parent / "gunicorn"), "-c", "gunicorn.conf.py",
             app], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if requests.get(base + "/healthz", timeout=1).ok:
                        break
                except (requests.ConnectionError, requests.Timeout):
                    pass  # not listening yet, or a worker still migrating a fresh file
                if time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn did not start; see {log_path}")
                time.sleep(0.1)
            yield base, env | {"GUNICORN_PID": str(server.pid)}
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def flask(env, *args):
    """Run `flask --app wsgi ARGS` against the server's database; return its stdout."""
    return subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, check=True).stdout.strip()
