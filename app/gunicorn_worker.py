"""gunicorn's gthread worker with a read timeout, so a client that stalls mid-request
cannot keep a worker thread (2 workers x 8 threads would otherwise be 16 stalled sockets
from unresponsive).

gunicorn waits for a new connection's first bytes without committing a thread, but then
reads with no timeout. This worker gives every socket read READ_TIMEOUT seconds: a stalled
request line or header is closed, a stalled body answers 400 JSON (app.http.request_body).
"""
import logging
import socket

from gunicorn.workers import gthread

from .watch import EXTENSION as WATCHER

READ_TIMEOUT = 10


class QuietReadTimeouts(logging.Filter):
    """Log a read that timed out as one line, not as a "Socket error" traceback."""

    def filter(self, record):
        if record.exc_info and isinstance(record.exc_info[1], (socket.timeout, TimeoutError)):
            record.msg, record.args, record.exc_info = "Closed a stalled connection.", (), None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class ReadTimeoutThreadWorker(gthread.ThreadWorker):
    def init_process(self):
        self.log.error_log.addFilter(QuietReadTimeouts())
        super().init_process()

    def handle(self, conn):
        if not getattr(conn, "read_timeout_installed", False):
            conn.read_timeout_installed = True
            init = conn.init

            def init_with_timeout():
                init()
                conn.sock.settimeout(READ_TIMEOUT)
            conn.init = init_with_timeout
        return super().handle(conn)

    def handle_exit(self, sig, frame):
        """SIGTERM: besides stopping gracefully, end the live streams at once (their clients
        reconnect to another worker with Last-Event-ID), instead of holding the shutdown
        for up to graceful_timeout."""
        super().handle_exit(sig, frame)
        app = getattr(self, "wsgi", None)
        if app is not None and WATCHER in getattr(app, "extensions", {}):
            app.extensions[WATCHER].close()
