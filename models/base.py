"""The database handle, the base model, and how a Flask app binds to it."""
import fcntl
import os
import threading
from contextlib import contextmanager
from functools import wraps

import orjson
from peewee import DatabaseProxy, Field, Model, PostgresqlDatabase, SqliteDatabase
from playhouse.db_url import parse as parse_url
from playhouse.pool import PooledPostgresqlDatabase

db = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class JSONField(Field):
    """A free-form JSON value: JSONB on PostgreSQL, compact JSON text on SQLite.

    Both databases hand the value over as JSON text (see PostgresTuning), which
    orjson parses here: one parser, whatever the database.
    """

    field_type = "JSONMAP"

    def db_value(self, value):
        return None if value is None else orjson.dumps(value).decode()

    def python_value(self, value):
        return None if value is None else orjson.loads(value)


# Everything that differs between the two databases is here and in open_database.
SQLITE_FIELD_TYPES = {"JSONMAP": "TEXT"}
POSTGRES_FIELD_TYPES = {"JSONMAP": "JSONB"}
POSTGRES_SCHEMES = ("postgres", "postgresql", "postgres+pool", "postgresql+pool")


class PostgresTuning:
    """PostgreSQL as gensessions uses it: JSONB maps, and each connection set up once."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("field_types", POSTGRES_FIELD_TYPES)
        kwargs.setdefault("application_name", "gensessions")
        super().__init__(*args, **kwargs)

    def _initialize_connection(self, conn):
        import psycopg2.extensions
        # JSONB arrives as text for JSONField to parse with orjson, not through json.loads.
        jsonb_as_text = psycopg2.extensions.new_type((3802,), "JSONB_TEXT",
                                                     lambda value, cursor: value)
        psycopg2.extensions.register_type(jsonb_as_text, conn)
        super()._initialize_connection(conn)


class Postgres(PostgresTuning, PostgresqlDatabase):
    pass


class PooledPostgres(PostgresTuning, PooledPostgresqlDatabase):
    pass


def open_database(url, busy_timeout=30):
    """Return a peewee database for `url` (SQLite path or URL, or PostgreSQL URL).

    SQLite gets WAL (readers never block the writer), foreign keys, a busy
    timeout so writers queue instead of failing, and synchronous=FULL so an
    acknowledged write survives a power loss. PostgreSQL gets JSONB maps.
    """
    scheme = url.partition("://")[0] if "://" in url else ""
    if scheme in POSTGRES_SCHEMES:
        database = PooledPostgres if scheme.endswith("+pool") else Postgres
        return database(**parse_url(url))
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    in_memory = path in (":memory:", "")
    pragmas = {"foreign_keys": 1, "busy_timeout": busy_timeout * 1000}
    if not in_memory:
        pragmas.update(journal_mode="wal", synchronous="full")
    # An in-memory database exists only inside its one connection, so every
    # thread has to share that connection (and `serialize_requests` below).
    writers.bind(":memory:" if in_memory else path)
    return SqliteDatabase(
        ":memory:" if in_memory else path,
        field_types=SQLITE_FIELD_TYPES,
        pragmas=pragmas,
        timeout=busy_timeout,
        thread_safe=not in_memory,
        check_same_thread=not in_memory,
    )


def is_sqlite():
    return isinstance(db.obj, SqliteDatabase)


class WriterQueue:
    """Writers to one SQLite file, across threads and processes, wait here in turn.

    SQLite's busy handler polls with growing sleeps, so a writer that waits
    keeps missing the moments the lock is free while others take it back to
    back (measured: p99 of 8 clients appending to one session over 1 s). Here
    threads queue on a lock, then processes block in the kernel on flock()
    of a file beside the database and wake the moment it is released; by
    the time `BEGIN IMMEDIATE` runs, it rarely has to wait.
    """

    def __init__(self):
        self._threads = threading.RLock()
        self._path = None
        self._fd = None
        self._pid = None
        self._depth = 0
        self.owner = None  # the thread holding the queue, if any

    def bind(self, database_path):
        self._path = None if database_path == ":memory:" else database_path + "-writers"
        self._fd = self._pid = None

    def __enter__(self):
        self._threads.acquire()
        if self._depth == 0 and self._path is not None:
            if self._pid != os.getpid():  # a forked worker opens its own description
                self._fd, self._pid = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600), \
                    os.getpid()
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1
        self.owner = threading.get_ident()
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            self.owner = None
            if self._path is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def held_here(self):
        return self.owner == threading.get_ident()

    def thread_turn(self):
        """This process's threads, one at a time (without the file lock)."""
        return self._threads


