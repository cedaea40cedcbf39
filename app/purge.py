"""The in-server purge: a cron schedule per worker, one purge at a time in all.

Every worker process runs a small daemon thread that sleeps until the next
time of `PURGE_SCHEDULE`; all of them wake, and the database lock in
models.purge lets exactly one of them (on any host) run that slot. The
thread starts with the worker (gunicorn's post_worker_init) or at the first
request (development server, embedded use), never at import, and stops with
the worker.
"""
import logging
import os
import socket
import threading
import time

from croniter import croniter

from .models.purge import purge_with_lock

from . import clock
from .db import connected

log = logging.getLogger("gensessions.purge")


def check_schedule(expression):
    """Return the schedule, or None for `off`; raise ValueError for a bad cron expression."""
    if expression.strip().lower() == "off":
        return None
    if not croniter.is_valid(expression):
        raise ValueError(
            f"PURGE_SCHEDULE={expression!r} is not a valid cron expression: use five fields "
            "(minute hour day month weekday, e.g. '*/10 * * * *'), an optional sixth for "
            "seconds, or 'off'")
    return expression


class PurgeScheduler:
    """Runs the purge on its cron schedule in a daemon thread of this process."""

    def __init__(self, app, schedule, batch_size, pause):
        self.app = app
        self.schedule = schedule
        self.batch_size = batch_size
        self.pause = pause
        self._thread = None
        self._pid = None
        self._stopping = threading.Event()
        self._start_lock = threading.Lock()

    @property
    def holder(self):
        return f"{socket.gethostname()}:{os.getpid()}"

    def start(self):
        """Start the thread once per process (a forked child starts its own)."""
        if self._pid == os.getpid():
            return
        with self._start_lock:
            if self._pid == os.getpid():
                return
            self._stopping = threading.Event()
            self._thread = threading.Thread(target=self._loop, name="gensessions-purge",
                                            daemon=True)
            self._thread.start()
            self._pid = os.getpid()

    def stop(self, timeout=10):
        """Ask the thread to stop (after its current batch) and wait for it."""
        self._stopping.set()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(timeout)

    def _loop(self):
        while True:
            # From now, not from the last slot: slots missed during a long run are skipped.
            slot = croniter(self.schedule, time.time()).get_next(float)
            if self._stopping.wait(max(0.0, slot - time.time())):
                return
            try:
                self.run_slot(int(slot * 1000))
            except Exception:
                log.exception("purge failed")

    def run_slot(self, slot_ms):
        """Run the purge of one scheduled slot, unless another process has it."""
        started, started_at = time.monotonic(), clock.now_ms()
        with connected(self.app):
            purged = purge_with_lock(clock.now_ms, self.holder, self.batch_size, "schedule",
                                     slot=slot_ms, should_stop=self._stopping.is_set,
                                     pause=self.pause)
        if purged is None:
            log.debug("purge slot %d taken by another process", slot_ms)
            return
        log.info("purge run pid=%d purged=%d duration_ms=%.0f started_at=%d finished_at=%d",
                 os.getpid(), purged, (time.monotonic() - started) * 1000, started_at,
                 clock.now_ms())


def init_purge(app):
    """Validate PURGE_SCHEDULE (fails at start when bad) and attach the scheduler."""
    schedule = check_schedule(app.config["PURGE_SCHEDULE"])
    if schedule is None:
        return
    scheduler = PurgeScheduler(app, schedule, app.config["PURGE_BATCH_SIZE"],
                               app.config["PURGE_BATCH_PAUSE_MS"] / 1000)
    app.extensions["purge_scheduler"] = scheduler
    app.before_request(scheduler.start)
