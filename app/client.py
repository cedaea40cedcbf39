"""Following a session's live events from Python, with nothing but the standard library.

    from gensessions.client import follow

    stream = follow("http://127.0.0.1:8000", session_id, key)
    for event in stream:            # every event, in order, each once
        print(event["sequence"], event["type"], event["message"])
    print(stream.ending, stream.session)   # "end" (and the final session) or "gone"

It reads `GET .../events/stream` and, when the connection drops or the server closes
it (STREAM_MAX_SECONDS, a restart, a 503), reconnects after the server's `retry:` delay
with `Last-Event-ID`, so that it misses nothing and sees nothing twice. It stops when
the server sends `end` (the session is completed, failed or cancelled, and everything is
sent), `gone` (deleted or expired), or answers 204 (terminal, nothing new).
"""
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request

SESSIONS = "/v1/products/generation/sessions"


class StreamError(RuntimeError):
    """The server refused the stream (401, 404, 400...): reconnecting would not help."""

    def __init__(self, status, body):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class follow:
    """An iterator over a session's events (dicts, as the API gives them); see the module.

    `key` is an API key (sent as `Authorization: Bearer`) or, with `token=True`, a stream
    token (sent as `access_token`). `after` resumes after an event id or sequence number.
    `attempts` bounds reconnections in a row that get no event (None: no bound).
    """

    def __init__(self, base_url, session_id, key, *, token=False, after=None, timeout=60,
                 attempts=None):
        self.url = f"{base_url.rstrip('/')}{SESSIONS}/{session_id}/events/stream"
        self.key, self.token, self.timeout, self.attempts = key, token, timeout, attempts
        self.last_event_id = None
        self.after = after
        self.retry_seconds = 1.0
        self.ending = None  # "end", "gone" or "no content", once the stream is over
        self.session = None  # the session's JSON that came with `end`
        self._events = self._run()

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._events)

    def request(self):
        url, headers = self.url, {"Accept": "text/event-stream"}
        query = {}
        if self.token:
            query["access_token"] = self.key
        else:
            headers["Authorization"] = f"Bearer {self.key}"
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        elif self.after is not None:
            query["after"] = str(self.after)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        return urllib.request.Request(url, headers=headers)

    def _run(self):
        failures = 0
        while self.ending is None:
            try:
                with urllib.request.urlopen(self.request(), timeout=self.timeout) as answer:
                    if answer.status == 204:
                        self.ending = "no content"
                        return
                    for event in self._messages(answer):
                        failures = 0
                        yield event
            except urllib.error.HTTPError as error:
                if error.code not in (429, 502, 503, 504):
                    raise StreamError(error.code, error.read().decode(errors="replace"))
                delay = error.headers.get("Retry-After")
                self.retry_seconds = float(delay) if delay and delay.isdigit() else 1.0
            except (OSError, http.client.HTTPException):
                pass  # the connection dropped (a URLError is an OSError): reconnect, resume
            if self.ending is None:
                failures += 1
                if self.attempts is not None and failures > self.attempts:
                    raise StreamError(None, f"no event after {self.attempts} reconnections")
                time.sleep(self.retry_seconds)

    def _messages(self, answer):
        """The events of one connection; sets `ending`, `session`, `retry_seconds`."""
        kind, data, event_id = None, [], None
        for raw in answer:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line:
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    kind = value
                elif field == "data":
                    data.append(value)
                elif field == "id":
                    event_id = value
                elif field == "retry" and value.isdigit():
                    self.retry_seconds = int(value) / 1000
                continue
            if data:  # a blank line ends a message
                payload = json.loads("\n".join(data))
                if kind == "end":
                    self.ending, self.session = "end", payload
                    return
                if kind == "gone":
                    self.ending = "gone"
                    return
                if event_id is not None:
                    self.last_event_id = event_id
                yield payload
            kind, data, event_id = None, [], None
