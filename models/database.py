"""The database: which one the models use, opening it (SQLite or PostgreSQL), the JSON field.

The models never hold a database of their own. `db` stands for the active one: the one
`using(database)` names for a block, else the one the running app binds (app/db.py tells
`db` how to find it). So several apps in one process each read and write only their own.
"""
from contextlib import contextmanager
from contextvars import ContextVar

import orjson
from peewee import DatabaseProxy, Field, Model, SqliteDatabase
from playhouse.db_url import parse as parse_url
from playhouse.pool import PooledPostgresqlDatabase

# A database bound for a block by `using`, ahead of the app's.
explicit = ContextVar("gensessions_database", default=None)


class NoDatabase(RuntimeError):
    """Model code ran with no database bound."""


def no_locator():
    raise NoDatabase("no gensessions database is active here: run inside an app context "
                     "(`with app.app_context():`) or `with using(database):`")


class ActiveDatabase(DatabaseProxy):
    """A peewee database proxy whose target is looked up on each use, not set once."""

    __slots__ = ("locate",)

    def __init__(self):
        object.__setattr__(self, "_callbacks", [])
        object.__setattr__(self, "locate", no_locator)

    @property
    def obj(self):
        return explicit.get() or self.locate()

    def initialize(self, obj):
        raise TypeError("the database is not set globally: bind one with `using(database)`, "
                        "or create an app with its DATABASE_URL")

    def locate_with(self, locator):
        """Install `locator()`, which returns the database of the running app."""
        object.__setattr__(self, "locate", locator)


db = ActiveDatabase()


@contextmanager
def using(database):
    """Make `database` the models' database for the block (scripts, benchmarks, tests)."""
    token = explicit.set(database)
    try:
        yield database
    finally:
        explicit.reset(token)


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
# A worker's PostgreSQL connections at most: its 8 request threads, its purge and watcher
# threads, and streams woken together reading at once (each for a millisecond or two).
POOL_SIZE = 20
POOL_WAIT_SECONDS = 10


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
        # Always a pool: a request borrows a connection and gives it back at its end, and
        # so does a live stream between its reads, so a worker's connections follow how
        # many are in use at once, not its hundreds of (mostly waiting) threads; past
        # POOL_SIZE a request waits up to POOL_WAIT_SECONDS for one (then 503). URL query
        # parameters (max_connections, timeout, stale_timeout) tune it.
        settings = {"max_connections": POOL_SIZE, "timeout": POOL_WAIT_SECONDS,
                    "stale_timeout": 300, **parse_url(url)}
        return PooledPostgres(**settings)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    in_memory = path in (":memory:", "")
    pragmas = {"foreign_keys": 1, "busy_timeout": busy_timeout * 1000}
    if not in_memory:
        pragmas.update(journal_mode="wal", synchronous="full")
    # An in-memory database exists only inside its one connection, so every
    # thread has to share that connection (app/db.py lets one request use it at a time).
    return SqliteDatabase(
        ":memory:" if in_memory else path,
        field_types=SQLITE_FIELD_TYPES,
        pragmas=pragmas,
        timeout=busy_timeout,
        thread_safe=not in_memory,
        check_same_thread=not in_memory,
    )


def note_change(database=None):
    """Count a change to a session in this process (an in-memory database's followers have
    no other way to hear of it: PRAGMA data_version counts other connections' commits)."""
    database = database or db.obj
    database.changes_noted = getattr(database, "changes_noted", 0) + 1


def changes_noted(database):
    return getattr(database, "changes_noted", 0)


def is_sqlite(database=None):
    return isinstance(database or db.obj, SqliteDatabase)


def is_in_memory(database=None):
    """True for an in-memory SQLite database: all threads share its one connection."""
    database = database or db.obj
    return isinstance(database, SqliteDatabase) and database.database == ":memory:"
