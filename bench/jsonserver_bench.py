"""Benchmark: POST create against json-server 0.17's POST, both on a 100-record store.

Run by hand with `make bench-jsonserver` (or `.venv/bin/python bench/jsonserver_bench.py`);
needs wrk (Debian's package) and node with npm: json-server 0.17 is installed on first
use under bench/.jsonserver/ (git ignores it).

The performance issue's target: create >= 2x json-server's POST on a 100-record store
(json-server 0.17 measured 0.1-0.2 of hello-world there, and about 1 request per second
at 100,000 records). In one run, at each concurrency (16 and 64 by default), wrk drives
hello-world Flask (bench/hello.py, the service's gunicorn.conf.py), json-server's
`POST /sessions` on a db.json of 100 small sessions, and the service's POST create on a
fresh SQLite file seeded with 100 sessions, all with the same JSON body. Both stores
grow with every write (json-server rewrites the whole db.json each time), so each
measured run gets a fresh server on a fresh 100-record store, and the records it holds
at the end are reported. It prints req/s, p50, p99, non-2xx, the ratio to hello-world
and gensessions / json-server as Markdown, and writes the same as JSON.
"""
import argparse
import json
import os
import pathlib
import platform
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ceiling_bench import (  # noqa: E402  (after the path is set)
    SEEDED, SESSIONS, best_of, run_wrk, seed, write_script)
from bench.server import flask, free_port, gunicorn  # noqa: E402

VERSION = "0.17"
CACHE = ROOT / "bench" / ".jsonserver"
CLI = CACHE / "node_modules" / "json-server" / "lib" / "cli" / "bin.js"
# The body ceiling_bench's create sends, so both servers parse and store the same thing.
BODY = '{"prd": {"title": "bench", "features": ["a", "b"]}}'
TARGET = 2.0  # gensessions / json-server, from the performance issue
SYSTEMS = {"hello": "hello-world Flask", "json-server": f"json-server {VERSION} POST",
           "gensessions": "gensessions POST create"}
# Each measured run has a fresh server (see run_json_server), warmed up for this long.
WARM_UP_S = 2


def install_json_server():
    """json-server 0.17 under CACHE (npm, once); return its exact version."""
    if not CLI.exists():
        subprocess.run(["npm", "install", "--prefix", str(CACHE), "--no-audit", "--no-fund",
                        f"json-server@{VERSION}"], check=True, stdout=sys.stderr)
    return json.loads((CLI.parents[2] / "package.json").read_text())["version"]


def store():
    """db.json's content: 100 records shaped like a small session."""
    return {"sessions": [{"id": f"sess_{n:024d}", "status": "intake",
                          "prd": {"title": f"seed {n}", "features": ["a", "b"]}}
                         for n in range(SEEDED)]}


def wait_until_up(url, server, log_path):
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"json-server did not start; see {log_path}")
        time.sleep(0.1)


