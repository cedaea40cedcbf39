"""Benchmark: purge 100,000 expired sessions (5 events each) while a client works.

Run by hand (not part of the test suite):

    .venv/bin/python bench/purge_bench.py [--sessions 100000] [--clients 4]

It seeds a fresh SQLite database, starts gunicorn with the service's own
gunicorn.conf.py (in-server purge off, so the run is the one we start), keeps
`--clients` threads reading and writing live sessions, runs
`flask purge-expired` in the middle, and prints the purge's duration and the
clients' latency before and during it, as a Markdown table.
"""
import argparse
import pathlib
import secrets
import shutil
import sys
import tempfile
import threading
import time

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server import flask, gunicorn  # noqa: E402  (after the path is set)

SESSIONS = "/v1/products/generation/sessions"


def seed(database_url, expired, events_per_session):
    """Insert `expired` sessions already past expiry, with their events, in bulk."""
    from gensessions.models import Event, Session, create_tables, db
    from gensessions.models.base import open_database

    db.initialize(open_database(database_url))
    with db.connection_context():
        create_tables()
        db.execute_sql("PRAGMA journal_mode=DELETE")  # one self-contained file to copy
        now = int(time.time() * 1000)
        created = now - 8 * 24 * 3600 * 1000
        for start in range(0, expired, 5000):
            with db.atomic():
                sessions, events = [], []
                for _ in range(min(5000, expired - start)):
                    sid = "sess_" + secrets.token_urlsafe(18)
                    sessions.append(dict(id=sid, user_id="bench_old", status="intake",
                                         created_at=created, updated_at=created,
                                         expires_at=created + 7 * 24 * 3600 * 1000,
                                         last_sequence=events_per_session,
                                         last_event_at=created))
                    events.extend(dict(id="evt_" + secrets.token_urlsafe(18), session=sid,
                                       user_id="bench_old", sequence=n + 1, type="info",
                                       stage="intake", message="seeded", payload={"n": n},
                                       created_at=created)
                                  for n in range(events_per_session))
                Session.insert_many(sessions).execute()
                for chunk in range(0, len(events), 1000):
                    Event.insert_many(events[chunk:chunk + 1000]).execute()
    db.close()


def percentile(values, q):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Client(threading.Thread):
    """Loops GET session / POST event / PATCH on its own live session, timing each."""

    def __init__(self, base, headers, stop):
        super().__init__(daemon=True)
        self.base, self.headers, self.stop = base, headers, stop
        self.samples = []  # (start time, seconds, status)

    def run(self):
        http = requests.Session()
        sid = http.post(self.base + SESSIONS, json={}, headers=self.headers).json()["id"]
        calls = [
            lambda: http.get(f"{self.base}{SESSIONS}/{sid}", headers=self.headers),
            lambda: http.post(f"{self.base}{SESSIONS}/{sid}/events",
                              json={"type": "progress", "message": "working"},
                              headers=self.headers),
            lambda: http.patch(f"{self.base}{SESSIONS}/{sid}",
                               json={"assemblyState": {"t": time.time()}},
                               headers=self.headers),
            lambda: http.get(f"{self.base}{SESSIONS}?limit=20", headers=self.headers),
        ]
        n = 0
        while not self.stop.is_set():
            started = time.perf_counter()
            status = calls[n % len(calls)]().status_code
            self.samples.append((started, time.perf_counter() - started, status))
            n += 1
            # GET with a growing event log gets slower; start over on a new session now and then.
            if n % 400 == 0:
                sid = http.post(self.base + SESSIONS, json={},
                                headers=self.headers).json()["id"]


def summarize(samples):
    latencies = [s[1] * 1000 for s in samples]
    return {"requests": len(samples), "errors": sum(1 for s in samples if s[2] >= 400),
            "p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
            "max": max(latencies) if latencies else float("nan")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=5)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--baseline", type=float, default=5.0, help="seconds before the purge")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="PURGE_BATCH_SIZE for this run (default: the service's)")
    parser.add_argument("--pause-ms", type=int, default=None,
                        help="PURGE_BATCH_PAUSE_MS for this run (default: the service's)")
    args = parser.parse_args()

    workdir = pathlib.Path(tempfile.mkdtemp(prefix="purge-bench-"))
    database = str(workdir / "bench.db")
    # Seeding takes longer than the purge; later runs start from a copy of the first.
    template = (pathlib.Path(tempfile.gettempdir())
                / f"purge-bench-{args.sessions}x{args.events}.db")
    if not template.exists():
        t0 = time.perf_counter()
        seed(str(template), args.sessions, args.events)
        print(f"seeded {args.sessions} expired sessions x {args.events} events "
              f"in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    shutil.copyfile(template, database)

    settings = {}
    if args.batch_size:
        settings["PURGE_BATCH_SIZE"] = args.batch_size
    if args.pause_ms is not None:
        settings["PURGE_BATCH_PAUSE_MS"] = args.pause_ms
    with gunicorn(workdir, DATABASE_URL=database, **settings) as (base, env):
        key = flask(env, "create-key", "--user-id", "bench_live")
        headers = {"Authorization": f"Bearer {key}"}
        stop = threading.Event()
        clients = [Client(base, headers, stop) for _ in range(args.clients)]
        for client in clients:
            client.start()
        time.sleep(args.baseline)
        purge_started = time.perf_counter()
        purged = int(flask(env, "purge-expired").splitlines()[-1])
        purge_ended = time.perf_counter()
        time.sleep(1.0)
        stop.set()
        for client in clients:
            client.join(10)

    samples = [s for client in clients for s in client.samples]
    before = summarize([s for s in samples if s[0] < purge_started])
    during = summarize([s for s in samples if purge_started <= s[0] < purge_ended])
    print("| purged | purge duration | phase | requests | errors | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|---|")
    for name, stats in (("before", before), ("during", during)):
        print(f"| {purged} | {purge_ended - purge_started:.1f} s | {name} | {stats['requests']} "
              f"| {stats['errors']} | {stats['p50']:.1f} | {stats['p99']:.1f} "
              f"| {stats['max']:.1f} |")
    print(f"batch size {settings.get('PURGE_BATCH_SIZE', 'default')}, pause "
          f"{settings.get('PURGE_BATCH_PAUSE_MS', 'default')} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
