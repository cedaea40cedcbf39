"""Benchmark: how long a SQLite commit holds the write lock when other threads want the GIL.

Run by hand (`.venv/bin/python bench/gil_commit_bench.py`). One thread commits small
transactions (`BEGIN IMMEDIATE`, one INSERT, `COMMIT`, WAL, `synchronous=full`) while 0, 1
and 3 other threads run Python code, and it prints the wall time of the `COMMIT` call.
The sqlite3 module releases the GIL around every statement, so after the fsync the
committing thread waits for the GIL like any other thread: up to the switch interval
(5 ms) for each busy thread ahead of it, all the while holding the database's write
lock. In a gunicorn worker the other threads are serving requests rather than spinning,
so the wait is shorter, but it is why a group commit holds the lock about four times as
long under load as alone (docs/benchmarks.md, fourth round).
"""
import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time


def commit_wall_us(path, busy_threads, count):
    """Mean wall time of COMMIT, in microseconds, with `busy_threads` threads spinning."""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=wal")
    connection.execute("PRAGMA synchronous=full")
    connection.execute("CREATE TABLE IF NOT EXISTS item (id INTEGER PRIMARY KEY, body TEXT)")
    stop = threading.Event()

    def spin():
        n = 0
        while not stop.is_set():
            n += 1

    spinners = [threading.Thread(target=spin) for _ in range(busy_threads)]
    for thread in spinners:
        thread.start()
    total = 0.0
    try:
        for _ in range(count):
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO item (body) VALUES (?)", ("x" * 300,))
            started = time.perf_counter()
            connection.execute("COMMIT")
            total += time.perf_counter() - started
    finally:
        stop.set()
        for thread in spinners:
            thread.join()
        connection.close()
    return total / count * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="commits per row")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gil-commit-", dir=os.getcwd()) as workdir:
        path = os.path.join(workdir, "commit.db")
        print("| other busy threads | COMMIT wall us |\n|---|---|")
        for busy in (0, 1, 3):
            print(f"| {busy} | {commit_wall_us(path, busy, args.count):,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
