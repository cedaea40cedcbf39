"""Benchmark: live event streams (Server-Sent Events) held open while events are appended.

Run by hand with `make bench-stream` (or `.venv/bin/python bench/stream_bench.py`); needs
wrk (Debian's package; the make target installs it), psutil and matplotlib (the `bench`
extra). Linux only: arrival times are the kernel's receive timestamps (SO_TIMESTAMPNS).

For each number of watchers (100, 300 and 1,000 by default) it starts the service with its
own gunicorn settings (2 workers, THREADS + STREAM_MAX threads each) on a fresh SQLite
file, makes 30 sessions and a key (`gensessions create-key`), then:

1. wrk drives GET session (10 events) at 16 connections, as bench/ceiling_bench.py does,
   with no stream open (best of --repeat runs);
2. one client process opens the watchers (watcher i follows session i mod 30), each a raw
   HTTP/1.1 socket read through epoll, and waits until every one has its `retry:` line
   (a 503 is counted and retried after a second, as EventSource's user would);
3. with every watcher open and nothing appended, the workers' CPU over --idle seconds
   (psutil on the worker pids, % of one core) and each worker's RSS and threads;
4. the same wrk run with the watchers open;
5. another process appends --rate events a second through the API for --seconds (spread
   round-robin over the sessions; each 201's kernel receive time recorded per sequence);
   the watchers record each message's kernel receive time: delivery latency = arrival at
   the watcher - arrival of the append's 201, for every (event, watcher) pair; gaps and
   repeats (sequences must be exactly consecutive per watcher), messages not delivered,
   and watchers dropped (connections that ended or failed while held).

The load generator's two processes run at `nice --client-nice` (5 by default) so that
the server gets the CPU first; since the latencies come from kernel timestamps, the
client's own scheduling does not enter them (its read lag is reported beside them), and
its CPU is reported too.

With --postgres SERVER_URL it makes a database of its own on that server (dropped at the
end), runs --servers gunicorns (2 by default) over it, spreads the watchers and appends
over them (so that half the deliveries cross servers, through LISTEN/NOTIFY) and reports
the delivery figures (with the database's connections and CPU), without the wrk and idle
steps. JSON goes to docs/bench/stream-<database>.json; the plot (docs/bench/stream.png)
draws every stream-*.json there.
"""
import argparse
import contextlib
import json
import multiprocessing
import os
import pathlib
import platform
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psutil
import requests

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ceiling_bench import run_wrk, write_script  # noqa: E402  (after the path is set)
from gensessions.testing import LiveServer, ServerError  # noqa: E402

SESSIONS = "/v1/products/generation/sessions"
# Linux's SO_TIMESTAMPNS (also the control message's type): each recvmsg() carries the
# kernel's receive time of the data, as a struct timespec of CLOCK_REALTIME.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ANCILLARY = socket.CMSG_SPACE(16)
RETRY_REFUSED_S = 1.0


def kernel_time(ancillary):
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", data[:16])
            return seconds + nanoseconds * 1e-9
    return None


def timestamped_socket(address):
    sock = socket.create_connection(address)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def address_of(url):
    parts = urlsplit(url)
    return parts.hostname, parts.port


def raise_file_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---- the watchers: one process, every stream a raw socket read through epoll ----------

