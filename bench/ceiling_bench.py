"""Benchmark: each endpoint against the ceiling of its own stack (hello-world Flask).

Run by hand with `make bench` (or `.venv/bin/python bench/ceiling_bench.py`); needs wrk
(Debian's package; `make bench` installs it) and matplotlib (the `bench` extra).

In one run it starts, one after the other and with the same gunicorn.conf.py settings,
a hello-world Flask app returning a small JSON object (bench/hello.py) and the service
(on a fresh SQLite file, or --database-url), then drives each with wrk at each
concurrency (16 and 64 by default): GET session (10 events), list first page (20 of
100 sessions), POST create, POST append event, PATCH (both rotating over 100 sessions).
It prints req/s, p50, p99, the ratio of req/s to the ceiling's, the p99 against the
ceiling's p99, and every non-2xx answer, as Markdown; writes the same as JSON and a
plot (PNG) beside it.

With --reference it also measures, in the same run, the issue's yardstick: a one-query
Flask + peewee app (bench/reference_app.py), GET of one row and POST of one row, with
SQLite's `synchronous=full` (the service's durability: an fsync per commit) and `normal`.
"""
import argparse
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile

import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server import flask, gunicorn  # noqa: E402  (after the path is set)

SESSIONS = "/v1/products/generation/sessions"
SEEDED = 100
EVENTS = 10
# endpoint -> (target ratio, "below this is a bug"), from the performance issue.
TARGETS = {"hello": (1.0, 1.0), "get": (0.6, 0.45), "list": (0.5, 0.35),
           "create": (0.45, 0.35), "append": (0.45, 0.35), "patch": (0.4, 0.3)}
LABELS = {"hello": "hello-world", "get": "GET session (10 events)",
          "list": "list first page (20)", "create": "POST create",
          "append": "POST append event", "patch": "PATCH"}
# The one-query app of --reference: endpoint -> (label, method, path, body), per synchronous.
REFERENCE = {f"reference-{verb}-{sync}": (f"one-query app {verb.upper()} (synchronous={sync})",
                                          sync, verb.upper(), path, body)
             for sync in ("full", "normal")
             for verb, path, body in (("get", "/items/item_1", None),
                                      ("post", "/items", '{"title": "bench", "n": 1}'))}
LABELS.update({endpoint: spec[0] for endpoint, spec in REFERENCE.items()})
WARM_UP_S = 3
SCRIPT = """
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["Content-Type"] = "application/json"
local paths = {{{paths}}}
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format("{method}", paths[(counter % #paths) + 1], nil, {body})
end
"""


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def best_of(repeat, base, script, connections, duration, server_pid=None):
    """The run with the most req/s of `repeat` (this VM's neighbours steal CPU now and then);
    non-2xx answers are counted over all of them."""
    runs = [run_wrk(base, script, connections, duration, server_pid) for _ in range(repeat)]
    best = max(runs, key=lambda run: run["rps"])
    return {**best, "non_2xx": sum(run["non_2xx"] for run in runs), "runs": len(runs)}


def workers_cpu_s(server_pid):
    """CPU seconds (user + system) used so far by the gunicorn's workers (from /proc)."""
    children = pathlib.Path(f"/proc/{server_pid}/task/{server_pid}/children")
    total = 0.0
    for pid in children.read_text().split():
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_wrk(base, script, connections, duration, server_pid=None):
    """Run wrk; return {rps, p50, p99, non_2xx} and, given the gunicorn's pid,
    worker_us (its workers' CPU time per request)."""
    threads = str(min(2, connections))  # wrk refuses more threads than connections
    cpu_before = workers_cpu_s(server_pid) if server_pid else None
    run = subprocess.run(
        ["wrk", "-t", threads, "-c", str(connections), "-d", f"{duration}s", "--latency",
         "-s", script, base], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"wrk failed ({run.returncode}) on {base} with {script}:\n"
                         f"{run.stdout}{run.stderr}")
    out = run.stdout
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    non_2xx = int(bad.group(1)) if bad else 0
    if errors:
        non_2xx += sum(int(n) for n in re.findall(r"\d+", errors.group(0)))
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
              "p50": to_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
              "p99": to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
              "non_2xx": non_2xx}
    if server_pid:
        served = int(re.search(r"(\d+) requests in", out).group(1))
        result["worker_us"] = (workers_cpu_s(server_pid) - cpu_before) / served * 1e6
    return result


def write_script(workdir, name, key, method, paths, body=None):
    path = workdir / f"{name}.lua"
    path.write_text(SCRIPT.format(key=key, method=method,
                                  paths=", ".join(json.dumps(p) for p in paths),
                                  body="nil" if body is None else json.dumps(body)))
    return str(path)


def seed(base, key):
    """100 sessions (the first with 10 events); return their ids."""
    headers = {"Authorization": f"Bearer {key}"}
    with requests.Session() as http:
        ids = [http.post(base + SESSIONS, json={"prd": {"title": f"seed {n}"}},
                         headers=headers).json()["id"] for n in range(SEEDED)]
        for n in range(EVENTS):
            http.post(f"{base}{SESSIONS}/{ids[0]}/events", headers=headers,
                      json={"type": "progress", "message": f"step {n}", "payload": {"n": n}})
    return ids


def service_scripts(workdir, key, ids):
    """endpoint -> wrk script."""
    one, many = [f"{SESSIONS}/{ids[0]}"], [f"{SESSIONS}/{i}" for i in ids]
    return {
        "get": write_script(workdir, "get", key, "GET", one),
        "list": write_script(workdir, "list", key, "GET", [SESSIONS]),
        "patch": write_script(workdir, "patch", key, "PATCH", many,
                              '{"plan": {"steps": ["a", "b"], "done": 1}}'),
        "append": write_script(workdir, "append", key, "POST", [p + "/events" for p in many],
                               '{"type": "progress", "message": "step", "payload": {"n": 1}}'),
        "create": write_script(workdir, "create", key, "POST", [SESSIONS],
                               '{"prd": {"title": "bench", "features": ["a", "b"]}}'),
    }


