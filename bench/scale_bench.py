"""Benchmark: does the cost stay flat as the data grows?

Run by hand (`make bench-scale`, or `.venv/bin/python bench/scale_bench.py`); needs wrk
and psutil (the `bench` extra).

Loads SESSIONS (1,000,000) sessions of one user straight through the models in bulk
(statuses spread evenly), plus one session with 10,000 events, into a fresh SQLite file
(or --database-url), serves it with the service's gunicorn settings, and measures over
HTTP (keep-alive, one client, --repeat times each): the first page with its `total`, a
page 10,000 pages deep by cursor, a status-filtered `total`, and GET of the session
with 10,000 events (p50 and max). Then it drives GET session (10 events) with wrk for
--requests requests and samples each worker's resident memory along the way.
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import psutil
import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server import flask, gunicorn  # noqa: E402  (after the path is set)

SESSIONS = "/v1/products/generation/sessions"
USER = "scale_user"
STATUSES = ("intake", "planning", "generating", "assembling", "completed", "failed",
            "cancelled")
CHUNK = 5_000
DEEP_PAGES = 10_000
PAGE = 20


def load(database_url, sessions, events):
    """Fill the database through the models; return (session with `events` events, key row)."""
    from gensessions.models import Event, Session, create_tables, db
    from gensessions.models.base import open_database, write_transaction
    from gensessions.models.session import new_id
    db.initialize(open_database(database_url))
    with db.connection_context():
        create_tables()
        start = int(time.time() * 1000) - sessions  # one millisecond apart, all unexpired
        far = start + 10 * 365 * 86_400_000
        began = time.perf_counter()
        for first in range(0, sessions, CHUNK):
            rows = [{"id": new_id("sess_"), "user_id": USER, "organization_id": "org",
                     "status": STATUSES[n % len(STATUSES)], "prd": {"title": f"p{n}"},
                     "created_at": start + n, "updated_at": start + n, "expires_at": far}
                    for n in range(first, min(first + CHUNK, sessions))]
            with write_transaction():
                Session.insert_many(rows).execute()
        big = new_id("sess_")
        now = start + sessions
        with write_transaction():
            Session.insert(id=big, user_id=USER, status="generating", created_at=now,
                           updated_at=now, expires_at=far, last_sequence=events,
                           last_event_at=now).execute()
            for first in range(0, events, CHUNK):
                Event.insert_many([
                    {"id": new_id("evt_"), "session": big, "user_id": USER, "sequence": n + 1,
                     "type": "progress", "stage": "generating", "message": f"step {n}",
                     "payload": {"n": n}, "created_at": now}
                    for n in range(first, min(first + CHUNK, events))]).execute()
        loaded_s = time.perf_counter() - began
    db.close()
    return big, loaded_s


def timed(http, url, headers, repeat):
    """p50 and max milliseconds of `repeat` GETs (after one warm-up); the last answer."""
    http.get(url, headers=headers).raise_for_status()
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        answer = http.get(url, headers=headers)
        times.append((time.perf_counter() - began) * 1000)
        answer.raise_for_status()
    return statistics.median(times), max(times), answer.json()


def deep_cursor(database_url, depth):
    """The nextCursor a client holds after `depth` rows (newest first)."""
    from gensessions.models import Session, db
    from gensessions.models.base import open_database
    from gensessions.schemas.session import encode_cursor
    db.initialize(open_database(database_url))
    with db.connection_context():
        row = (Session.select(Session.created_at, Session.id).where(Session.user_id == USER)
               .order_by(Session.created_at.desc(), Session.id.desc())
               .offset(depth - 1).limit(1).get())
    db.close()
    return encode_cursor(row)


def worker_memory(gunicorn_pid):
    """{pid: resident MiB} of the server's worker processes."""
    master = psutil.Process(int(gunicorn_pid))
    return {child.pid: child.memory_info().rss / 2 ** 20 for child in master.children()}


def memory_run(base, key, session_id, total, gunicorn_pid, workdir):
    script = workdir / "get.lua"
    script.write_text(f'wrk.headers["Authorization"] = "Bearer {key}"\n')
    samples, served = [(0, worker_memory(gunicorn_pid))], 0
    while served < total:
        out = subprocess.run(["wrk", "-t", "2", "-c", "16", "-d", "5s", "-s", str(script),
                              f"{base}{SESSIONS}/{session_id}"],
                             capture_output=True, text=True, check=True).stdout
        served += int(out.split(" requests in ")[0].split()[-1])
        if "Non-2xx" in out:
            raise SystemExit("non-2xx answers during the memory run:\n" + out)
        samples.append((served, worker_memory(gunicorn_pid)))
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench"))
    args = parser.parse_args()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="scale-bench-"))
    database_url = args.database_url or str(workdir / "bench.db")
    big, loaded_s = load(database_url, args.sessions, args.events)
    print(f"loaded {args.sessions:,} sessions and {args.events:,} events in {loaded_s:.0f} s",
          file=sys.stderr)
    cursor = deep_cursor(database_url, DEEP_PAGES * PAGE)
    results = {"sessions": args.sessions, "events": args.events, "load_s": round(loaded_s, 1),
               "database": "postgresql" if args.database_url else "sqlite"}
    with gunicorn(workdir, DATABASE_URL=database_url) as (base, env):
        key = flask(env, "create-key", "--user-id", USER)
        headers = {"Authorization": f"Bearer {key}"}
        with requests.Session() as http:
            for name, url in (
                    ("first page with total", f"{base}{SESSIONS}?limit={PAGE}"),
                    (f"cursor page {DEEP_PAGES:,} deep", f"{base}{SESSIONS}?limit={PAGE}"
                                                         f"&cursor={cursor}"),
                    ("status-filtered total", f"{base}{SESSIONS}?status=planning&limit=1"),
                    (f"GET session with {args.events:,} events", f"{base}{SESSIONS}/{big}")):
                p50, worst, body = timed(http, url, headers, args.repeat)
                results[name] = {"p50_ms": round(p50, 1), "max_ms": round(worst, 1)}
                if "pagination" in body:
                    results[name]["total"] = body["pagination"]["total"]
                print(f"{name}: {results[name]}", file=sys.stderr)
            small = http.post(base + SESSIONS, json={}, headers=headers).json()["id"]
            for n in range(10):
                http.post(f"{base}{SESSIONS}/{small}/events", headers=headers,
                          json={"type": "progress", "message": f"step {n}"})
        samples = memory_run(base, key, small, args.requests, env["GUNICORN_PID"], workdir)
        results["memory_mib"] = [{"requests": served, "workers": sorted(
            round(mib, 1) for mib in memory.values())} for served, memory in samples]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"scale-{results['database']}.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
