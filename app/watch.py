"""Following sessions as they change: one watcher per app and worker process.

Open streams and waiting event requests `follow` a session and sleep until the watcher
wakes them. The watcher is one thread per process with its own connection, whatever the
number of followers: it notices that the database changed (SQLite: `PRAGMA data_version`,
which moves when any other connection, in any process, commits; PostgreSQL: a
`NOTIFY gensessions` sent by every write of a session, in its transaction), reads the
state of the sessions followed here in one query, and wakes the followers of those whose
last event, status or existence changed, or that expired. So idle followers cost the
database nothing, and a change costs one query per process, not one per follower.
The followers then read what is new themselves.
"""
import logging
import os
import selectors
import threading
import time

from .models import Session, db
from .models.database import changes_noted, is_in_memory, is_sqlite
from .models.session import CHANGES_CHANNEL

from . import clock
from .db import binding, connected

log = logging.getLogger("gensessions.watch")
EXTENSION = "gensessions.watcher"
# How often the watcher looks for a change (SQLite): the bound of a delivery's wait for it.
INTERVAL_SECONDS = 0.02
# PostgreSQL wakes the watcher itself (NOTIFY); it still looks at least this often, for
# sessions that expired, and pings its connection when it has heard nothing for PING.
POSTGRES_INTERVAL_SECONDS = 0.25
PING_SECONDS = 30


class Follower:
    """One stream or waiting request following one session; `client_gone` once its client
    hung up (for a stream whose socket the watcher watches)."""

    __slots__ = ("session_id", "changed", "client", "client_gone")

    def __init__(self, session_id, client=None):
        self.session_id = session_id
        self.changed = threading.Event()
        self.client = client
        self.client_gone = False

    def wait(self, timeout):
        """Sleep until the session changes (True) or `timeout` seconds pass (False).

        Only a wake-up is cleared: one that lands as the time runs out stays set, so the
        next wait returns at once (the caller reads after every wait that says True).
        """
        if self.changed.wait(timeout):
            self.changed.clear()
            return True
        return False