def measure(args, workdir):
    results = []
    with gunicorn(workdir, app="bench.hello:app") as (base, env):
        script = write_script(workdir, "hello", "-", "GET", ["/hello"])
        run_wrk(base, script, 16, WARM_UP_S)  # fresh workers: imports, caches, CPU clocks
        for connections in args.concurrency:
            results.append({"endpoint": "hello", "connections": connections,
                            **best_of(args.repeat, base, script, connections, args.duration,
                                      int(env["GUNICORN_PID"]))})
            print(f"hello c{connections}: {results[-1]}", file=sys.stderr)
    if args.reference:
        results += measure_reference(args, workdir)
    settings = {"DATABASE_URL": args.database_url} if args.database_url else {}
    with gunicorn(workdir, **settings) as (base, env):
        key = flask(env, "create-key", "--user-id", f"bench-{workdir.name}")
        scripts = service_scripts(workdir, key, seed(base, key))
        run_wrk(base, scripts["get"], 16, WARM_UP_S)
        for endpoint in ("get", "list", "patch", "append", "create"):
            for connections in args.concurrency:
                results.append({"endpoint": endpoint, "connections": connections,
                                **best_of(args.repeat, base, scripts[endpoint], connections,
                                          args.duration, int(env["GUNICORN_PID"]))})
                print(f"{endpoint} c{connections}: {results[-1]}", file=sys.stderr)
    ceiling = {r["connections"]: r for r in results if r["endpoint"] == "hello"}
    for result in results:
        hello = ceiling[result["connections"]]
        result["ratio"] = result["rps"] / hello["rps"]
        result["p99_ratio"] = result["p99"] / hello["p99"]
    return results


def measure_reference(args, workdir):
    """The one-query app with each `synchronous`, under the same gunicorn settings."""
    results = []
    for sync in ("full", "normal"):
        with gunicorn(workdir, app="bench.reference_app:app", REFERENCE_SYNCHRONOUS=sync,
                      REFERENCE_DATABASE=str(workdir / f"reference-{sync}.db")) as (base, env):
            for endpoint, (_, of_sync, method, path, body) in REFERENCE.items():
                if of_sync != sync:
                    continue
                script = write_script(workdir, endpoint, "-", method, [path], body)
                run_wrk(base, script, 16, WARM_UP_S)
                for connections in args.concurrency:
                    results.append({"endpoint": endpoint, "connections": connections,
                                    **best_of(args.repeat, base, script, connections,
                                              args.duration, int(env["GUNICORN_PID"]))})
                    print(f"{endpoint} c{connections}: {results[-1]}", file=sys.stderr)
    return results


def table(results):
    lines = ["| endpoint | clients | req/s | ratio | target | p50 ms | p99 ms | p99 / ceiling's "
             "| worker CPU us/req | non-2xx |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        target = f">= {TARGETS[r['endpoint']][0]}" if r["endpoint"] in TARGETS \
            and r["endpoint"] != "hello" else "-"
        lines.append(f"| {LABELS[r['endpoint']]} | {r['connections']} | {r['rps']:,.0f} "
                     f"| {r['ratio']:.2f} | {target} | {r['p50']:.1f} | {r['p99']:.1f} "
                     f"| {r['p99_ratio']:.1f}x | {r.get('worker_us', 0):.0f} | {r['non_2xx']} |")
    return "\n".join(lines)


def plot(results, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    endpoints = [e for e in TARGETS if e != "hello"]
    concurrencies = sorted({r["connections"] for r in results})
    figure, axes = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(concurrencies)
    for n, connections in enumerate(concurrencies):
        ratios = [next(r["ratio"] for r in results
                       if r["endpoint"] == e and r["connections"] == connections)
                  for e in endpoints]
        positions = [i + (n - (len(concurrencies) - 1) / 2) * width for i in range(len(endpoints))]
        axes.bar(positions, ratios, width, label=f"{connections} clients")
    for i, endpoint in enumerate(endpoints):
        target, floor = TARGETS[endpoint]
        axes.hlines(target, i - 0.45, i + 0.45, colors="green", linestyles="solid")
        axes.hlines(floor, i - 0.45, i + 0.45, colors="red", linestyles="dotted")
    axes.set_xticks(range(len(endpoints)), [LABELS[e] for e in endpoints], fontsize=8)
    axes.set_ylabel("req/s as a fraction of hello-world")
    axes.set_ylim(0, 1)
    axes.set_title(title + "\n(green: target, red dotted: below this is a bug)", fontsize=10)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeat", type=int, default=2, help="runs per cell; the best counts")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench"),
                        help="folder for the JSON results and the PNG plot")
    parser.add_argument("--name", default=None, help="file name stem (default: the database)")
    parser.add_argument("--reference", action="store_true",
                        help="also measure the one-query app (bench/reference_app.py)")
    args = parser.parse_args()
    database = "postgresql" if args.database_url else "sqlite"
    name = args.name or f"ceiling-{database}"
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="ceiling-bench-"))
    results = measure(args, workdir)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({
        "database": database, "duration_s": args.duration, "repeat": args.repeat,
        "python": platform.python_version(),
        "results": results}, indent=1) + "\n")
    title = f"gensessions on {database} vs hello-world Flask, same gunicorn settings"
    plot(results, out / f"{name}.png", title)
    print(table(results))
    failures = [r for r in results if r["non_2xx"]]
    if failures:
        print(f"\n{len(failures)} runs had non-2xx answers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
