"""Binding the models' database to a Flask app, for requests and for the CLI."""
import os

from peewee import InterfaceError, OperationalError

from models import create_tables, db
from models.base import is_shared_connection, open_database, request_lock


def database_url(app):
    """DATABASE_URL, or a SQLite file in the instance folder by default."""
    return app.config["DATABASE_URL"] or os.path.join(app.instance_path, "gensessions.db")


def connect():
    """Open this thread's connection once and keep it across requests.

    Closing after each request would checkpoint SQLite's WAL every time
    (measured about 40x slower); a connection that broke is replaced.
    """
    if is_shared_connection():
        request_lock.acquire()
    try:
        db.connect(reuse_if_open=True)
    except (OperationalError, InterfaceError):
        if not db.is_closed():
            db.close()
        db.connect()


def end_request(exc=None):
    """Undo whatever transaction a failed request left open."""
    try:
        if not db.is_closed() and db.in_transaction():
            db.rollback()
    finally:
        if is_shared_connection():
            request_lock.release()


def init_db(app):
    """Bind the database named by the app's config, create missing tables, add the hooks."""
    db.initialize(open_database(database_url(app), app.config["SQLITE_BUSY_TIMEOUT"]))
    if is_shared_connection():
        db.connect(reuse_if_open=True)  # an in-memory database lives as long as its connection
        create_tables()
    else:
        with db.connection_context():
            create_tables()
    app.before_request(connect)
    app.teardown_request(end_request)
