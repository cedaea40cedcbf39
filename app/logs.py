"""The service's own log lines ("gensessions.*"), on stderr beside gunicorn's."""
import logging
import os
import sys
import time

import orjson
from flask import g, request

LOGGER = "gensessions"
access_log = logging.getLogger(f"{LOGGER}.access")


def configure_logging(level=logging.INFO):
    """Send gensessions.* records to stderr unless the host application set up a handler.

    The access log (gensessions.access) is one JSON object per line, alone.
    """
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"))
    logger.addHandler(handler)
    access_handler = LineHandler()
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(access_handler)
    access_log.propagate = False


class LineHandler(logging.Handler):
    """Each record as one line on stderr, in one write(2) and without the handler lock.

    A write of a short line is atomic (up to PIPE_BUF, 4 KiB, on a pipe; an access line is
    well under 1 KiB), so threads never interleave; the lock a StreamHandler takes was 3%
    of a worker's time under load (py-spy), threads queueing on it.
    """

    def handle(self, record):
        if self.filter(record):
            self.emit(record)
        return True

    def emit(self, record):
        try:
            os.write(sys.stderr.fileno(), (self.format(record) + "\n").encode())
        except Exception:
            self.handleError(record)


def start_timer():
    g.started = time.perf_counter()


def log_request(response):
    """One JSON line per request; never the credential, the body or the query string."""
    principal = g.get("principal")
    access_log.info(orjson.dumps({
        "method": request.method,
        "path": request.path[:256],
        "status": response.status_code,
        "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter()))
                             * 1000, 2),
        "request_id": g.get("request_id"),
        "user_id": principal.user_id if principal else None,
        "credential": principal.credential_id if principal else None,
        "remote_addr": request.remote_addr,
        "pid": os.getpid(),
    }).decode())
    return response


def register_access_log(app):
    app.before_request(start_timer)
    app.after_request(log_request)