class Watcher:
    """Wakes the followers of sessions that changed; see the module's docstring."""

    def __init__(self, app, interval=INTERVAL_SECONDS):
        self.app = app
        self.interval = interval
        self.closing = threading.Event()
        self._followers = {}  # session id -> set of Followers
        self._states = {}  # session id -> (last_sequence, status, expires_at), as last seen
        self._lock = threading.Lock()
        self._followed = threading.Event()  # set while anyone follows anything here
        self._thread = None
        self._pid = None
        self._clients = None  # a selector of streams' sockets, made in each process

    def follow(self, session_id, client=None):
        """A Follower of `session_id`, woken on its changes until `unfollow`; and, with
        `client` (a stream's socket), when the client hangs up: a stream waiting between
        events would notice only at its next write, holding its slot until then."""
        follower = Follower(session_id, client)
        with self._lock:
            self._followers.setdefault(session_id, set()).add(follower)
            self._followed.set()
            if self._pid != os.getpid():  # the first follower of this process starts it
                self._start()
            if client is not None:
                try:
                    self._clients.register(client, selectors.EVENT_READ, follower)
                except (ValueError, OSError):  # closed already
                    follower.client_gone = True
        return follower

    def unfollow(self, follower):
        with self._lock:
            if follower.client is not None:
                try:
                    self._clients.unregister(follower.client)
                except (KeyError, ValueError, OSError):
                    pass
            followers = self._followers.get(follower.session_id)
            if followers is not None:
                followers.discard(follower)
                if not followers:
                    del self._followers[follower.session_id]
                    self._states.pop(follower.session_id, None)
                    if not self._followers:
                        self._followed.clear()

    def close(self):
        """Wake every follower for good (the worker or the app is stopping): streams end
        at once, and the watcher's thread ends."""
        self.closing.set()
        self._followed.set()
        with self._lock:
            for followers in self._followers.values():
                for follower in followers:
                    follower.changed.set()

    def followed(self):
        with self._lock:
            return list(self._followers)

    def hung_up(self):
        """Wake the followers whose clients hung up (their sockets turned readable: a
        stream's client sends nothing, so that is the end of the connection)."""
        with self._lock:
            ready = self._clients.select(0) if self._clients.get_map() else []
            for key, _ in ready:
                self._clients.unregister(key.fileobj)
                key.data.client_gone = True
                key.data.changed.set()

    def _start(self):
        self._pid = os.getpid()
        self._states = {}
        self._clients = selectors.DefaultSelector()
        self._thread = threading.Thread(target=self._run, name="gensessions-watch",
                                        daemon=True)
        self._thread.start()

    def _run(self):
        while not self.closing.is_set():
            if not self._followed.wait(1):
                continue  # nobody follows anything here: nothing to look at
            try:
                with self.app.app_context():
                    if is_in_memory():
                        self._watch_in_memory()
                    elif is_sqlite():
                        self._watch_sqlite()
                    else:
                        self._watch_postgres()
            except Exception as error:  # the database went away: start again, re-reading all
                log.warning("watcher lost the database (%s); starting again", error)
                self.closing.wait(1)

    def _quiet(self):
        """Whether to stop watching for now: stopping, or nobody follows anything."""
        return self.closing.is_set() or not self._followed.is_set()

    def _watch_sqlite(self):
        """PRAGMA data_version moves when another connection, in any process, commits."""
        with connected(self.app):
            version = None
            while not self.closing.wait(self.interval) and not self._quiet():
                current = db.execute_sql("PRAGMA data_version").fetchone()[0]
                self.check(changed=current != version)
                self.hung_up()
                version = current

    def _watch_in_memory(self):
        """An in-memory database has one connection, which requests share one at a time:
        the writes of this process count their changes (note_change), and the watcher
        takes the connection only to read what changed."""
        bound = binding(self.app)
        seen = None
        while not self.closing.wait(self.interval) and not self._quiet():
            current = changes_noted(bound.database)
            if current != seen or self.unseen():
                with connected(self.app):
                    self.check(changed=current != seen)
                seen = current

    def _watch_postgres(self):
        """LISTEN for the NOTIFY every write of a session sends, on a connection of its own
        (given back to the pool unlistened)."""
        with connected(self.app):
            connection = db.connection()
            db.execute_sql(f"LISTEN {CHANGES_CHANNEL}")
            try:
                # Changes made while it was not listening: read every followed session.
                self.check(changed=True)
                heard = time.monotonic()
                with selectors.DefaultSelector() as selector:
                    selector.register(connection, selectors.EVENT_READ)
                    while not self._quiet():
                        selector.select(POSTGRES_INTERVAL_SECONDS)
                        connection.poll()
                        notified = {notice.payload for notice in connection.notifies}
                        connection.notifies.clear()
                        if notified:
                            heard = time.monotonic()
                        elif time.monotonic() - heard > PING_SECONDS:
                            db.execute_sql("SELECT 1")  # a dead connection raises here
                            heard = time.monotonic()
                        self.check(changed=bool(notified), only=notified)
                        self.hung_up()
            finally:
                if not connection.closed:
                    connection.cursor().execute("UNLISTEN *")

    def unseen(self):
        with self._lock:
            return any(session_id not in self._states for session_id in self._followers)

    def check(self, changed, only=None):
        """Read the followed sessions' state (all, or those in `only`, when the database
        changed, and those seen for the first time) and wake the followers of each one that
        changed or expired."""
        followed = self.followed()
        if not followed:
            return
        now = clock.now_ms()
        unseen = [session_id for session_id in followed if session_id not in self._states]
        wanted = unseen + [session_id for session_id in followed if session_id in self._states
                           and (changed and (only is None or session_id in only))]
        states = dict(self._states)
        if wanted:
            found = Session.states(wanted)
            for session_id in wanted:
                state = found.get(session_id)
                # First seen too: it may have changed since its follower last read it.
                if state != states.get(session_id, "unseen"):
                    self.wake(session_id)
                    states[session_id] = state
        for session_id in followed:  # expiry needs no query: its time is known
            state = states.get(session_id)
            if state is not None and state[2] <= now:
                states[session_id] = None
                self.wake(session_id)
        with self._lock:
            self._states = {session_id: state for session_id, state in states.items()
                            if session_id in self._followers}

    def wake(self, session_id):
        with self._lock:
            followers = list(self._followers.get(session_id, ()))
        for follower in followers:
            follower.changed.set()


def watcher(app):
    return app.extensions[EXTENSION]


def init_watch(app):
    app.extensions[EXTENSION] = Watcher(app)
