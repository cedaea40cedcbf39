"""The database handle, the base model, and how a Flask app binds to it."""
import threading
from contextlib import contextmanager

import orjson
from peewee import DatabaseProxy, Model, SqliteDatabase, TextField
from playhouse.db_url import connect as connect_url

db = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class JSONField(TextField):
    """A free-form JSON value, stored as compact JSON text."""

    def db_value(self, value):
        return None if value is None else orjson.dumps(value).decode()

    def python_value(self, value):
        return None if value is None else orjson.loads(value)


def open_database(url, busy_timeout=30):
    """Return a peewee database for `url` (SQLite path or URL, or PostgreSQL URL).

    SQLite gets WAL (readers never block the writer), foreign keys, a busy
    timeout so writers queue instead of failing, and synchronous=FULL so an
    acknowledged write survives a power loss.
    """
    if url.startswith(("postgres://", "postgresql://", "postgres+pool://", "postgresql+pool://")):
        return connect_url(url)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    in_memory = path in (":memory:", "")
    pragmas = {"foreign_keys": 1, "busy_timeout": busy_timeout * 1000}
    if not in_memory:
        pragmas.update(journal_mode="wal", synchronous="full")
    # An in-memory database exists only inside its one connection, so every
    # thread has to share that connection (and `serialize_requests` below).
    return SqliteDatabase(
        ":memory:" if in_memory else path,
        pragmas=pragmas,
        timeout=busy_timeout,
        thread_safe=not in_memory,
        check_same_thread=not in_memory,
    )


def is_sqlite():
    return isinstance(db.obj, SqliteDatabase)


@contextmanager
def write_transaction():
    """A transaction that takes the write lock up front.

    On SQLite, `BEGIN IMMEDIATE` makes concurrent writers wait on the busy
    timeout instead of failing a read-to-write lock upgrade with "database is
    locked"; and the threads of one process queue on a lock of ours first,
    because SQLite's busy handler polls with growing sleeps, which leaves a
    writer waiting far longer than the one before it took (measured: p99 of
    appends by 8 clients to one session). On PostgreSQL, row locks taken by
    the statements do that job.
    """
    if not is_sqlite():
        with db.atomic():
            yield
        return
    with process_write_lock, db.atomic("IMMEDIATE"):
        yield


def is_shared_connection():
    """True when all threads share one connection (an in-memory SQLite database)."""
    return is_sqlite() and db.obj.database == ":memory:"


request_lock = threading.RLock()
process_write_lock = threading.RLock()