class Watch:
    """One stream: its HTTP/1.1 chunked body parsed into SSE messages as bytes arrive."""

    __slots__ = ("index", "session", "server", "sock", "raw", "head_done", "data_left",
                 "need_crlf", "sse", "last", "gaps", "repeats", "messages", "keep_alives",
                 "state", "reason")

    def __init__(self, index, session, server):
        self.index, self.session, self.server = index, session, server
        self.sock = None
        self.last = 0
        self.gaps = self.repeats = self.messages = self.keep_alives = 0
        self.reset()

    def reset(self):
        self.raw = bytearray()
        self.sse = bytearray()
        self.head_done = self.need_crlf = False
        self.data_left = 0
        self.state = "connecting"  # -> open -> closed (by us) | dropped | refused
        self.reason = None

    def feed(self, data, t_kernel, t_user, arrivals):
        """Take the bytes read; return None, or why the stream is over ("refused", ...)."""
        raw = self.raw
        raw += data
        if not self.head_done:
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                return None
            status = int(raw[9:12])
            del raw[:end + 4]
            if status != 200:
                return "refused" if status == 503 else f"status {status}"
            self.head_done = True
        while raw:
            if self.data_left:
                take = min(self.data_left, len(raw))
                self.sse += raw[:take]
                del raw[:take]
                self.data_left -= take
                if self.data_left:
                    break
                self.need_crlf = True
            if self.need_crlf:
                if len(raw) < 2:
                    break
                del raw[:2]
                self.need_crlf = False
                continue
            line_end = raw.find(b"\r\n")
            if line_end < 0:
                break
            size = int(raw[:line_end], 16)
            del raw[:line_end + 2]
            if size == 0:
                return "ended"
            self.data_left = size
        return self.messages_in(t_kernel, t_user, arrivals)

    def messages_in(self, t_kernel, t_user, arrivals):
        sse = self.sse
        while True:
            end = sse.find(b"\n\n")
            if end < 0:
                return None
            block = bytes(sse[:end])
            del sse[:end + 2]
            if block.startswith(b":"):
                self.keep_alives += 1
            elif block.startswith(b"retry:"):
                self.state = "open"
            elif block.startswith(b"id: "):
                sequence = int(block[4:block.index(b"\n")])
                if sequence == self.last + 1:
                    self.last = sequence
                elif sequence > self.last:
                    self.gaps += sequence - self.last - 1
                    self.last = sequence
                else:
                    self.repeats += 1
                self.messages += 1
                arrivals.append((self.index, self.session, sequence, t_kernel, t_user))
            elif block.startswith(b"event:"):
                return "event " + block[6:].split(b"\n")[0].strip().decode()


class WatcherProcess:
    """The watchers' process, driven through a pipe: open N, collect, close."""

    def __init__(self, nice):
        self.pipe, child = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=watchers_main, args=(child, nice),
                                               daemon=True)
        self.process.start()
        self.ps = psutil.Process(self.process.pid)

    def call(self, *command, timeout=180):
        self.pipe.send(command)
        if not self.pipe.poll(timeout):
            raise SystemExit(f"the watchers' process did not answer {command[0]}")
        return self.pipe.recv()

    def stop(self):
        with contextlib.suppress(OSError, EOFError):
            self.pipe.send(("exit",))
        self.process.join(10)


