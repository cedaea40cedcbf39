"""gunicorn defaults for gensessions, shipped in the package: `gensessions serve` runs with
them, and so does `gunicorn wsgi:app` in the repository (through gunicorn.conf.py there).

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""
import os
import socket
import sys
import time

__all__ = ["bind", "workers", "worker_class", "threads", "worker_connections", "reuse_port",
           "timeout", "graceful_timeout", "keepalive", "limit_request_line", "accesslog",
           "errorlog", "on_starting", "post_worker_init", "worker_exit"]

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Two processes fit a 2-core host; threads keep slow clients from blocking a worker,
# and 8 of them let more SQLite writes share one commit (docs/benchmarks.md: writes
# +10%, reads and PostgreSQL the same as with 4).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread with a read timeout (app/gunicorn_worker.py): a stalled client frees its thread.
worker_class = "gensessions.gunicorn_worker.ReadTimeoutThreadWorker"
# Each open live stream holds a thread for minutes (app/live.py): a worker has THREADS
# for ordinary requests plus one for each of the STREAM_MAX streams the app lets it hold,
# so streams never take the threads ordinary requests need. Threads are made as they are
# needed; a waiting one costs no CPU.
threads = int(os.environ.get("THREADS", "8")) + int(os.environ.get("STREAM_MAX", "500"))
# Connections a worker keeps at once: every thread busy, plus up to 1,000 idle keep-alive
# connections beside them (gthread's default 1,000 would leave none with 508 threads).
worker_connections = threads + 1000
# Each worker listens on its own SO_REUSEPORT socket, so the kernel spreads connections
# evenly between workers. On one shared socket, a burst of keep-alive connections all
# landed on whichever worker accepted first (16 of 16 in half the runs measured): one
# core served while the other idled, at a third of the throughput (docs/benchmarks.md).
reuse_port = True
timeout = 30
graceful_timeout = 20
keepalive = 5
# 0 lifts gunicorn's 8 KB request-line limit (it still stops at 1 MB), so that an
# over-long URL reaches the app and gets a JSON 404 instead of gunicorn's HTML 414.
limit_request_line = 0
# The app writes one JSON access line per request (gensessions.access) to stderr.
accesslog = None
errorlog = "-"


def on_starting(server):
    """Keep one shared socket where per-worker ones cannot be made: a unix socket path,
    an inherited descriptor (fd://, systemd socket activation, a re-exec), port 0.

    Otherwise refuse to start when something already listens on the address, as a
    shared socket would: with SO_REUSEPORT a second server of the same user would
    bind too and silently take half of the first one's connections.
    """
    inherited = os.environ.get("LISTEN_FDS") or os.environ.get("GUNICORN_FD")
    addresses = server.cfg.address
    if inherited or any(not isinstance(address, tuple) or address[1] == 0
                        for address in addresses):
        server.cfg.set("reuse_port", False)
        return
    for address in addresses:
        for attempt in range(5):  # as gunicorn retries a bind: a server may be stopping
            if address_free(address):
                break
            server.log.error("Connection in use: %s", address)
            time.sleep(1)
        else:
            server.log.error("Can't connect to %s", address)
            sys.exit(1)


def address_free(address):
    """Whether a socket without SO_REUSEPORT could bind `address` (no one listens there)."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def post_worker_init(worker):
    """Start this worker's purge scheduler as soon as it can serve (not at import)."""
    scheduler = worker.wsgi.extensions.get("purge_scheduler")
    if scheduler is not None:
        scheduler.start()


def worker_exit(server, worker):
    """Stop the purge scheduler with the worker (after its current batch)."""
    scheduler = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("purge_scheduler")
    if scheduler:
        scheduler.stop(timeout=graceful_timeout / 2)
