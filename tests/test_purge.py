"""The scheduled purge, in-process: the database lease, the batched purge under it, the
schedule's validation, the per-process scheduler thread, and the operator views of it."""
import json
import logging
import re
import threading

import pytest
from peewee import JOIN

from gensessions import create_app
from gensessions.db import close_database, connected
from gensessions.purge import PurgeScheduler, check_schedule
from gensessions.models import Event, IdempotencyRecord, PurgeState, Session
from gensessions.models.idempotency import RETENTION_MS
from gensessions.models.purge import LEASE_MS, LOCK_NAME, purge_with_lock
from helpers import NOW, SESSIONS, bearer, invoke_ok, issue_key, session_ids, start, wait_until

TTL = 3600
TTL_MS = TTL * 1000
EXPIRED_AT = NOW + TTL_MS  # sessions started at NOW are expired from here on
SLOT = 1_795_425_360_000
THREAD = "gensessions-purge"


def at(ms):
    """A clock frozen at `ms`."""
    return lambda: ms


def state():
    return PurgeState.get_by_id(LOCK_NAME)


# --- the lease -------------------------------------------------------------------------------

def test_second_holder_cannot_acquire_while_the_lease_is_held(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule")
    assert not PurgeState.acquire("host:2", NOW + 1, "schedule")
    assert not PurgeState.acquire("host:2", NOW + LEASE_MS, "schedule")
    assert state().holder == "host:1"


def test_second_holder_acquires_once_the_lease_has_expired(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule")
    assert PurgeState.acquire("host:2", NOW + LEASE_MS + 1, "cli")
    assert state().holder == "host:2"
    assert state().last_trigger == "cli"


def test_same_slot_is_refused_the_second_time_even_after_release(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule", slot=SLOT)
    PurgeState.release("host:1", NOW + 5, 0)
    assert not PurgeState.acquire("host:2", NOW + 10, "schedule", slot=SLOT)


def test_later_slot_is_taken_after_release(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule", slot=SLOT)
    PurgeState.release("host:1", NOW + 5, 0)
    assert PurgeState.acquire("host:2", NOW + 1000, "schedule", slot=SLOT + 1000)
    assert state().last_slot == SLOT + 1000


def test_an_older_slot_from_a_late_worker_is_refused(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule", slot=SLOT)
    PurgeState.release("host:1", NOW + 5, 0)
    assert not PurgeState.acquire("host:2", NOW + 10, "schedule", slot=SLOT - 1000)


def test_a_later_slot_waits_while_the_lease_is_held(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule", slot=SLOT)
    assert not PurgeState.acquire("host:2", NOW + 1000, "schedule", slot=SLOT + 1000)
    assert state().last_slot == SLOT


def test_release_records_the_run_and_frees_the_lock(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule", slot=SLOT)
    PurgeState.release("host:1", NOW + 250, 7)
    row = state()
    assert (row.runs, row.last_purged, row.last_duration_ms, row.last_trigger) == (
        1, 7, 250, "schedule")
    assert (row.last_started_at, row.last_finished_at, row.last_error) == (NOW, NOW + 250, None)
    assert not PurgeState.status(NOW + 251).running


def test_runs_counts_every_release(conn):
    for n in range(3):
        assert PurgeState.acquire("host:1", NOW + n * 10, "cli")
        PurgeState.release("host:1", NOW + n * 10 + 1, n)
    assert (state().runs, state().last_purged) == (3, 2)


def test_release_by_a_non_holder_changes_nothing(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule")
    PurgeState.release("host:2", NOW + 5, 3)
    row = state()
    assert (row.runs, row.last_purged, row.holder) == (0, None, "host:1")
    assert PurgeState.status(NOW + 5).running


def test_renew_extends_the_holders_lease(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule")
    assert PurgeState.renew("host:1", NOW + 60_000)
    assert state().locked_until == NOW + 60_000 + LEASE_MS
    assert not PurgeState.acquire("host:2", NOW + LEASE_MS + 1, "schedule")


def test_renew_fails_for_a_non_holder(conn):
    assert PurgeState.acquire("host:1", NOW, "schedule")
    assert not PurgeState.renew("host:2", NOW + 1)
    assert state().locked_until == NOW + LEASE_MS


def test_status_before_any_purge_is_blank_and_not_running(conn):
    status = PurgeState.status(NOW)
    assert (status.runs, status.last_purged, status.last_trigger, status.running) == (
        0, None, None, False)


# --- purge_with_lock -------------------------------------------------------------------------

def test_purge_with_lock_returns_none_and_purges_nothing_when_the_lock_is_taken(conn):
    ids = {start(NOW, TTL), start(NOW, TTL)}
    assert PurgeState.acquire("other:1", EXPIRED_AT, "cli")
    assert purge_with_lock(at(EXPIRED_AT), "me:1", 10) is None
    assert session_ids() == ids
    assert (state().holder, state().runs) == ("other:1", 0)


def test_purge_with_lock_returns_the_count_and_records_it(conn):
    start(NOW, TTL), start(NOW, TTL), start(NOW, TTL)
    assert purge_with_lock(at(EXPIRED_AT), "me:1", 10, trigger="schedule") == 3
    row = state()
    assert (row.runs, row.last_purged, row.last_trigger, row.locked_until) == (
        1, 3, "schedule", 0)
    assert session_ids() == set()


def test_purge_with_lock_reports_each_batch(conn):
    for _ in range(5):
        start(NOW, TTL)
    heard = []
    assert purge_with_lock(at(EXPIRED_AT), "me:1", 2, on_batch=heard.append) == 5
    assert heard == [2, 4, 5]


def test_should_stop_ends_the_purge_after_the_first_batch(conn):
    for _ in range(5):
        start(NOW, TTL)
    assert purge_with_lock(at(EXPIRED_AT), "me:1", 2, should_stop=lambda: True) == 2
    assert len(session_ids()) == 3
    assert (state().last_purged, state().locked_until) == (2, 0)


def test_the_lease_is_renewed_between_batches(conn):
    """A purge longer than one lease keeps its lock: nobody takes it between batches."""
    for _ in range(3):
        start(NOW, TTL)
    now = [EXPIRED_AT]
    taken = []

    def a_long_batch_later(done):
        now[0] += LEASE_MS - 20_000
        taken.append(PurgeState.acquire("other:1", now[0], "cli"))

    assert purge_with_lock(lambda: now[0], "me:1", 1, on_batch=a_long_batch_later) == 3
    assert taken == [False, False, False]
    assert state().runs == 1


def test_a_purge_that_lost_its_lease_stops_after_the_batch(conn):
    for _ in range(4):
        start(NOW, TTL)

    def lease_taken_over(done):
        assert PurgeState.acquire("other:1", EXPIRED_AT + LEASE_MS + 1, "cli")

    assert purge_with_lock(at(EXPIRED_AT), "me:1", 1, on_batch=lease_taken_over) == 1
    assert len(session_ids()) == 3
    assert state().holder == "other:1"


def test_a_failing_purge_records_the_error_and_frees_the_lock(conn, monkeypatch):
    start(NOW, TTL)

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Session, "purge_expired", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        purge_with_lock(at(EXPIRED_AT), "me:1", 10)
    row = state()
    assert row.last_error == "RuntimeError: disk on fire"
    assert row.locked_until == 0 and not PurgeState.status(EXPIRED_AT).running


def test_the_next_purge_runs_after_a_failed_one_and_clears_the_error(conn, monkeypatch):
    start(NOW, TTL)
    with monkeypatch.context() as patch:
        patch.setattr(Session, "purge_expired", lambda *a, **k: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            purge_with_lock(at(EXPIRED_AT), "me:1", 10)
    assert purge_with_lock(at(EXPIRED_AT + 1), "other:1", 10) == 1
    assert (state().last_error, state().last_purged, state().holder) == (None, 1, "other:1")


# --- what the batched purge removes ----------------------------------------------------------

@pytest.fixture
def mixed(conn):
    """Seven expired sessions (most with events) and three live ones with events, two users."""
    expired = [start(NOW, TTL, events=n % 3, user_id=f"user_{n % 2}") for n in range(7)]
    live = [start(NOW + 1, TTL, events=n + 1, user_id=f"user_{n % 2}") for n in range(3)]
    return expired, live


def snapshot(ids):
    """Every column of the given sessions and of their events, for exact comparison."""
    sessions = sorted(tuple(row) for row in Session.select().where(Session.id.in_(ids)).tuples())
    events = sorted(tuple(row) for row in Event.select().where(Event.session.in_(ids)).tuples())
    return sessions, events


def orphan_events():
    return (Event.select().join(Session, JOIN.LEFT_OUTER, on=(Event.session == Session.id))
            .where(Session.id.is_null()).count())


def test_batched_purge_leaves_no_orphan_events(mixed):
    assert purge_with_lock(at(EXPIRED_AT), "me:1", 2) == 7
    assert orphan_events() == 0
    expired, _ = mixed
    assert Event.select().where(Event.session.in_(expired)).count() == 0


def test_batched_purge_removes_exactly_the_expired_sessions(mixed):
    expired, live = mixed
    purge_with_lock(at(EXPIRED_AT), "me:1", 2)
    assert session_ids() == set(live)


def test_batched_purge_keeps_live_sessions_and_their_events_unchanged(mixed):
    _, live = mixed
    before = snapshot(live)
    assert sum(len(rows) for rows in before) == 3 + 6
    purge_with_lock(at(EXPIRED_AT), "me:1", 2)
    assert snapshot(live) == before
    assert Event.select().count() == 6


def test_idempotency_records_older_than_24_hours_are_purged_newer_kept(conn):
    for key, created_at in (("old", NOW - RETENTION_MS), ("older", NOW - 2 * RETENTION_MS),
                            ("fresh", NOW - RETENTION_MS + 1), ("new", NOW)):
        IdempotencyRecord.create(user_id="user_1", key=key, request_hash="h" * 64,
                                 created_at=created_at)
    assert purge_with_lock(at(NOW), "me:1", 10) == 0
    assert {row.key for row in IdempotencyRecord.select()} == {"fresh", "new"}


# --- PURGE_SCHEDULE --------------------------------------------------------------------------

@pytest.mark.parametrize("expression", ["off", "OFF", " Off "])
def test_off_means_no_schedule(expression):
    assert check_schedule(expression) is None


@pytest.mark.parametrize("expression", ["*/10 * * * *", "0 3 * * 1-5", "* * * * * *",
                                        "0 0 * * * 30"])
def test_valid_cron_expressions_are_returned(expression):
    assert check_schedule(expression) == expression


@pytest.mark.parametrize("expression", ["bogus", "61 * * * *", "", "every 5 minutes",
                                        "* * * * * 61"])
def test_bad_cron_expression_is_a_value_error_naming_the_setting(expression):
    with pytest.raises(ValueError, match="PURGE_SCHEDULE") as raised:
        check_schedule(expression)
    assert "not a valid cron expression" in str(raised.value)
    assert repr(expression) in str(raised.value)


def test_create_app_refuses_a_bad_schedule(tmp_path):
    with pytest.raises(ValueError, match="PURGE_SCHEDULE='bogus'"):
        create_app({"DATABASE_URL": str(tmp_path / "t.db"), "PURGE_SCHEDULE": "bogus"})


def test_schedule_off_attaches_no_scheduler(app):
    assert "purge_scheduler" not in app.extensions


# --- the scheduler in one process ------------------------------------------------------------

def purge_threads():
    return [thread for thread in threading.enumerate()
            if thread.name == THREAD and thread.is_alive()]


@pytest.fixture
def scheduled_app(tmp_path):
    """An app purging every second, sessions living one second; its scheduler always stopped."""
    app = create_app({"DATABASE_URL": str(tmp_path / "scheduled.db"), "TESTING": True,
                      "PURGE_SCHEDULE": "* * * * * *", "SESSION_TTL": 1})
    try:
        yield app
    finally:
        app.extensions["purge_scheduler"].stop()
        close_database(app)


def test_creating_the_app_starts_no_purge_thread(scheduled_app):
    assert isinstance(scheduled_app.extensions["purge_scheduler"], PurgeScheduler)
    assert purge_threads() == []


def test_the_first_request_starts_one_purge_thread(scheduled_app):
    client = scheduled_app.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert len(purge_threads()) == 1


def test_the_scheduler_purges_expired_sessions_within_seconds(scheduled_app):
    headers = bearer(issue_key(scheduled_app, organization_id="org_1"))
    client = scheduled_app.test_client()
    for _ in range(3):
        session = client.post(SESSIONS, json={}, headers=headers)
        assert session.status_code == 201
        for n in range(2):
            assert client.post(f"{SESSIONS}/{session.json['id']}/events",
                               json={"type": "info", "message": str(n)},
                               headers=headers).status_code == 201

    def all_gone():
        with connected(scheduled_app):
            return Session.select().count() == 0 and Event.select().count() == 0

    wait_until(all_gone, 4, "the scheduled purge")
    with connected(scheduled_app):
        assert state().last_trigger == "schedule"


def test_stop_ends_the_purge_thread(scheduled_app):
    scheduled_app.test_client().get("/healthz")
    assert len(purge_threads()) == 1
    scheduled_app.extensions["purge_scheduler"].stop()
    assert purge_threads() == []


def test_run_slot_logs_the_count_and_duration(app, clock, caplog):
    with connected(app):
        start(clock.ms, TTL), start(clock.ms, TTL)
    clock.advance(TTL)
    caplog.set_level(logging.INFO, logger="gensessions.purge")
    PurgeScheduler(app, "* * * * * *", 10, 0).run_slot(SLOT)
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("purge run")]
    assert re.fullmatch(r"purge run pid=\d+ purged=2 duration_ms=\d+ "
                        rf"started_at={clock.ms} finished_at={clock.ms}", line), line


def test_run_slot_runs_each_slot_once(app, clock):
    scheduler = PurgeScheduler(app, "* * * * * *", 10, 0)
    scheduler.run_slot(SLOT)
    scheduler.run_slot(SLOT)
    with connected(app):
        assert (state().runs, state().last_slot) == (1, SLOT)


# --- operators: purge-status, purge-expired under a held lock, /healthz ----------------------

@pytest.fixture
def expired_three(app, clock):
    """Three sessions (one with events) that expire TTL seconds from the frozen now."""
    with connected(app):
        ids = {start(clock.ms, TTL, events=2), start(clock.ms, TTL), start(clock.ms, TTL)}
    clock.advance(TTL)
    return ids


def test_purge_status_reports_a_cli_purge(runner, expired_three, clock):
    invoke_ok(runner, "purge-expired")
    status = json.loads(invoke_ok(runner, "purge-status").stdout)
    assert (status["runs"], status["lastPurged"], status["lastTrigger"]) == (1, 3, "cli")
    assert status["running"] is False and status["lastError"] is None
    assert status["lastFinishedAt"] == "2026-11-23T10:15:30.123Z"


def test_purge_status_before_any_purge(runner):
    status = json.loads(invoke_ok(runner, "purge-status").stdout)
    assert (status["runs"], status["lastPurged"], status["running"]) == (0, None, False)


def test_purge_status_shows_a_running_purge(runner, clock):
    with connected(runner.app):
        assert PurgeState.acquire("other-host:1", clock.ms, "schedule")
    status = json.loads(invoke_ok(runner, "purge-status").stdout)
    assert (status["running"], status["lastTrigger"]) == (True, "schedule")


def test_purge_expired_while_another_purge_runs_prints_zero_and_deletes_nothing(
        runner, expired_three, clock):
    with connected(runner.app):
        assert PurgeState.acquire("other-host:1", clock.ms, "schedule")
    result = invoke_ok(runner, "purge-expired")
    assert result.stdout.splitlines()[-1] == "0"
    assert "another purge is running" in result.stderr
    with connected(runner.app):
        assert session_ids() == expired_three
        assert Event.select().count() == 2


def test_healthz_shows_the_last_purge(runner, client, expired_three):
    invoke_ok(runner, "purge-expired")
    purge = client.get("/healthz").json["purge"]
    assert (purge["runs"], purge["lastPurged"], purge["lastTrigger"], purge["running"]) == (
        1, 3, "cli", False)