writers = WriterQueue()


@contextmanager
def write_transaction():
    """A transaction that takes the write lock up front.

    On SQLite, writers first queue in `writers`, then `BEGIN IMMEDIATE` takes
    the database's write lock before the first read, so no transaction has to
    upgrade a read lock and fail with "database is locked". On PostgreSQL,
    row locks taken by the statements do that job.
    """
    if not is_sqlite():
        with db.atomic():
            yield
        return
    with writers, db.atomic("IMMEDIATE"):
        yield


class GroupCommit:
    """Writes of one process that wait for the write lock at the same time commit together.

    On SQLite each commit pays an fsync of the WAL (synchronous=FULL), and commits are
    one at a time: that fsync bounded every kind of write. A thread that wants to write
    puts its work in `pending` and queues in `writers`; whoever gets the lock runs all
    the pending work in one transaction (when a piece fails, the transaction is run again
    with each piece in its own savepoint, so that one that fails undoes only itself),
    commits once, and hands each waiting thread its own result or exception. No one
    returns before the commit that holds its write, so an answered write is on disk as
    before; only the fsync is shared.

    The work runs on the committing thread, so it must depend on nothing of its caller's
    thread but its arguments (the models' write methods take everything as arguments and
    never read Flask's request state).
    """

    def __init__(self):
        self._pending = []
        self._pending_lock = threading.Lock()

    def run(self, work):
        """Run `work()` in a write transaction; return its result once committed."""
        if not is_sqlite():
            with db.atomic():
                return work()
        if writers.held_here():  # already inside a write transaction: a savepoint in it
            with db.atomic():
                return work()
        entry = PendingWrite(work)
        with self._pending_lock:
            self._pending.append(entry)
        # Threads take turns on the thread lock alone; only one whose work nobody has
        # committed yet goes on to the file lock (other processes) and leads a group.
        with writers.thread_turn():
            if not entry.finished:
                with writers:
                    with self._pending_lock:
                        batch, self._pending = self._pending, []
                    self.commit(batch)
        return entry.outcome()

    @staticmethod
    def commit(batch):
        """Run `batch` in one transaction: all pieces at once, and if one of several fails,
        again each in its own savepoint. (A savepoint around every piece is two statements
        more each, prepared anew every time since peewee names each savepoint with a fresh
        uuid4, for failures that are rare.)"""
        committed = False
        try:
            try:
                with db.atomic("IMMEDIATE"):
                    for entry in batch:
                        entry.result = entry.work()
            except Exception:
                if len(batch) == 1:
                    raise
                # Rolled back whole: nothing of the batch was written. Again, apart.
                with db.atomic("IMMEDIATE"):
                    for entry in batch:
                        try:
                            with db.atomic():
                                entry.result, entry.error = entry.work(), None
                        except Exception as error:
                            entry.result, entry.error = None, error
            committed = True
        except Exception as error:
            # The transaction failed as a whole (or the only piece of work raised).
            for entry in batch:
                entry.error = entry.error or error
        finally:
            for entry in batch:
                if not committed and entry.error is None:  # interrupted (BaseException)
                    entry.error = RuntimeError("the write transaction was interrupted")
                entry.finished = True


class PendingWrite:
    __slots__ = ("work", "result", "error", "finished")

    def __init__(self, work):
        self.work, self.result, self.error, self.finished = work, None, None, False

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.result


group_commit = GroupCommit()


def writes(method):
    """Decorator: the method's body is one write transaction, committed with its group."""
    @wraps(method)
    def wrapper(*args, **kwargs):
        return group_commit.run(lambda: method(*args, **kwargs))
    return wrapper


def is_shared_connection():
    """True when all threads share one connection (an in-memory SQLite database)."""
    return is_sqlite() and db.obj.database == ":memory:"


request_lock = threading.RLock()