def watchers_main(pipe, nice):
    os.nice(nice)
    raise_file_limit()
    poller = select.epoll()
    poller.register(pipe.fileno(), select.EPOLLIN)
    watches = {}  # fd -> Watch
    arrivals = []
    retries = []  # (when, Watch)
    opening = None  # (deadline, started, counts) while an "open" command runs
    everyone = []
    target = {}  # the servers, and each one's request head, of the last "open"

    def connect(watch):
        watch.reset()
        watch.sock = sock = timestamped_socket(target["servers"][watch.server])
        sock.sendall(target["heads"][watch.server].format(
            target["sessions"][watch.session]).encode())
        sock.setblocking(False)
        watches[sock.fileno()] = watch
        poller.register(sock.fileno(), select.EPOLLIN)

    def finish(watch, reason):
        fd = watch.sock.fileno()
        poller.unregister(fd)
        del watches[fd]
        watch.sock.close()
        if reason == "refused" and watch.state == "connecting":
            if opening:
                opening["refused"] += 1
            watch.state = "refused"
            retries.append((time.monotonic() + RETRY_REFUSED_S, watch))
        elif reason == "closed":
            watch.state = "closed"
        else:
            if watch.state == "connecting" and opening:
                opening["failed"] += 1
            watch.state, watch.reason = "dropped", reason

    while True:
        timeout = 0.2 if (opening or retries) else 1.0
        for fd, _ in poller.poll(timeout):
            if fd == pipe.fileno():
                command = pipe.recv()
                if command[0] == "open":
                    _, servers, key, sessions, count = command
                    path = SESSIONS + "/{}/events/stream"
                    target.update(servers=servers, sessions=sessions, heads=[
                        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                        f"Authorization: Bearer {key}\r\nAccept: text/event-stream\r\n"
                        f"\r\n" for host, port in servers])
                    opening = {"started": time.monotonic(), "refused": 0,
                               "failed": 0, "deadline": time.monotonic() + 120}
                    first = len(everyone)
                    for n in range(first, first + count):
                        watch = Watch(n, n % len(sessions),
                                      (n // len(sessions)) % len(servers))
                        everyone.append(watch)
                        connect(watch)
                elif command[0] == "collect":
                    states = {}
                    for watch in everyone:
                        states[watch.state] = states.get(watch.state, 0) + 1
                    pipe.send({
                        "states": states,
                        "gaps": sum(w.gaps for w in everyone),
                        "repeats": sum(w.repeats for w in everyone),
                        "messages": sum(w.messages for w in everyone),
                        "keep_alives": sum(w.keep_alives for w in everyone),
                        "dropped": [(w.index, w.reason) for w in everyone
                                    if w.state == "dropped"],
                        "watchers": [(w.index, w.session, w.server) for w in everyone
                                     if w.state in ("open", "dropped")],
                        "arrivals": arrivals})
                    arrivals = []
                elif command[0] == "close":
                    for watch in list(watches.values()):
                        finish(watch, "closed")
                    retries.clear()
                    everyone = []
                    pipe.send("closed")
                elif command[0] == "exit":
                    return
                continue
            watch = watches.get(fd)
            if watch is None:
                continue
            while True:
                try:
                    data, ancillary, _, _ = watch.sock.recvmsg(65536, ANCILLARY)
                except BlockingIOError:
                    break
                except OSError as error:
                    finish(watch, f"error {error.errno}")
                    break
                if not data:
                    finish(watch, "eof")
                    break
                over = watch.feed(data, kernel_time(ancillary), time.time(), arrivals)
                if over:
                    finish(watch, over)
                    break
        now = time.monotonic()
        due = [watch for when, watch in retries if when <= now]
        if due:
            retries[:] = [(when, watch) for when, watch in retries if when > now]
            for watch in due:
                connect(watch)
        if opening:
            pending = sum(1 for w in everyone if w.state in ("connecting", "refused"))
            if not pending or now > opening["deadline"]:
                pipe.send({"opened": sum(1 for w in everyone if w.state == "open"),
                           "refused": opening["refused"], "failed": opening["failed"],
                           "pending": pending, "seconds": now - opening["started"]})
                opening = None


# ---- the appender: events at a steady rate through the API ------------------------------

def read_answer(sock):
    """One HTTP answer with a Content-Length; (status, body, kernel time of its last byte)."""
    raw, stamp = b"", None
    while True:
        data, ancillary, _, _ = sock.recvmsg(65536, ANCILLARY)
        if not data:
            raise ConnectionError("the server closed the connection")
        raw += data
        stamp = kernel_time(ancillary) or stamp
        end = raw.find(b"\r\n\r\n")
        if end < 0:
            continue
        head = raw[:end].decode("latin-1").lower()
        length = int(head.split("content-length:")[1].split("\r\n")[0])
        if len(raw) >= end + 4 + length:
            return int(raw[9:12]), raw[end + 4:end + 4 + length], stamp


def appender_main(pipe, nice, servers, key, sessions, rate, seconds, lanes=16):
    """Append `rate` events a second for `seconds` (event k to session k mod len(sessions),
    through server k mod len(servers)) from `lanes` threads, each with its own keep-alive
    connections, so that slow answers do not lower the rate offered; send back one record
    per append."""
    os.nice(nice)
    records = []
    start = time.time() + 0.2

    def lane(first):
        connections = [timestamped_socket(server) for server in servers]
        k = first
        while k < rate * seconds:
            when = start + k / rate
            pause = when - time.time()
            if pause > 0:
                time.sleep(pause)
            session, server = k % len(sessions), k % len(servers)
            body = json.dumps({"type": "progress", "message": f"bench {k}",
                               "payload": {"sentAt": time.time(), "k": k}}).encode()
            host, port = servers[server]
            sent = time.time()
            connections[server].sendall(
                f"POST {SESSIONS}/{sessions[session]}/events HTTP/1.1\r\n"
                f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                .encode() + body)
            status, answer, stamp = read_answer(connections[server])
            sequence = json.loads(answer)["sequence"] if status == 201 else None
            records.append((session, sequence, stamp, time.time(), sent, status, server,
                            sent - when))
            k += lanes
        for connection in connections:
            connection.close()
    threads = [threading.Thread(target=lane, args=(n,)) for n in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pipe.send(records)


def append_for(servers, key, sessions, rate, seconds, nice):
    """Start the appender's process; (process, pipe)."""
    pipe, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=appender_main, args=(
        child, nice, servers, key, sessions, rate, seconds), daemon=True)
    process.start()
    return process, pipe


# ---- measuring --------------------------------------------------------------------------

def percentile(values, fraction):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def workers_of(server):
    return psutil.Process(server.process.pid).children()


def cpu_of(processes):
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


class CpuMeter:
    """CPU seconds of groups of processes between start() and stop(), as % of one core."""

    def __init__(self, **groups):
        self.groups = groups

    def __enter__(self):
        self.started = time.monotonic()
        self.before = {name: [cpu_of([p]) for p in procs] for name, procs in self.groups.items()}
        return self

    def __exit__(self, *_):
        self.wall = time.monotonic() - self.started
        self.result = {}
        for name, procs in self.groups.items():
            used = [cpu_of([p]) - before for p, before in zip(procs, self.before[name])]
            self.result[name] = [round(100 * u / self.wall, 2) for u in used]


def serve(workdir, name, **settings):
    """A started LiveServer with the service's own gunicorn settings (bench/server.py's)."""
    server = LiveServer(workdir / name, workers=int(os.environ.get("WEB_CONCURRENCY", "2")),
                        cwd=ROOT, **settings)
    try:
        server.start()
    except ServerError as error:
        raise SystemExit(f"gunicorn did not start ({error})") from None
    return server


def make_sessions(base, key, count):
    headers = {"Authorization": f"Bearer {key}"}
    with requests.Session() as http:
        sessions = [http.post(base + SESSIONS, json={"prd": {"title": f"watched {n}"}},
                              headers=headers).json()["id"] for n in range(count)]
        target = http.post(base + SESSIONS, json={"prd": {"title": "read"}},
                           headers=headers).json()["id"]
        for n in range(10):
            http.post(f"{base}{SESSIONS}/{target}/events", headers=headers,
                      json={"type": "progress", "message": f"step {n}", "payload": {"n": n}})
    return sessions, target


def wrk_get(args, workdir, server, key, target):
    script = write_script(workdir, "get", key, "GET", [f"{SESSIONS}/{target}"])
    runs = [run_wrk(server.url, script, 16, args.wrk_seconds, server.process.pid)
            for _ in range(args.repeat)]
    best = max(runs, key=lambda run: run["rps"])
    return {**best, "all_rps": [round(run["rps"]) for run in runs],
            "non_2xx": sum(run["non_2xx"] for run in runs)}


def deliveries(args, servers, key, sessions, watchers, meter_groups, sample=None, label=""):
    """Append for args.seconds while the watchers read; the delivery figures."""
    addresses = [address_of(server.url) for server in servers]
    process, pipe = append_for(addresses, key, sessions, args.rate, args.seconds,
                               args.client_nice)
    appender = psutil.Process(process.pid)
    samples = []
    spy = None
    if args.py_spy:
        worker = meter_groups["workers"][0]
        spy = subprocess.Popen(
            [str(pathlib.Path(sys.executable).parent / "py-spy"), "record", "--pid",
             str(worker.pid), "--duration", str(args.seconds), "--rate", "200", "--format",
             "raw", "--nonblocking", "--output",
             str(pathlib.Path(args.py_spy) / f"worker-{label}.txt")]
            + (["--gil"] if args.py_spy_gil else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with CpuMeter(appender=[appender], **meter_groups) as meter:
        while process.is_alive() and not pipe.poll(0.5):
            if sample:
                samples.append(sample())
        records = pipe.recv()
    process.join()
    if spy:
        spy.wait()
    appended = {}
    for session, sequence, stamp, _, sent, status, server, _ in records:
        if status == 201:
            appended[(session, sequence)] = (stamp, server, sent)
    # Stragglers: wait until every open watcher has every event of its session, or 10 s.
    expected = {}
    for session, _ in appended:
        expected[session] = expected.get(session, 0) + 1
    deadline = time.monotonic() + 10
    while True:
        state = watchers.call("collect")
        arrivals_so_far = state["arrivals"]
        watchers.collected = getattr(watchers, "collected", []) + arrivals_so_far
        got = {}
        for index, session, sequence, _, _ in watchers.collected:
            got[index] = got.get(index, 0) + 1
        missing = sum(expected.get(session, 0) - got.get(index, 0)
                      for index, session, _ in state["watchers"])
        if missing <= 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    arrivals, watchers.collected = watchers.collected, []
    server_of = dict((index, server) for index, _, server in state["watchers"])
    latencies, same, across, lags, from_send = [], [], [], [], []
    for index, session, sequence, t_kernel, t_user in arrivals:
        sent = appended.get((session, sequence))
        if sent is None:
            continue
        latency = (t_kernel - sent[0]) * 1000
        latencies.append(latency)
        from_send.append((t_kernel - sent[2]) * 1000)
        (same if server_of.get(index) == sent[1] else across).append(latency)
        lags.append((t_user - t_kernel) * 1000)

    def summary(values):
        return {"count": len(values),
                **{name: round(percentile(values, q), 2) if values else None
                   for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))},
                "max": round(max(values), 2) if values else None,
                "min": round(min(values), 2) if values else None}
    return {
        "appended": len(appended),
        "append_errors": sum(1 for r in records if r[5] != 201),
        "append_rate": round(len(appended) / (max(r[4] for r in records)
                                              - min(r[4] for r in records)), 1),
        "append_behind_ms_p99": round(percentile([r[7] * 1000 for r in records], 0.99), 1),
        "append_latency_ms_p99": round(percentile([(r[2] - r[4]) * 1000 for r in records],
                                                  0.99), 1),
        "latency_ms": summary(latencies),
        "latency_from_send_ms": summary(from_send),
        "latency_same_server_ms": summary(same) if len(servers) > 1 else None,
        "latency_other_server_ms": summary(across) if len(servers) > 1 else None,
        "client_read_lag_ms": summary(lags),
        "gaps": state["gaps"], "repeats": state["repeats"],
        "undelivered": max(0, missing),
        "dropped": len(state["dropped"]), "dropped_reasons": state["dropped"][:20],
        "states": state["states"], "keep_alives": state["keep_alives"],
        "cpu_percent": meter.result, "seconds": round(meter.wall, 1),
        "samples": samples,
    }


def measure_sqlite(args, workdir):
    results = []
    for count in args.watchers:
        server = serve(workdir, f"sqlite-{count}", DATABASE_URL=str(workdir / f"{count}.db"))
        watchers = WatcherProcess(args.client_nice)
        try:
            key = server.create_key(f"stream-bench-{count}")
            sessions, target = make_sessions(server.url, key, args.sessions)
            workers = workers_of(server)
            result = {"watchers": count, "sessions": args.sessions, "workers": len(workers)}
            if args.only_delivery:
                result["open"] = watchers.call("open", [address_of(server.url)], key,
                                               sessions, count)
                time.sleep(1)
                result["rss_mib"] = [round(w.memory_info().rss / 2 ** 20, 1) for w in workers]
                result["delivery"] = deliveries(args, [server], key, sessions, watchers,
                                                {"workers": workers, "client": [watchers.ps]},
                                                label=f"sqlite-{count}")
                print(f"{count}: delivery {short(result['delivery'])}", file=sys.stderr)
                results.append(result)
                continue
            with CpuMeter(workers=workers) as meter:
                time.sleep(args.idle)
            result["idle_cpu_none_percent"] = meter.result["workers"]
            result["rss_none_mib"] = [round(w.memory_info().rss / 2 ** 20, 1) for w in workers]
            run_wrk(server.url, write_script(workdir, "warm", key, "GET",
                                             [f"{SESSIONS}/{target}"]), 16, 2)
            result["wrk_without"] = wrk_get(args, workdir, server, key, target)
            print(f"{count}: without {result['wrk_without']}", file=sys.stderr)
            result["open"] = watchers.call("open", [address_of(server.url)], key, sessions,
                                           count)
            print(f"{count}: open {result['open']}", file=sys.stderr)
            time.sleep(1)
            with CpuMeter(workers=workers, client=[watchers.ps]) as meter:
                time.sleep(args.idle)
            result["idle_cpu_percent"] = meter.result["workers"]
            result["idle_client_cpu_percent"] = meter.result["client"][0]
            result["rss_mib"] = [round(w.memory_info().rss / 2 ** 20, 1) for w in workers]
            result["threads"] = [w.num_threads() for w in workers]
            result["wrk_with"] = wrk_get(args, workdir, server, key, target)
            result["wrk_ratio"] = round(result["wrk_with"]["rps"] / result["wrk_without"]["rps"],
                                        3)
            print(f"{count}: with {result['wrk_with']}", file=sys.stderr)
            result["delivery"] = deliveries(args, [server], key, sessions, watchers,
                                            {"workers": workers, "client": [watchers.ps]},
                                            label=f"sqlite-{count}")
            print(f"{count}: delivery {short(result['delivery'])}", file=sys.stderr)
            if args.reconnect and count == max(args.watchers):
                result["reconnect"] = reconnect(watchers, server, key, sessions, count)
                print(f"{count}: reconnect {result['reconnect']}", file=sys.stderr)
            watchers.call("close")
            results.append(result)
        finally:
            watchers.stop()
            server.stop(30)
    return results


def reconnect(watchers, server, key, sessions, count):
    """Every watcher's connection drops at once and each reconnects right away (as after a
    proxy restart): how many get 503 while the server still holds the old streams."""
    watchers.call("close")
    opened = watchers.call("open", [address_of(server.url)], key, sessions, count)
    return opened


def short(delivery):
    return {k: delivery[k] for k in ("appended", "latency_ms", "gaps", "repeats",
                                     "undelivered", "dropped", "cpu_percent")}


# ---- PostgreSQL: a database of our own, several servers over it -------------------------

def server_connection(url):
    import psycopg2
    connection = psycopg2.connect(url)
    connection.autocommit = True
    return connection


@contextlib.contextmanager
def own_database(server_url):
    """A new database on the server of `server_url` (as tests/databases.py makes them),
    dropped at the end; yields its URL."""
    name = f"gs_stream_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    connection = server_connection(server_url)
    connection.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE template0 '
                                "LC_COLLATE 'C' LC_CTYPE 'C'")
    url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))
    try:
        yield url, name
    finally:
        connection.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.close()


