"""One purge at a time, across every worker and host: a lease held in the database."""
import time

from peewee import BigIntegerField, CharField, IntegerField, TextField

from .database import BaseModel
from .writes import writes
from .idempotency import IdempotencyRecord
from .session import Session

LOCK_NAME = "purge"
# A purge renews its lease after every batch; one that died frees the lock after this.
LEASE_MS = 120_000


class PurgeState(BaseModel):
    """The purge lock, and what the last purge did (for operators)."""

    name = CharField(primary_key=True, max_length=32)
    holder = CharField(max_length=255, null=True)
    locked_until = BigIntegerField(default=0)
    # The scheduled time of the last slot that ran, so each slot runs once in all.
    last_slot = BigIntegerField(default=0)
    last_trigger = CharField(max_length=16, null=True)
    last_started_at = BigIntegerField(null=True)
    last_finished_at = BigIntegerField(null=True)
    last_purged = IntegerField(null=True)
    last_duration_ms = IntegerField(null=True)
    last_error = TextField(null=True)
    runs = IntegerField(default=0)

    @classmethod
    def current(cls):
        """The state row (created on first use)."""
        cls.insert(name=LOCK_NAME).on_conflict_ignore().execute()
        return cls.get_by_id(LOCK_NAME)

    @classmethod
    def status(cls, now):
        """The state for operators (a blank one before the first purge), with `running`."""
        state = cls.get_or_none(cls.name == LOCK_NAME) or cls(name=LOCK_NAME)
        state.running = state.locked_until >= now
        return state

    @classmethod
    @writes
    def acquire(cls, holder, now, trigger, slot=None):
        """Take the lock when it is free (and `slot`, if given, has not run); True if taken."""
        cls.current()
        free = (cls.name == LOCK_NAME) & (cls.locked_until < now)
        changes = {"holder": holder, "locked_until": now + LEASE_MS, "last_trigger": trigger,
                   "last_started_at": now}
        if slot is not None:
            free &= cls.last_slot < slot
            changes["last_slot"] = slot
        return cls.update(**changes).where(free).execute() == 1

    @classmethod
    @writes
    def renew(cls, holder, now):
        """Extend the lease of a running purge; False when the lock is no longer ours."""
        return cls.update(locked_until=now + LEASE_MS).where(
            (cls.name == LOCK_NAME) & (cls.holder == holder)).execute() == 1

    @classmethod
    @writes
    def release(cls, holder, now, purged, error=None):
        """Free the lock and record the run."""
        cls.update(locked_until=0, last_finished_at=now, last_purged=purged,
                   last_duration_ms=now - cls.last_started_at, last_error=error,
                   runs=cls.runs + 1).where(
            (cls.name == LOCK_NAME) & (cls.holder == holder)).execute()


def purge_with_lock(clock, holder, batch_size, trigger="cli", slot=None,
                    should_stop=lambda: False, on_batch=None, pause=0.0):
    """Purge expired sessions under the database lock; return the count, or None if busy.

    `clock()` gives now in ms. Between batches the lease is renewed, `on_batch`
    hears the running count, and `pause` seconds pass so that waiting writers
    get the database. `should_stop()` ends the purge after the current batch.
    """
    if not PurgeState.acquire(holder, clock(), trigger, slot):
        return None
    purged, error = 0, None

    def between_batches(done):
        nonlocal purged
        purged = done
        if on_batch is not None:
            on_batch(done)
        if pause:
            time.sleep(pause)
        return PurgeState.renew(holder, clock()) and not should_stop()

    try:
        purged = Session.purge_expired(clock(), batch_size, on_batch=between_batches)
        IdempotencyRecord.purge_expired(clock())
    except Exception as failure:
        error = f"{type(failure).__name__}: {failure}"
        raise
    finally:
        PurgeState.release(holder, clock(), purged, error)
    return purged