@contextmanager
def json_server(workdir):
    """json-server on a fresh 100-record workdir/db.json; yield (base URL, db.json path)."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "db.json"
    db.write_text(json.dumps(store(), indent=2))
    port = free_port()
    log_path = workdir / "json-server.log"
    with open(log_path, "w") as log:
        # stdin closed: json-server reads it only for its "s + enter" snapshots.
        server = subprocess.Popen(
            ["node", str(CLI), "--port", str(port), "--host", "127.0.0.1", "--quiet", str(db)],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/sessions/sess_{0:024d}", server, log_path)
            yield base, db
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(30)


def run_json_server(workdir, connections, duration):
    """One measured run on a fresh json-server; the records it held at the end."""
    with json_server(workdir) as (base, db):
        # Warmed up on GET, which writes nothing: the measured run starts at 100 records.
        warm = write_script(workdir, "get", "-", "GET", [f"/sessions/sess_{0:024d}"])
        run_wrk(base, warm, 16, WARM_UP_S)
        script = write_script(workdir, "create", "-", "POST", ["/sessions"], BODY)
        result = run_wrk(base, script, connections, duration)
    # Every write went to disk synchronously (lowdb's FileSync), so the file is the store.
    return {**result, "records": len(json.loads(db.read_text())["sessions"])}


def run_gensessions(workdir, connections, duration):
    """One measured run on a fresh gunicorn and SQLite file seeded with 100 sessions."""
    workdir.mkdir(parents=True, exist_ok=True)
    # Migrated before the workers boot: on an empty file the first worker migrates while
    # /healthz waits, and on a busy 2-core host that outlasts bench/server.py's 1 s timeout.
    flask(dict(os.environ, DATABASE_URL=str(workdir / "bench.db"), INSTANCE_PATH=str(workdir)),
          "init-db")
    with gunicorn(workdir) as (base, env):
        key = flask(env, "create-key", "--user-id", f"bench-{workdir.name}")
        ids = seed(base, key)
        # Warmed up on GET, like json-server, so the store is still at 100 sessions.
        run_wrk(base, write_script(workdir, "get", key, "GET", [f"{SESSIONS}/{ids[0]}"]),
                16, WARM_UP_S)
        script = write_script(workdir, "create", key, "POST", [SESSIONS], BODY)
        result = run_wrk(base, script, connections, duration)
        page = requests.get(f"{base}{SESSIONS}?limit=1",
                            headers={"Authorization": f"Bearer {key}"}).json()
    return {**result, "records": page["pagination"]["total"]}


def best(runs):
    """As best_of: the run with the most req/s; non-2xx over all; each run's records."""
    top = max(runs, key=lambda run: run["rps"])
    return {**top, "non_2xx": sum(run["non_2xx"] for run in runs), "runs": len(runs),
            "records_by_run": [run["records"] for run in runs]}


def measure(args, workdir):
    results = []
    (workdir / "hello").mkdir()
    with gunicorn(workdir / "hello", app="bench.hello:app") as (base, _):
        script = write_script(workdir, "hello", "-", "GET", ["/hello"])
        run_wrk(base, script, 16, 3)  # fresh workers: imports, caches, CPU clocks
        for connections in args.concurrency:
            results.append({"system": "hello", "connections": connections,
                            **best_of(args.repeat, base, script, connections, args.duration)})
            print(f"hello c{connections}: {results[-1]}", file=sys.stderr)
    for system, run in (("json-server", run_json_server), ("gensessions", run_gensessions)):
        for connections in args.concurrency:
            runs = [run(workdir / f"{system}-c{connections}-{n}", connections, args.duration)
                    for n in range(args.repeat)]
            results.append({"system": system, "connections": connections, **best(runs)})
            print(f"{system} c{connections}: {results[-1]}", file=sys.stderr)
    by = {(r["system"], r["connections"]): r for r in results}
    for result in results:
        result["ratio"] = result["rps"] / by["hello", result["connections"]]["rps"]
        if result["system"] == "gensessions":
            result["vs_json_server"] = (result["rps"]
                                        / by["json-server", result["connections"]]["rps"])
    return results


def table(results):
    lines = ["| system | clients | req/s | p50 ms | p99 ms | non-2xx | records at end "
             f"| ratio to hello-world | gensessions / json-server (target >= {TARGET:g}) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["connections"], list(SYSTEMS).index(r["system"]))):
        records = "/".join(str(n) for n in r.get("records_by_run", [])) or "-"
        versus = f"{r['vs_json_server']:.1f}x" if "vs_json_server" in r else "-"
        lines.append(f"| {SYSTEMS[r['system']]} | {r['connections']} | {r['rps']:,.0f} "
                     f"| {r['p50']:.1f} | {r['p99']:.1f} | {r['non_2xx']} | {records} "
                     f"| {r['ratio']:.2f} | {versus} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeat", type=int, default=2, help="runs per cell; the best counts")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench"),
                        help="folder for the JSON results (jsonserver.json)")
    args = parser.parse_args()
    version = install_json_server()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="jsonserver-bench-"))
    results = measure(args, workdir)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "jsonserver.json").write_text(json.dumps({
        "json_server": version, "node": node, "records": SEEDED, "target": TARGET,
        "duration_s": args.duration, "repeat": args.repeat,
        "python": platform.python_version(), "results": results}, indent=1) + "\n")
    print(table(results))
    # json-server's errors are its own business; the service's fail the run.
    failures = [r for r in results if r["system"] == "gensessions" and r["non_2xx"]]
    if failures:
        print(f"\n{len(failures)} gensessions runs had non-2xx answers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
