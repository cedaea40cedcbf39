"""Binding the models' database to a Flask app, for requests and for the CLI."""
import logging
import os

import click

from flask import request
from peewee import InterfaceError, OperationalError

from models import create_tables, db
from models.base import is_shared_connection, is_sqlite, open_database, request_lock


log = logging.getLogger("gensessions.db")
# Blueprints that serve without the database: the OpenAPI document and the docs page
# (and so do requests that routing answers: redirects, 404, 405).
NO_DATABASE = frozenset({"openapi", "swagger_ui"})
# False until the tables are known to exist (a server may start before its database does).
tables_ready = False


def database_url(app):
    """DATABASE_URL, or a SQLite file in the instance folder by default."""
    return app.config["DATABASE_URL"] or os.path.join(app.instance_path, "gensessions.db")


def connect():
    """Open this thread's connection once and keep it across requests.

    Closing after each request would checkpoint SQLite's WAL every time
    (measured about 40x slower); a connection that broke is replaced.
    """
    if request.url_rule is None or request.blueprint in NO_DATABASE:
        return
    if is_shared_connection():
        request_lock.acquire()
    try:
        db.connect(reuse_if_open=True)
        if not is_sqlite() and not db.is_connection_usable():
            # The server dropped this connection (a restart, a failover): open a new one.
            raise InterfaceError("connection lost")
    except (OperationalError, InterfaceError):
        if not db.is_closed():
            db.close()
        db.connect()
    if not tables_ready:
        ensure_tables()


def ensure_tables():
    """Create or migrate the tables; raises the database's error (a 503) while it is down.

    Returns the migration steps applied.
    """
    global tables_ready
    applied = create_tables()
    if applied:
        log.info("schema migrated: %s", ", ".join(applied))
    tables_ready = True
    return applied


def creating_for_cli():
    """Whether the app is being made for a `flask` command (its click context is live).

    Commands migrate when they run (so that `migrate` can tell what it applied, and
    `migrate --status` what is pending); a server migrates as it starts.
    """
    return click.get_current_context(silent=True) is not None


def end_request(exc=None):
    """Undo whatever transaction a failed request left open."""
    if request.url_rule is None or request.blueprint in NO_DATABASE:
        return
    try:
        if not db.is_closed() and db.in_transaction():
            db.rollback()
    finally:
        if is_shared_connection():
            request_lock.release()


def init_db(app):
    """Bind the database named by the app's config, create missing tables, add the hooks."""
    db.initialize(open_database(database_url(app), app.config["SQLITE_BUSY_TIMEOUT"]))
    global tables_ready
    tables_ready = False
    app.before_request(connect)
    app.teardown_request(end_request)
    if creating_for_cli() and not is_shared_connection():
        return
    try:
        if is_shared_connection():
            db.connect(reuse_if_open=True)  # an in-memory database lives as its connection does
            ensure_tables()
        else:
            with db.connection_context():
                ensure_tables()
    except (OperationalError, InterfaceError) as error:
        # Serve anyway: requests answer 503 until the database is back.
        log.warning("database unavailable at start (%s); answering 503 until it is", error)
