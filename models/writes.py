"""The write path: how every write reaches the database.

The rule: every write runs in a write transaction, either as a method decorated with
`writes` (its body is one transaction, committed together with the writes of other
threads waiting at the same moment: one fsync for the group), or inside a
`write_transaction()` block, for work that must commit alone (migrations, purge
batches, a read-then-write that must hold the lock throughout). On SQLite both queue
on the database's writer queue first and take the write lock up front (`BEGIN
IMMEDIATE`), so no transaction ever fails with "database is locked"; on PostgreSQL
both are plain transactions, and row locks do that job.

Each database has its own queue and group (`WritePath`), so two apps in one process
never commit each other's work.
"""
import fcntl
import os
import threading
from contextlib import contextmanager
from functools import wraps

from .database import db, is_sqlite


class WriterQueue:
    """Writers to one SQLite file, across threads and processes, wait here in turn.

    SQLite's busy handler polls with growing sleeps, so a writer that waits
    keeps missing the moments the lock is free while others take it back to
    back (measured: p99 of 8 clients appending to one session over 1 s). Here
    threads queue on a lock, then processes block in the kernel on flock()
    of a file beside the database and wake the moment it is released; by
    the time `BEGIN IMMEDIATE` runs, it rarely has to wait.
    """

    def __init__(self, database_path):
        self._threads = threading.RLock()
        self._path = None if database_path == ":memory:" else database_path + "-writers"
        self._fd = None
        self._pid = None
        self._depth = 0
        self.owner = None  # the thread holding the queue, if any

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
    with write_path().writers, db.atomic("IMMEDIATE"):
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

    def __init__(self, writers):
        self.writers = writers
        self._pending = []
        self._pending_lock = threading.Lock()

    def run(self, work):
        """Run `work()` in a write transaction of this SQLite database; return its result
        once committed."""
        writers = self.writers
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


class WritePath:
    """A SQLite database's writer queue and commit group."""

    def __init__(self, database):
        self.writers = WriterQueue(database.database)
        self.group_commit = GroupCommit(self.writers)


def write_path(database=None):
    """The write path of `database` (the active one by default), made on first use."""
    database = database or db.obj
    try:
        return database.write_path
    except AttributeError:
        with creating:
            if not hasattr(database, "write_path"):
                database.write_path = WritePath(database)
        return database.write_path


creating = threading.Lock()


def writes(method):
    """Decorator: the method's body is one write transaction, committed with its group."""
    @wraps(method)
    def wrapper(*args, **kwargs):
        if not is_sqlite():
            with db.atomic():
                return method(*args, **kwargs)
        return write_path().group_commit.run(lambda: method(*args, **kwargs))
    return wrapper
