"""gunicorn defaults for gensessions: `gunicorn wsgi:app` reads this file.

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Two processes fit a 2-core host; threads keep slow clients from blocking a worker.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# gthread with a read timeout (app/gunicorn_worker.py): a stalled client frees its thread.
worker_class = "app.gunicorn_worker.ReadTimeoutThreadWorker"
threads = int(os.environ.get("THREADS", "4"))
timeout = 30
graceful_timeout = 20
keepalive = 5
# 0 lifts gunicorn's 8 KB request-line limit (it still stops at 1 MB), so that an
# over-long URL reaches the app and gets a JSON 404 instead of gunicorn's HTML 414.
limit_request_line = 0
# The app writes one JSON access line per request (gensessions.access) to stderr.
accesslog = None
errorlog = "-"


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
