"""Benchmark: what one request costs inside the process, without a server or a network.

Run by hand (`.venv/bin/python bench/inprocess_bench.py`). It calls the WSGI apps
directly, one request after another, and prints the best of three rounds as
microseconds a request: hello-world Flask (bench/hello.py) and the service on a fresh
SQLite file with the ceiling benchmark's data (100 sessions, the first with 10 events)
for GET session, list first page, PATCH, append and create. This is the Python cost
per request (the service's own code plus Flask); writes also include their commit's
fsync. `--profile ENDPOINT` prints cProfile's top functions for one endpoint instead.
The "in process" figures in docs/benchmarks.md come from this script.
"""
import argparse
import cProfile
import io
import logging
import os
import pathlib
import pstats
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from werkzeug.test import EnvironBuilder  # noqa: E402

from bench.ceiling_bench import EVENTS, SEEDED, SESSIONS  # noqa: E402

PATCH_BODY = '{"plan": {"steps": ["a", "b"], "done": 1}}'
EVENT_BODY = '{"type": "progress", "message": "step", "payload": {"n": 1}}'
CREATE_BODY = '{"prd": {"title": "bench", "features": ["a", "b"]}}'


def make_service(workdir):
    """The service on a fresh SQLite file with the ceiling benchmark's data; (app, key, ids)."""
    os.environ.update(DATABASE_URL=str(workdir / "bench.db"), INSTANCE_PATH=str(workdir),
                      PURGE_SCHEDULE="off", RATE_LIMIT="off")
    from gensessions import create_app
    from gensessions.models import ApiKey, db
    app = create_app()
    # The access line is written (to nowhere) as in a server, not printed here.
    logging.getLogger("gensessions.access").handlers[:] = [logging.NullHandler()]
    with app.app_context(), db.connection_context():
        _, key = ApiKey.issue("bench-user", int(time.time() * 1000))
    headers = {"Authorization": f"Bearer {key}"}
    client = app.test_client()
    ids = [client.post(SESSIONS, json={"prd": {"title": f"seed {n}"}}, headers=headers)
           .json["id"] for n in range(SEEDED)]
    for n in range(EVENTS):
        client.post(f"{SESSIONS}/{ids[0]}/events", headers=headers,
                    json={"type": "progress", "message": f"step {n}", "payload": {"n": n}})
    return app, headers, ids


def requests_of(headers, ids):
    """endpoint -> (method, path, body)."""
    return {"get": ("GET", f"{SESSIONS}/{ids[0]}", None),
            "list": ("GET", SESSIONS, None),
            "patch": ("PATCH", f"{SESSIONS}/{ids[1]}", PATCH_BODY),
            "append": ("POST", f"{SESSIONS}/{ids[2]}/events", EVENT_BODY),
            "create": ("POST", SESSIONS, CREATE_BODY)}


def call(wsgi_app, environ, body):
    """One request through `wsgi_app`, its body read to the end."""
    environ = dict(environ, **{"wsgi.input": io.BytesIO(body)})
    for _ in wsgi_app(environ, lambda status, headers, exc_info=None: None):
        pass


def per_request_us(wsgi_app, method, path, body, headers, count, rounds=3):
    """The best of `rounds` rounds of `count` requests, in microseconds a request."""
    data = (body or "").encode()
    builder = EnvironBuilder(path=path, method=method, headers=headers, data=data,
                             content_type="application/json" if body else None)
    environ = builder.get_environ()
    builder.close()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            call(wsgi_app, environ, data)
        best = min(best, (time.perf_counter() - started) / count * 1e6)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="requests a round")
    parser.add_argument("--profile", choices=["get", "list", "patch", "append", "create"],
                        help="print cProfile's top functions for this endpoint instead")
    args = parser.parse_args()
    from bench.hello import app as hello
    app, headers, ids = make_service(pathlib.Path(tempfile.mkdtemp(prefix="inprocess-")))
    endpoints = requests_of(headers, ids)
    if args.profile:
        method, path, body = endpoints[args.profile]
        per_request_us(app.wsgi_app, method, path, body, headers, 200, rounds=1)  # warm up
        profiler = cProfile.Profile()
        profiler.enable()
        per_request_us(app.wsgi_app, method, path, body, headers, args.count, rounds=1)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
        return 0
    print("| endpoint | us a request |\n|---|---|")
    hello_us = per_request_us(hello.wsgi_app, "GET", "/hello", None, {}, args.count)
    print(f"| hello-world | {hello_us:.0f} |")
    for name, (method, path, body) in endpoints.items():
        cost = per_request_us(app.wsgi_app, method, path, body, headers, args.count)
        print(f"| {name} | {cost:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