def postgres_processes():
    return [p for p in psutil.process_iter(["name", "cmdline"])
            if (p.info["cmdline"] or [""])[0].startswith("postgres")]


def measure_postgres(args, workdir):
    results = []
    for count in args.watchers:
        with own_database(args.postgres) as (url, name):
            served_url = url + ("?" + args.database_options if args.database_options else "")
            servers = [serve(workdir, f"pg-{count}-{n}", DATABASE_URL=served_url)
                       for n in range(args.servers)]
            watchers = WatcherProcess(args.client_nice)
            monitor = server_connection(args.postgres)
            try:
                key = servers[0].create_key(f"stream-bench-{count}")
                sessions, _ = make_sessions(servers[0].url, key, args.sessions)
                workers = [w for server in servers for w in workers_of(server)]
                result = {"watchers": count, "sessions": args.sessions,
                          "servers": len(servers), "workers": len(workers)}
                result["open"] = watchers.call("open", [address_of(s.url) for s in servers],
                                               key, sessions, count)
                print(f"pg {count}: open {result['open']}", file=sys.stderr)
                time.sleep(1)
                result["rss_mib"] = [round(w.memory_info().rss / 2 ** 20, 1) for w in workers]

                def connections():
                    cursor = monitor.cursor()
                    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                   (name,))
                    return cursor.fetchone()[0]
                result["connections_idle"] = connections()
                result["delivery"] = deliveries(
                    args, servers, key, sessions, watchers,
                    {"workers": workers, "client": [watchers.ps],
                     "postgres": postgres_processes()}, sample=connections,
                    label=f"postgresql-{count}")
                samples = result["delivery"].pop("samples")
                result["connections_max"] = max(samples) if samples else None
                print(f"pg {count}: delivery {short(result['delivery'])} "
                      f"connections {result['connections_idle']} -> "
                      f"{result['connections_max']}", file=sys.stderr)
                watchers.call("close")
                results.append(result)
            finally:
                monitor.close()
                watchers.stop()
                for server in servers:
                    server.stop(30)
    return results


