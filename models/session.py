"""Generation sessions, their append-only events, and the rules between them."""
import hashlib
import json
import re
import secrets

from peewee import (SQL, BigIntegerField, CharField, ForeignKeyField, IntegerField, NodeList,
                    TextField, Tuple, fn)

from .database import BaseModel, JSONField, db, is_sqlite, note_change
from .writes import write_transaction, writes
from .exceptions import NotFound, StaleRevision, TransitionRefused, UnknownEvent
from .prepared import Prepared, RowWriter

STATUSES = ("intake", "planning", "generating", "assembling", "completed", "failed", "cancelled")
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
# More than any session holds: "no limit" for the events-after query.
MAX_EVENTS = 2 ** 62
# PostgreSQL's channel for "this session changed" (payload: its id), heard by the watcher
# of every worker and host (app/watch.py); SQLite needs none (PRAGMA data_version).
CHANGES_CHANNEL = "gensessions"
# Ids a query's IN (...) takes at once (far below both databases' parameter limits).
IN_BATCH = 500
# What an id of ours can look like; anything else names nothing (and never reaches SQL).
ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_id(text):
    return isinstance(text, str) and ID_PATTERN.fullmatch(text) is not None


def new_id(prefix):
    """Return `prefix` + 24 URL-safe characters (144 random bits)."""
    return prefix + secrets.token_urlsafe(18)


def canonical_hash(value):
    """SHA-256 hex of `value` as canonical JSON (sorted keys, no spaces, raw UTF-8)."""
    if value is None:
        return None
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def announce(session_id):
    """Tell the followers of the session that it changed: on PostgreSQL, every process,
    when the transaction commits (NOTIFY); on SQLite other processes see the commit
    themselves (PRAGMA data_version), and this one counts it."""
    if is_sqlite():
        note_change()
    else:
        db.execute_sql("SELECT pg_notify(%s, %s)", (CHANGES_CHANNEL, session_id))


def for_update(query):
    """Lock the selected rows until commit.

    PostgreSQL needs FOR UPDATE; on SQLite, BEGIN IMMEDIATE already holds the lock.
    """
    return query if is_sqlite() else query.for_update()


