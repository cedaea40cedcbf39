"""The databases the suite runs on: SQLite always, PostgreSQL when TEST_DATABASE_URL names one.

TEST_DATABASE_URL is a server to use (e.g. postgresql://postgres@127.0.0.1:5432/postgres);
each test run makes its own databases on it (`make_database`) and drops them at the end, so
it never touches the database the URL names.
"""
import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from helpers import CI

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or None
# Every table of the models, emptied between tests (applied_migration is kept).
TABLES = ("event", "session", "idempotency_record", "purge_state", "api_key")


def require_postgres():
    """Skip without TEST_DATABASE_URL, except under CI, where it is a failure."""
    if TEST_DATABASE_URL:
        return TEST_DATABASE_URL
    if CI:
        pytest.fail("CI is set but TEST_DATABASE_URL is not: .ci/run sets it to the "
                    "machine's PostgreSQL", pytrace=False)
    pytest.skip("PostgreSQL tests need TEST_DATABASE_URL=postgresql://...")


def server_connection(url):
    import psycopg2
    connection = psycopg2.connect(url)
    connection.autocommit = True
    return connection


def with_database(url, name):
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def make_database(prefix="gs_test"):
    """Create an empty database on TEST_DATABASE_URL's server; return its URL."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    connection = server_connection(TEST_DATABASE_URL)
    try:
        # Byte-order collation whatever the server's locale: tests compare the database's
        # ORDER BY id with Python's sorted(), which an en_US collation would not match.
        connection.cursor().execute(f'CREATE DATABASE "{name}" TEMPLATE template0 '
                                    "LC_COLLATE 'C' LC_CTYPE 'C'")
    finally:
        connection.close()
    return with_database(TEST_DATABASE_URL, name)


def drop_database(url):
    name = urlsplit(url).path.lstrip("/")
    connection = server_connection(TEST_DATABASE_URL)
    try:
        connection.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        connection.close()


def empty_tables(url):
    """Delete every row of the service's tables (those that exist) in the database at `url`."""
    connection = server_connection(url)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        present = [name for (name,) in cursor.fetchall() if name in TABLES]
        if present:
            cursor.execute("TRUNCATE " + ", ".join(f'"{name}"' for name in present)
                           + " RESTART IDENTITY CASCADE")
    finally:
        connection.close()