# ---- output -----------------------------------------------------------------------------

def table(results, postgres):
    lines = []
    if not postgres and all("idle_cpu_percent" in r for r in results):
        lines += ["| watchers | held | 503s while opening | idle CPU, workers (% of a core) "
                  "| idle CPU, client | RSS per worker MiB (none -> open) | threads "
                  "| GET req/s without | with | ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in results:
            lines.append(
                f"| {r['watchers']:,} | {r['open']['opened']:,} | {r['open']['refused']} "
                f"| {' + '.join(f'{c:.1f}' for c in r['idle_cpu_percent'])} "
                f"| {r['idle_client_cpu_percent']:.1f} "
                f"| {' / '.join(f'{a:.0f} -> {b:.0f}' for a, b in zip(r['rss_none_mib'], r['rss_mib']))} "  # noqa: E501
                f"| {' / '.join(str(t) for t in r['threads'])} "
                f"| {r['wrk_without']['rps']:,.0f} | {r['wrk_with']['rps']:,.0f} "
                f"| {r['wrk_ratio']:.2f} |")
        lines.append("")
    lines += ["| watchers | events | deliveries | p50 ms | p99 ms | max ms | gaps | repeats "
              "| undelivered | dropped | workers' CPU % | client CPU % | client read lag p99 ms |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        d = r["delivery"]
        latency = d["latency_ms"]
        lines.append(
            f"| {r['watchers']:,} | {d['appended']:,} | {latency['count']:,} "
            f"| {latency['p50']} | {latency['p99']} | {latency['max']} | {d['gaps']} "
            f"| {d['repeats']} | {d['undelivered']} | {d['dropped']} "
            f"| {' + '.join(f'{c:.0f}' for c in d['cpu_percent']['workers'])} "
            f"| {d['cpu_percent']['client'][0]:.1f} | {d['client_read_lag_ms']['p99']} |")
    return "\n".join(lines)


def plot(out):
    """Both panels from every stream-*.json in `out`: the runs of one database (and pool
    setting) make one line, whatever STREAM_MAX each ran with."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    families, dropped = {}, []
    for path in sorted(out.glob("stream-*.json")):
        data = json.loads(path.read_text())
        if "results" not in data:
            continue
        servers = data["results"][0].get("servers", 1) if data["results"] else 1
        family = "SQLite, 1 server" if data["database"] == "sqlite" else (
            f"PostgreSQL, {servers} servers" + (f" ({data['database_options']})"
                                                if data.get("database_options") else ""))
        for result in data["results"]:
            if result["delivery"]["dropped"] or result["delivery"]["undelivered"]:
                dropped.append(f"{family}: {result['watchers']:,}")
                continue  # streams lost: no latency to compare
            families.setdefault(family, {})[result["watchers"]] = {
                **result, "stream_max": data.get("stream_max")}
    figure, (latency_axes, cost_axes) = plt.subplots(1, 2, figsize=(11.5, 4.8))
    colours = iter(["tab:blue", "tab:orange", "tab:purple", "tab:brown"])
    for family, by_count in families.items():
        counts = sorted(by_count)
        colour = next(colours)
        for name, style, width in (("p50", ":", 1.2), ("p99", "-", 2), ("max", "--", 0.8)):
            latency_axes.plot(counts, [by_count[c]["delivery"]["latency_ms"][name]
                                       for c in counts], style, color=colour, marker="o",
                              linewidth=width, markersize=4,
                              label=family if name == "p99" else None)
    latency_axes.axhline(250, color="green", linewidth=0.8, label="p99 target (250 ms)")
    latency_axes.axvline(1000, color="grey", linewidth=0.8, linestyle="-.",
                         label="2 x STREAM_MAX 500 (past it: 1,500)")
    latency_axes.set_xscale("log")
    latency_axes.set_yscale("log")
    latency_axes.set_xlabel("open watchers (30 sessions, 50 events/s appended)")
    latency_axes.set_ylabel("append's 201 -> arrival at each watcher, ms\n"
                            "(dotted: p50, solid: p99, dashed: max)")
    title = "Delivery latency"
    if dropped:
        title += "\n(not drawn, streams dropped: " + "; ".join(dropped) + ")"
    latency_axes.set_title(title, fontsize=9)
    latency_axes.legend(fontsize=7, loc="lower right")
    sqlite = [r for family, by_count in families.items() if family.startswith("SQLite")
              for _, r in sorted(by_count.items()) if "idle_cpu_percent" in r]
    if sqlite:
        counts = [r["watchers"] for r in sqlite]
        cost_axes.plot(counts, [sum(r["idle_cpu_percent"]) for r in sqlite], marker="o",
                       color="tab:blue", label="workers' CPU, watchers idle")
        cost_axes.plot(counts, [sum(r["delivery"]["cpu_percent"]["workers"]) for r in sqlite],
                       marker="s", color="tab:orange", label="workers' CPU, 50 events/s")
        cost_axes.axhline(5, color="green", linewidth=0.8, label="idle target (5% of a core)")
        cost_axes.axvline(1000, color="grey", linewidth=0.8, linestyle="-.")
        cost_axes.set_xscale("log")
        cost_axes.set_xlabel("open watchers (SQLite, 2 workers)")
        cost_axes.set_ylabel("% of one core, both workers together")
        rss = cost_axes.twinx()
        rss.plot(counts, [sum(r["rss_mib"]) / len(r["rss_mib"]) for r in sqlite], marker="^",
                 color="tab:green", linestyle="--", label="RSS per worker (MiB, right)")
        rss.set_ylabel("RSS per worker, MiB")
        rss.set_ylim(bottom=0)
        handles, labels = cost_axes.get_legend_handles_labels()
        more_handles, more_labels = rss.get_legend_handles_labels()
        cost_axes.legend(handles + more_handles, labels + more_labels, fontsize=7,
                         loc="upper left")
        cost_axes.set_title("Workers' CPU and memory (SQLite)", fontsize=9)
    figure.suptitle("gensessions live streams on a 2-core host (bench/stream_bench.py)",
                    fontsize=11)
    figure.tight_layout()
    figure.savefig(out / "stream.png", dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--rate", type=int, default=50, help="events appended a second")
    parser.add_argument("--seconds", type=int, default=20, help="seconds of appends")
    parser.add_argument("--idle", type=float, default=10, help="seconds of idle CPU")
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2, help="wrk runs a cell; the best counts")
    parser.add_argument("--client-nice", type=int, default=5,
                        help="niceness of the watchers' and appender's processes")
    parser.add_argument("--reconnect", action="store_true",
                        help="at the largest count, drop and reopen every watcher at once")
    parser.add_argument("--postgres", metavar="SERVER_URL",
                        help="e.g. postgresql://postgres@127.0.0.1:5432/postgres: a database "
                             "of its own on that server, --servers servers over it")
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--database-options", metavar="QUERY",
                        help="with --postgres: a query string added to the servers' "
                             "DATABASE_URL, e.g. max_connections=15&timeout=10 (the pool's)")
    parser.add_argument("--py-spy", metavar="FOLDER",
                        help="record a py-spy profile (raw, collapsed stacks) of one worker "
                             "during each append phase into FOLDER")
    parser.add_argument("--py-spy-gil", action="store_true",
                        help="with --py-spy: only samples of the thread holding the GIL")
    parser.add_argument("--name", help="JSON file stem (default: stream-<database>)")
    parser.add_argument("--label", help="the run's name in the plot (default: the database)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "bench"))
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--only-delivery", action="store_true",
                        help="SQLite: skip the wrk and idle steps")
    args = parser.parse_args()
    if platform.system() != "Linux":
        raise SystemExit("needs Linux (SO_TIMESTAMPNS, epoll)")
    raise_file_limit()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="stream-bench-"))
    database = "postgresql" if args.postgres else "sqlite"
    started = time.time()
    results = (measure_postgres if args.postgres else measure_sqlite)(args, workdir)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import gensessions
    code = pathlib.Path(gensessions.__file__).resolve().parent
    commit = subprocess.run(["git", "-C", str(code), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    (out / f"{args.name or 'stream-' + database}.json").write_text(json.dumps({
        "database": database, "label": args.label or database, "code": str(code), "commit": commit,
        "python": platform.python_version(), "started": time.strftime(
            "%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "rate": args.rate, "seconds": args.seconds, "sessions": args.sessions,
        "client_nice": args.client_nice, "stream_max": os.environ.get("STREAM_MAX", "500"),
        "database_options": args.database_options,
        "results": results}, indent=1) + "\n")
    if not args.no_plot:
        plot(out)
    print(table(results, bool(args.postgres)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
