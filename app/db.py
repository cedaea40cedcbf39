"""Binding the models' database to a Flask app, for requests and for the CLI.

Each app opens its own database (its DATABASE_URL) and keeps it in `app.extensions`;
the models' `db` finds it through the app context, so several apps in one process
(an embedding project's tests, a demo beside a real server) never mix their data.
"""
import logging
import os
import threading
from contextlib import contextmanager

import click

from flask import current_app, g, request
from flask.globals import _cv_app
from peewee import InterfaceError, OperationalError

from .models import create_tables, db
from .models.database import NoDatabase, is_in_memory, is_sqlite, open_database

log = logging.getLogger("gensessions.db")
EXTENSION = "gensessions.database"


class Binding:
    """One app's database, and what the app knows about it."""

    def __init__(self, database):
        self.database = database
        # An in-memory database is one connection shared by every thread: one request
        # at a time uses it.
        self.shared = is_in_memory(database)
        self.lock = threading.RLock()
        # False until the tables are known to exist (a server may start before its database).
        self.tables_ready = False


def binding(app=None):
    """The Binding of `app` (the current app by default)."""
    return (app or current_app).extensions[EXTENSION]


def app_database():
    """The current app's database: what the models' `db` stands for during a request.

    Read from Flask's own context variable (what `current_app` reads through a proxy):
    85 ns against 820 through `has_app_context()` and `current_app`, and a request uses
    `db` dozens of times.
    """
    context = _cv_app.get(None)
    if context is None:
        raise NoDatabase("no gensessions app is active here: run inside "
                         "`with app.app_context():` (or bind one with `using(database)`)")
    return context.app.extensions[EXTENSION].database


db.locate_with(app_database)


def database_url(app):
    """DATABASE_URL, or a SQLite file in the instance folder (made when missing) by default."""
    if app.config["DATABASE_URL"]:
        return app.config["DATABASE_URL"]
    os.makedirs(app.instance_path, exist_ok=True)
    return os.path.join(app.instance_path, "gensessions.db")


def uses_database():
    """Whether this request touches the database: not for a route that answers without it
    (the OpenAPI document, the docs page: marked by their blueprint), nor for what routing
    answers itself (redirects, 404, 405)."""
    if request.url_rule is None:
        return False
    blueprint = current_app.blueprints.get(request.blueprint) if request.blueprint else None
    return not getattr(blueprint, "without_database", False)


def connect():
    """Open this thread's connection once and keep it across requests.

    Closing after each request would checkpoint SQLite's WAL every time
    (measured about 40x slower); a connection that broke is replaced.
    """
    if not uses_database():
        return
    bound = binding()
    if bound.shared:
        bound.lock.acquire()
        g.holds_database = True
    try:
        db.connect(reuse_if_open=True)
        if not is_sqlite() and not db.is_connection_usable():
            # The server dropped this connection (a restart, a failover): open a new one.
            raise InterfaceError("connection lost")
    except (OperationalError, InterfaceError):
        if not db.is_closed():
            db.close()
        db.connect()
    if not bound.tables_ready:
        ensure_tables()


def ensure_tables():
    """Create or migrate the current app's tables; raises the database's error (a 503)
    while it is down. Returns the migration steps applied."""
    applied = create_tables()
    if applied:
        log.info("schema migrated: %s", ", ".join(applied))
    binding().tables_ready = True
    return applied


def creating_for_cli():
    """Whether the app is being made for a `flask` command (its click context is live).

    Commands migrate when they run (so that `migrate` can tell what it applied, and
    `migrate --status` what is pending); a server migrates as it starts.
    """
    return click.get_current_context(silent=True) is not None


def end_request(exc=None):
    """Undo whatever transaction a failed request left open; on PostgreSQL, give the
    connection back to the pool (SQLite's stay with their thread: closing the last one
    would checkpoint the WAL)."""
    if not uses_database():
        return
    try:
        if not db.is_closed() and db.in_transaction():
            db.rollback()
        if not is_sqlite():
            db.close()
    finally:
        let_go()


def init_db(app):
    """Open the database named by the app's config, create missing tables, add the hooks."""
    bound = app.extensions[EXTENSION] = Binding(
        open_database(database_url(app), app.config["SQLITE_BUSY_TIMEOUT"]))
    app.before_request(connect)
    app.teardown_request(end_request)
    if creating_for_cli() and not bound.shared:
        return
    with app.app_context():
        try:
            if bound.shared:
                db.connect(reuse_if_open=True)  # an in-memory database lives as its connection
                ensure_tables()
            else:
                with db.connection_context():
                    ensure_tables()
        except (OperationalError, InterfaceError) as error:
            # Serve anyway: requests answer 503 until the database is back.
            log.warning("database unavailable at start (%s); answering 503 until it is", error)


@contextmanager
def connected(app):
    """`app`'s database, connected, for work outside requests (the purge, the CLI, tests).

    An in-memory database is one connection that lives as long as the app: requests share
    it one at a time, and it is never closed here (closing it would drop the database).
    """
    with app.app_context():
        bound = binding()
        if bound.shared:
            with bound.lock:
                db.connect(reuse_if_open=True)
                yield
        else:
            with db.connection_context():
                yield


def let_go():
    """Give up the database this request holds, for the rest of its life: on PostgreSQL its
    connection goes back to the pool; an in-memory database's one connection is left to
    other requests (a SQLite file's connection stays with its thread). Safe to call twice
    (a streamed answer's teardown runs again when its stream ends)."""
    if not is_sqlite() and not db.is_closed() and not db.in_transaction():
        db.close()
    if g.pop("holds_database", False):
        binding().lock.release()


@contextmanager
def idle():
    """A block in which a request needs no database (a long poll asleep); see let_go. It
    holds it again after the block, as it did before."""
    held = g.get("holds_database", False)
    let_go()
    try:
        yield
    finally:
        if held:
            binding().lock.acquire()
            g.holds_database = True


@contextmanager
def reading():
    """The database for one read of a long-running answer (a stream), which holds nothing
    between its reads (let_go)."""
    bound = binding()
    if bound.shared:
        with bound.lock:
            db.connect(reuse_if_open=True)
            yield
        return
    try:
        yield
    finally:
        if not is_sqlite():
            db.close()


def close_database(app):
    """Close this thread's connection to `app`'s database (an in-memory one is dropped)."""
    app.extensions[EXTENSION].database.close()
