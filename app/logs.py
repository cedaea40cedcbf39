"""The service's own log lines ("gensessions.*"), on stderr beside gunicorn's."""
import logging
import os
import re
import sys
import time

import orjson

LOGGER = "gensessions"
# Where the authenticated caller is kept on the WSGI environment, for the access line.
PRINCIPAL_KEY = "gensessions.principal"
access_log = logging.getLogger(f"{LOGGER}.access")


class WithoutQueryStrings(logging.Filter):
    """The development server's request lines (werkzeug's log) without their query strings,
    which may hold a stream token (`?access_token=`): a query string is never logged."""

    QUERY = re.compile(r"\?[^ \"]*")

    def filter(self, record):
        if record.args and isinstance(record.args[0], str):
            record.args = (self.QUERY.sub("", record.args[0]), *record.args[1:])
        return True


def configure_logging(level=logging.INFO):
    """Send gensessions.* records to stderr unless the host application set up a handler.

    The access log (gensessions.access) is one JSON object per line, alone.
    """
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(each, WithoutQueryStrings) for each in werkzeug_log.filters):
        werkzeug_log.addFilter(WithoutQueryStrings())
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


def log_request(environ, status, started, request_id):
    """One JSON line per request; never the credential, the body or the query string.

    `environ` is the request's WSGI environment (the caller is on it as PRINCIPAL_KEY once
    authenticated), `status` the answer's status code, `started` its perf_counter() start.
    """
    if not access_log.isEnabledFor(logging.INFO):
        return
    principal = environ.get(PRINCIPAL_KEY)
    access_log.info(orjson.dumps({
        "method": environ.get("REQUEST_METHOD"),
        "path": request_path(environ)[:256],
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        "request_id": request_id,
        "user_id": principal.user_id if principal else None,
        "credential": principal.credential_id if principal else None,
        "remote_addr": environ.get("REMOTE_ADDR"),
        "pid": os.getpid(),
    }).decode())


def request_path(environ):
    """The path as Flask's request.path has it (PATH_INFO's bytes read as UTF-8)."""
    path = environ.get("PATH_INFO") or ""
    return "/" + path.encode("latin-1").decode("utf-8", "replace").lstrip("/")
