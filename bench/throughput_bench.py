"""Benchmark: create and append throughput with 1, 4 and 8 concurrent clients.

Run by hand (not part of the test suite); needs wrk (`apt-get install wrk`):

    .venv/bin/python bench/throughput_bench.py [--duration 10] [--database-url URL]

It starts gunicorn with the service's own gunicorn.conf.py on a fresh SQLite
file (or DATABASE_URL), then drives POST create and POST append-event (all
clients appending to one session, the hardest case for ordering) with wrk at
each concurrency, and prints req/s, p50, p99 and the count of non-2xx answers
as a Markdown table.
"""
import argparse
import pathlib
import re
import subprocess
import sys
import tempfile

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server import flask, gunicorn  # noqa: E402  (after the path is set)

SESSIONS = "/v1/products/generation/sessions"
LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url, script, connections, duration):
    """Run wrk; return (requests/s, p50 ms, p99 ms, non-2xx count)."""
    out = subprocess.run(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{duration}s",
         "--latency", "-s", script, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    non_2xx = int(bad.group(1)) if bad else 0
    if errors:
        non_2xx += sum(int(n) for n in re.findall(r"\d+", errors.group(0)))
    return rps, p50, p99, non_2xx


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="throughput-bench-"))
    settings = {"DATABASE_URL": args.database_url} if args.database_url else {}
    with gunicorn(workdir, **settings) as (base, env):
        key = flask(env, "create-key", "--user-id", "bench")
        session_id = requests.post(base + SESSIONS, json={}, headers={
            "Authorization": f"Bearer {key}"}).json()["id"]
        scripts = {}
        for name, body in (("create", '{"prd": {"title": "bench"}}'),
                           ("append", '{"type": "progress", "message": "step"}')):
            path = workdir / f"{name}.lua"
            path.write_text(LUA.format(body=body, key=key))
            scripts[name] = str(path)
        urls = {"create": base + SESSIONS, "append": f"{base}{SESSIONS}/{session_id}/events"}
        print("| endpoint | clients | req/s | p50 ms | p99 ms | non-2xx |")
        print("|---|---|---|---|---|---|")
        for name in ("create", "append"):
            for connections in (1, 4, 8):
                rps, p50, p99, bad = run_wrk(urls[name], scripts[name], connections,
                                             args.duration)
                print(f"| {name} | {connections} | {rps:.0f} | {p50:.1f} | {p99:.1f} | {bad} |",
                      flush=True)


if __name__ == "__main__":
    main()
