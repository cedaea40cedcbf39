"""gunicorn defaults for gensessions: `gunicorn wsgi:app` reads this file.

Every value can be overridden on the command line or with GUNICORN_CMD_ARGS.
"""
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
# Two processes fit a 2-core host; threads keep slow clients from blocking a worker.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("THREADS", "4"))
timeout = 30
graceful_timeout = 20
keepalive = 5
# Requests lines past this are refused by gunicorn itself; long enough for any real URL.
limit_request_line = 8190
accesslog = "-"
errorlog = "-"
