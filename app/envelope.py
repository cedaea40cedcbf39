"""What every answer carries, added around the Flask app as WSGI middleware.

Each answer, whatever produced it (a view, an error handler, routing's 404, Flask's
own 500), gets its request id (`X-Request-Id`), the security headers it lacks, and
one access-log line. Done as three Flask hooks this was a fifth of a GET's time:
werkzeug's `Headers` scans every header, case-insensitively, for each lookup, and
each hook reads `request` and `g` through context proxies. Here it is one pass over
the WSGI header list, with the values read straight from the environment.
"""
import time

from .http import request_id_of
from .logs import log_request
from .security import security_headers

REQUEST_ID_KEY = "gensessions.request_id"


class Envelope:
    """WSGI middleware: `app.wsgi_app = Envelope(app.wsgi_app)`."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        request_id = environ[REQUEST_ID_KEY] = request_id_of(environ)
        answered = []

        def start(status, headers, exc_info=None):
            headers = [(name, value) for name, value in headers
                       if name.lower() != "x-request-id"]
            headers += security_headers(environ, headers)
            headers.append(("X-Request-Id", request_id))
            answered.append(status)
            return start_response(status, headers, exc_info)

        body = self.wsgi_app(environ, start)
        # Flask calls start_response before it returns the body; the line is written
        # then, as the after_request hook did, not when the last byte has left.
        log_request(environ, int(answered[-1][:3]) if answered else 500, started, request_id)
        return body