class Session(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    user_id = CharField(max_length=255)
    organization_id = CharField(max_length=255, null=True)
    status = CharField(max_length=16, default="intake")
    prd = JSONField(null=True)
    plan = JSONField(null=True)
    product_object = JSONField(null=True)
    product_object_hash = CharField(max_length=128, null=True)
    assembly_state = JSONField(null=True)
    catalog_version = CharField(max_length=64, null=True)
    schema_version = CharField(max_length=64, null=True)
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    expires_at = BigIntegerField()
    # Bumped on every change of the session's own fields; the ETag is made from it.
    revision = IntegerField(default=1)
    # The last event's sequence and time, so an append needs no scan of the log.
    last_sequence = IntegerField(default=0)
    last_event_at = BigIntegerField(default=0)
    # Not a column: the session's events, oldest first, when read with them
    # (get_live_with_events), for the answer that shows them.
    event_log = None

    class Meta:
        # Measured at 1,000,000 sessions of one user (docs/benchmarks.md): the list's
        # keyset page, the status-filtered page in index order (no sort), the counts as
        # covering index scans, and the purge's range.
        indexes = (
            (("user_id", "created_at", "id"), False),
            (("user_id", "status", "created_at", "id", "expires_at"), False),
            (("user_id", "expires_at"), False),
            (("expires_at",), False),
        )

    @property
    def etag(self):
        """The (unquoted) strong entity tag of the session's current revision."""
        return hashlib.blake2s(f"{self.id}:{self.revision}".encode(), digest_size=8).hexdigest()

    @classmethod
    def live(cls, user_id, now):
        """The one "mine and unexpired" query every read and write starts from."""
        return cls.select().where((cls.user_id == user_id) & (cls.expires_at > now))

    @classmethod
    def get_live(cls, session_id, user_id, now):
        """Return the caller's unexpired session.

        Raises NotFound when it is missing, another user's, or expired.
        """
        session = is_id(session_id) and LIVE_BY_ID.first(session_id, user_id, now)
        if not session:
            raise NotFound()
        return session

    @classmethod
    def get_live_with_events(cls, session_id, user_id, now):
        """Return the caller's session with its events, oldest first, as `event_log`."""
        session = cls.get_live(session_id, user_id, now)
        session.event_log = session.events_after()
        return session

    @classmethod
    @writes
    def start(cls, user_id, organization_id, now, ttl_seconds, **fields):
        """Create a session in `intake` that expires `ttl_seconds` from now."""
        return SESSION_ROWS.insert(cls(
            id=new_id("sess_"), user_id=user_id, organization_id=organization_id,
            status="intake", created_at=now, updated_at=now,
            expires_at=now + ttl_seconds * 1000, **fields))

    @classmethod
    def page(cls, user_id, now, status=None, limit=20, offset=0, after=None):
        """Return (sessions, total, has_more), newest first.

        `after` is the (created_at, id) of the last session of the previous
        page; keyset paging with a row value never skips or repeats a session
        while others are created.
        """
        filtered = status is not None
        total = COUNTS[filtered].scalar(user_id, now, status)
        created_at, session_id = after or (None, None)
        rows = list(PAGES[filtered, after is not None](
            user_id, now, status, created_at, session_id, limit + 1, offset or 0))
        return rows[:limit], total, len(rows) > limit

    @classmethod
    @writes
    def update_live(cls, session_id, user_id, now, changes, if_match=None):
        """Apply a PATCH to the caller's session and return it.

        Each given field replaces the stored one; a status change appends a
        `status.changed` event in the same transaction. Raises NotFound,
        StaleRevision (If-Match names an old revision) or TransitionRefused
        (a terminal session asked to change status).
        """
        session = cls.get_live_for_update(session_id, user_id, now)
        if if_match is not None and not if_match(session.etag):
            raise StaleRevision()
        if "product_object" in changes and "product_object_hash" not in changes:
            changes["product_object_hash"] = canonical_hash(changes["product_object"])
        old_status = session.status
        # Setting the current status again is a no-op, not a change.
        changed = {name: value for name, value in changes.items()
                   if name != "status" or value != old_status}
        if not changed:
            return session
        if "status" in changed and old_status in TERMINAL_STATUSES:
            raise TransitionRefused(old_status, changed["status"])
        for name, value in changed.items():
            setattr(session, name, value)
        session.updated_at = max(now, session.updated_at + 1)
        session.revision += 1
        if "status" in changed:
            session.add_event(now, type="status.changed", stage=session.status,
                              message=f"Status changed from {old_status} to {session.status}",
                              payload={"from": old_status, "to": session.status})
            announce(session.id)
        SESSION_ROWS.update(session)
        return session

    @classmethod
    def get_live_for_update(cls, session_id, user_id, now):
        """Like get_live, holding the row's write lock until the transaction ends."""
        session = is_id(session_id) and LIVE_BY_ID_FOR_UPDATE.first(session_id, user_id, now)
        if not session:
            raise NotFound()
        return session

    @classmethod
    @writes
    def delete_live(cls, session_id, user_id, now, if_match=None):
        """Delete the caller's session and its events; raises NotFound or StaleRevision."""
        session = cls.get_live_for_update(session_id, user_id, now)
        if if_match is not None and not if_match(session.etag):
            raise StaleRevision()
        Event.delete().where(Event.session == session.id).execute()
        session.delete_instance()
        announce(session.id)

    @classmethod
    @writes
    def append_event(cls, session_id, user_id, now, **fields):
        """Append an event to the caller's session and return it; raises NotFound."""
        session = cls.get_live_for_update(session_id, user_id, now)
        event = session.add_event(now, **fields)
        SESSION_ROWS.update(session)  # the counter and time add_event moved on
        announce(session.id)
        return event

    @classmethod
    def states(cls, session_ids):
        """{id: (last_sequence, status, expires_at)} of those of `session_ids` that exist:
        what a follower of the session's events needs to know changed."""
        found = {}
        for start in range(0, len(session_ids), IN_BATCH):
            batch = session_ids[start:start + IN_BATCH]
            rows = cls.select(cls.id, cls.last_sequence, cls.status, cls.expires_at).where(
                cls.id.in_(batch)).tuples()
            found.update((row[0], row[1:]) for row in rows)
        return found

    def add_event(self, now, **fields):
        """Insert the next event of this session (the caller holds the write lock).

        The sequence is the session's counter plus one, and the time is never
        earlier than the previous event's, even if the clock stepped back.
        """
        fields.setdefault("stage", self.status)
        self.last_sequence += 1
        self.last_event_at = max(now, self.last_event_at)
        return EVENT_ROWS.insert(Event(
            id=new_id("evt_"), session=self.id, user_id=self.user_id,
            organization_id=self.organization_id, sequence=self.last_sequence,
            created_at=self.last_event_at, **fields))

    def sequence_of(self, after):
        """The sequence number `after` names: itself, 0 for None (before the first event),
        or that of an event id. Raises UnknownEvent when it names no event of the session."""
        if isinstance(after, str):
            after = EVENT_SEQUENCE.scalar(self.id, after)
            if after is None:
                raise UnknownEvent()
        return int(after or 0)

    def events_after(self, after=None, limit=None):
        """This session's events, oldest first, after a sequence number or an event id.

        Raises UnknownEvent when `after` is an id that names no event of the session.
        """
        after = self.sequence_of(after)
        if not after and limit is None:
            return EVENTS_OF(self.id)
        return EVENTS_AFTER(self.id, after or 0, MAX_EVENTS if limit is None else limit)

    @classmethod
    def purge_expired(cls, now, batch_size=500, dry_run=False, on_batch=None):
        """Delete sessions expired at `now`, and their events, in short transactions.

        Each batch commits on its own so that requests served meanwhile wait
        for one batch at most. After each batch `on_batch(purged so far)` is
        called; a false answer stops the purge there. Returns the number of
        sessions purged (or, with `dry_run`, that would be).
        """
        expired = cls.select(cls.id).where(cls.expires_at <= now)
        if dry_run:
            return expired.count()
        purged = 0
        while True:
            with write_transaction():
                ids = [row.id for row in expired.limit(batch_size)]
                if not ids:
                    return purged
                Event.delete().where(Event.session.in_(ids)).execute()
                cls.delete().where(cls.id.in_(ids)).execute()
            purged += len(ids)
            if is_sqlite():
                # Fold the batch into the database file now, off the clients' commits:
                # otherwise whichever request crosses the WAL's auto-checkpoint pays for it.
                db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")
            if on_batch is not None and on_batch(purged) is False:
                return purged


class Event(BaseModel):
    id = CharField(primary_key=True, max_length=64)
    session = ForeignKeyField(Session, column_name="session_id", on_delete="CASCADE",
                              backref="events", index=False)
    user_id = CharField(max_length=255)
    organization_id = CharField(max_length=255, null=True)
    sequence = IntegerField()
    type = CharField(max_length=64)
    stage = CharField(max_length=64, null=True)
    message = TextField(null=True)
    payload = JSONField(null=True)
    created_at = BigIntegerField()

    class Meta:
        # The backstop for gap-free ordering: one row per (session, sequence).
        indexes = ((("session", "sequence"), True),)


# The queries of every read and write of one session, kept as SQL (models/prepared.py).
LIVE_BY_ID = Prepared(Session, lambda session_id, user_id, now: Session.live(user_id, now).where(
    Session.id == session_id))
LIVE_BY_ID_FOR_UPDATE = Prepared(Session, lambda session_id, user_id, now: for_update(
    Session.live(user_id, now).where(Session.id == session_id)))
EVENTS_OF = Prepared(Event, lambda session_id: Event.select().where(
    Event.session == session_id).order_by(Event.sequence))
EVENTS_AFTER = Prepared(Event, lambda session_id, after, limit: Event.select().where(
    (Event.session == session_id) & (Event.sequence > after)).order_by(Event.sequence)
    .limit(limit))
EVENT_SEQUENCE = Prepared(Event, lambda session_id, event_id: Event.select(Event.sequence).where(
    (Event.session == session_id) & (Event.id == event_id)))


def not_by_index(field):
    """`+field`: the same value, but SQLite will not pick an index for this term.

    Without statistics SQLite's planner prefers the (user_id, expires_at) range for
    a page, then sorts all the user's sessions (2 s at 1M rows); kept off that index,
    it walks the index in the page's order instead (0.2 ms). PostgreSQL reads it as
    the plain value.
    """
    return NodeList((SQL("+"), field), glue="")


def count_query(filtered):
    def build(user_id, now, status):
        # COUNT(*), not COUNT(id): an index alone answers it (1.4 s -> 0.09 s at 1M rows):
        # (user_id, expires_at) for all, (user_id, status, ..., expires_at) for one status.
        if not filtered:
            return Session.select(fn.COUNT(SQL("*"))).where(
                (Session.user_id == user_id) & (Session.expires_at > now))
        return Session.select(fn.COUNT(SQL("*"))).where(
            (Session.user_id == user_id) & (Session.status == status)
            & (not_by_index(Session.expires_at) > now))
    return Prepared(Session, build)


def page_query(filtered, after):
    def build(user_id, now, status, created_at, session_id, limit, offset):
        query = Session.select().where(
            (Session.user_id == user_id) & (not_by_index(Session.expires_at) > now))
        if filtered:
            query = query.where(Session.status == status)
        if after:
            # A row value: an index range scan, where the OR form scans (issue: 64 ms -> 0.06).
            query = query.where(Tuple(Session.created_at, Session.id) < Tuple(created_at,
                                                                              session_id))
        return (query.order_by(Session.created_at.desc(), Session.id.desc())
                .limit(limit).offset(offset))
    return Prepared(Session, build)


COUNTS = {filtered: count_query(filtered) for filtered in (False, True)}
PAGES = {(filtered, after): page_query(filtered, after)
         for filtered in (False, True) for after in (False, True)}
SESSION_ROWS = RowWriter(Session)
EVENT_ROWS = RowWriter(Event)
