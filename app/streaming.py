"""How a session's events are followed live: the Server-Sent Events stream, the long-poll
of the events list, and the slots both hold.

A stream replays the events after its resume point, then sleeps on the process's watcher
(app/watch.py) and sends what is new each time it is woken, in `sequence` order: it reads
from the database each time, from the last sequence it sent, so it never skips or repeats
one however the wake-ups fall. It ends with `end` once its session is terminal and
everything is sent, with `gone` once the session is deleted or expired, after
STREAM_MAX_SECONDS, and at once when the worker stops; the client reconnects with
Last-Event-ID and misses nothing.

Each open stream holds one of the worker's request threads: STREAM_MAX of them per
worker process (the gunicorn settings give each worker THREADS + STREAM_MAX threads, so
ordinary requests always keep THREADS); a stream past that answers 503.
"""
import threading
import time
from contextlib import contextmanager

import orjson
from flask import current_app, request, stream_with_context

from .models import NotFound, Session, TERMINAL_STATUSES
from .schemas import event_schema, session_schema

from . import clock
from .db import idle, let_go, reading
from .errors import ApiError
from .watch import watcher

# What EventSource waits before reconnecting after the stream closes.
RETRY_MS = 1000
# Events read from the database at a time.
PAGE = 500
KEEP_ALIVE = b": keep-alive\n\n"
GONE = b"event: gone\ndata: {}\n\n"
EXTENSION = "gensessions.stream_slots"


class StreamSlots:
    """The open streams this process may hold (STREAM_MAX)."""

    def __init__(self, size):
        self.size = size
        self._free = threading.BoundedSemaphore(size)

    def take(self):
        """Take a slot; False when all are held."""
        return self._free.acquire(blocking=False)

    def give_back(self):
        self._free.release()


def slots(app):
    return app.extensions[EXTENSION]


def init_streaming(app):
    app.extensions[EXTENSION] = StreamSlots(app.config["STREAM_MAX"])


STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
BUSY_SECONDS = 5


def open_stream(session_id, user_id, after):
    """The answer to a stream request: the stream from `after` (an event id or a sequence
    number), 204 for a terminal session with nothing after it, 404, or 503 when this process
    holds STREAM_MAX streams already."""
    app = current_app._get_current_object()
    session = Session.get_live(session_id, user_id, clock.now_ms())
    after = session.sequence_of(after)
    if session.status in TERMINAL_STATUSES and session.last_sequence <= after:
        return app.response_class(status=204)
    if not slots(app).take():
        raise ApiError(503, "This server holds as many live streams as it can; retry shortly "
                            "(or poll GET .../events with `wait`)",
                       headers={"Retry-After": str(BUSY_SECONDS)})
    give_back = SlotReturn(slots(app))
    try:
        body = stream_with_context(event_stream(app, session_id, user_id, after,
                                                app.config))
        response = app.response_class(body, mimetype="text/event-stream",
                                      headers=STREAM_HEADERS)
    except BaseException:
        give_back()
        raise
    # However the stream ends, even before its first byte (a client gone at once): the
    # server closes the answer, and the slot is free again.
    response.call_on_close(give_back)
    return response


class SlotReturn:
    """Gives a stream's slot back, once."""

    def __init__(self, held):
        self.held = held
        self._once = threading.Lock()
        self.done = False

    def __call__(self):
        with self._once:
            if not self.done:
                self.done = True
                self.held.give_back()


@contextmanager
def following(session_id):
    """A Follower of `session_id` for the block, holding a slot; None when none is free (the
    caller then answers without waiting)."""
    app = current_app._get_current_object()
    if not slots(app).take():
        yield None
        return
    follow = watcher(app)
    follower = follow.follow(session_id)
    try:
        yield follower
    finally:
        follow.unfollow(follower)
        slots(app).give_back()


def wait_for_events(read, session_id, seconds):
    """`read()` (a list of events) again each time the session changes, until it gives some
    or `seconds` pass; what it gave last."""
    with following(session_id) as follower:
        events = read()
        if follower is None:
            return events
        deadline = time.monotonic() + seconds
        closing = watcher(current_app).closing
        while not events and not closing.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            with idle():
                woken = follower.wait(left)
            if woken:
                events = read()
        return events


def message(event):
    """One event as an SSE message: its sequence as the id, its JSON as the data."""
    return (f"id: {event.sequence}\ndata: ".encode()
            + orjson.dumps(event_schema.dump(event)) + b"\n\n")


def event_stream(app, session_id, user_id, after, settings):
    """The stream's messages (bytes), from `after` on; see the module's docstring.

    Runs while the request's context is kept (stream_with_context); stops following the
    session when it ends, however it ends (a client that went away ends it at the next
    write). Its slot goes back when the server closes the answer (open_stream). It holds
    the database only while it reads: writes to the client and sleeps leave it to others.
    """
    follow = watcher(app)
    # The client's socket, where the server gives it (gunicorn): the watcher wakes the
    # stream the moment the client hangs up, which frees its slot at once.
    follower = follow.follow(session_id, request.environ.get("gunicorn.socket"))
    heartbeat = settings["STREAM_HEARTBEAT_SECONDS"]
    deadline = time.monotonic() + settings["STREAM_MAX_SECONDS"]
    try:
        let_go()  # the request's hold: this answer reads now and then, and sleeps between
        yield f"retry: {RETRY_MS}\n\n".encode()
        last_write = time.monotonic()
        while True:
            with reading():
                try:
                    session = Session.get_live(session_id, user_id, clock.now_ms())
                except NotFound:
                    session = None
                events = session.events_after(after, PAGE) if session else []
            if session is None:
                yield GONE
                return
            for event in events:
                yield message(event)
                after = event.sequence
            if events:
                last_write = time.monotonic()
                if len(events) == PAGE:
                    continue  # more to replay
            if session.status in TERMINAL_STATUSES and session.last_sequence <= after:
                yield b"event: end\ndata: " + orjson.dumps(session_schema.dump(session)) \
                    + b"\n\n"
                return
            while True:
                now = time.monotonic()
                if now >= deadline or follow.closing.is_set() or follower.client_gone:
                    return
                quiet_until = last_write + heartbeat
                if follower.wait(max(0.0, min(quiet_until, deadline) - now)):
                    break
                if time.monotonic() >= quiet_until:
                    yield KEEP_ALIVE
                    last_write = time.monotonic()
    finally:
        follow.unfollow(follower)
