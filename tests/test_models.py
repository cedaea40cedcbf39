"""Model-level rules, in the microblog test_token_model mould: seed at a fixed now, act, assert."""
import hashlib
import json

import pytest

from gensessions.models import ApiKey, Event, Session, canonical_hash, db
from helpers import NOW, session_ids, start

TTL = 7 * 24 * 3600
TTL_MS = TTL * 1000
MINUTE_MS = 60_000


def event_session_ids():
    return [row.session_id for row in Event.select().order_by(Event.session, Event.sequence)]


# --- Session.purge_expired -----------------------------------------------------------------

def test_purge_removes_expired_sessions_and_keeps_live_ones(conn):
    expired = start(NOW, TTL)
    live = start(NOW + 1, TTL)
    assert Session.purge_expired(NOW + TTL_MS) == 1
    assert session_ids() == {live}
    assert expired not in session_ids()


def test_purge_removes_the_events_of_expired_sessions_only(conn):
    start(NOW, TTL, events=3)
    live = start(NOW + 1, TTL, events=2)
    Session.purge_expired(NOW + TTL_MS)
    assert event_session_ids() == [live, live]


def test_purge_keeps_a_live_sessions_events_in_sequence(conn):
    start(NOW, TTL, events=1)
    live = start(NOW + 1, TTL, events=3)
    Session.purge_expired(NOW + TTL_MS)
    assert [e.sequence for e in Event.select().where(Event.session == live)
            .order_by(Event.sequence)] == [1, 2, 3]


def test_purge_counts_every_user(conn):
    start(NOW, TTL, user_id="a")
    start(NOW, TTL, user_id="b")
    assert Session.purge_expired(NOW + TTL_MS) == 2


def test_purge_with_nothing_expired_returns_zero(conn):
    start(NOW, TTL, events=1)
    assert Session.purge_expired(NOW + TTL_MS - 1) == 0
    assert len(session_ids()) == 1 and len(event_session_ids()) == 1


def test_purge_of_an_empty_database_returns_zero(conn):
    assert Session.purge_expired(NOW) == 0


@pytest.mark.parametrize("batch_size, batches", [
    (1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]), (5, [5]), (500, [5]),
])
def test_purge_in_batches_removes_all_expired(conn, batch_size, batches):
    for n in range(5):
        start(NOW + n, TTL, events=n % 3)
    live = start(NOW + TTL_MS, TTL, events=1)
    seen = []
    assert Session.purge_expired(NOW + TTL_MS + 4, batch_size, on_batch=seen.append) == 5
    assert seen == batches
    assert session_ids() == {live}
    assert event_session_ids() == [live]


def test_purge_dry_run_counts_without_deleting(conn):
    start(NOW, TTL, events=2)
    start(NOW + TTL_MS, TTL)
    assert Session.purge_expired(NOW + TTL_MS, dry_run=True) == 1
    assert len(session_ids()) == 2
    assert len(event_session_ids()) == 2


def test_expired_session_is_not_live_before_it_is_purged(conn):
    session_id = start(NOW, TTL)
    assert Session.live("user_1", NOW + TTL_MS - 1).where(Session.id == session_id).exists()
    assert not Session.live("user_1", NOW + TTL_MS).where(Session.id == session_id).exists()


# --- canonical_hash ------------------------------------------------------------------------

def reference_hash(value):
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("value", [
    {},
    {"b": 1, "a": 2},
    {"name": "Café ☕", "emoji": "🚀", "cjk": "漢字"},
    {"nested": {"z": [3, 2, {"y": None, "x": True}], "a": 1.5}},
    {"quote": "\"", "backslash": "\\", "newline": "\n", "tab": "\t", "nul": "\u0000"},
    {"big": 2 ** 63, "negative": -1, "float": 0.1, "exp": 1e300},
], ids=["empty", "unsorted", "unicode", "nested", "escapes", "numbers"])
def test_canonical_hash_is_sha256_of_canonical_json(value):
    assert canonical_hash(value) == reference_hash(value)


def test_canonical_hash_ignores_key_order():
    assert canonical_hash({"a": 1, "b": {"c": 2, "d": 3}}) == canonical_hash(
        {"b": {"d": 3, "c": 2}, "a": 1})


def test_canonical_hash_does_not_escape_non_ascii():
    text = '{"name":"Café"}'
    assert canonical_hash({"name": "Café"}) == hashlib.sha256(text.encode()).hexdigest()


def test_canonical_hash_is_lowercase_hex():
    digest = canonical_hash({"a": 1})
    assert len(digest) == 64 and digest == digest.lower()
    int(digest, 16)


def test_canonical_hash_of_none_is_none():
    assert canonical_hash(None) is None


def test_update_sets_the_hash_of_a_given_product_object(conn):
    session_id = start(NOW, TTL)
    product = {"title": "Thé", "parts": [{"b": 2, "a": 1}]}
    session = Session.update_live(session_id, "user_1", NOW, {"product_object": product})
    assert session.product_object_hash == reference_hash(product)


def test_update_keeps_an_explicit_hash(conn):
    session_id = start(NOW, TTL)
    session = Session.update_live(session_id, "user_1", NOW,
                                  {"product_object": {"a": 1}, "product_object_hash": "mine"})
    assert session.product_object_hash == "mine"


def test_update_clears_the_hash_with_the_product_object(conn):
    session_id = start(NOW, TTL)
    Session.update_live(session_id, "user_1", NOW, {"product_object": {"a": 1}})
    session = Session.update_live(session_id, "user_1", NOW, {"product_object": None})
    assert session.product_object_hash is None


# --- ApiKey --------------------------------------------------------------------------------

def issue(now=NOW, **options):
    return ApiKey.issue("user_1", now, organization_id="org_1", **options)


def test_authenticate_returns_the_keys_row(conn):
    row, key = issue(scope="read", name="ci")
    found = ApiKey.authenticate(key, NOW)
    assert (found.id, found.user_id, found.organization_id, found.scope) == (
        row.id, "user_1", "org_1", "read")


def test_key_is_stored_only_as_its_hash(conn):
    row, key = issue()
    stored = ApiKey.get_by_id(row.id)
    assert stored.key_hash != key
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    secret = key.split("_", 2)[2]
    for value in stored.__data__.values():
        assert key not in str(value) and secret not in str(value)


def test_authenticate_rejects_a_revoked_key(conn):
    row, key = issue()
    assert ApiKey.revoke(row.id, NOW)
    assert ApiKey.authenticate(key, NOW + 1) is None


def test_revoke_of_an_unknown_or_revoked_key_returns_false(conn):
    row, _ = issue()
    assert ApiKey.revoke(row.id, NOW)
    assert not ApiKey.revoke(row.id, NOW)
    assert not ApiKey.revoke("000000000000", NOW)


def test_authenticate_rejects_a_wrong_secret(conn):
    row, key = issue()
    assert ApiKey.authenticate(f"gsk_{row.id}_" + "x" * 43, NOW) is None


def test_authenticate_rejects_another_keys_secret(conn):
    first, _ = issue()
    _, second_key = issue()
    secret = second_key.split("_", 2)[2]
    assert ApiKey.authenticate(f"gsk_{first.id}_{secret}", NOW) is None


@pytest.mark.parametrize("mangle", [
    lambda key: "",
    lambda key: "gsk_",
    lambda key: "gsk__",
    lambda key: key.split("_", 2)[0] + "_" + key.split("_", 2)[1],
    lambda key: key.split("_", 2)[0] + "_" + key.split("_", 2)[1] + "_",
    lambda key: "gsk__" + key.split("_", 2)[2],
    lambda key: key.removeprefix("gsk_"),
    lambda key: "GSK_" + key.removeprefix("gsk_"),
    lambda key: " " + key,
    lambda key: key + " ",
    lambda key: key[:-1],
    lambda key: key + "x",
    lambda key: "Bearer " + key,
], ids=["empty", "prefix", "prefix-and-separator", "no-secret", "empty-secret",
        "empty-id", "no-prefix", "uppercase-prefix", "leading-space", "trailing-space",
        "truncated", "extended", "with-scheme"])
def test_authenticate_rejects_a_malformed_key(conn, mangle):
    _, key = issue()
    assert ApiKey.authenticate(mangle(key), NOW) is None


def test_authenticate_rejects_an_unknown_key(conn):
    _, key = issue()
    ApiKey.delete().execute()
    assert ApiKey.authenticate(key, NOW) is None


def test_first_authentication_records_last_used(conn):
    row, key = issue()
    assert ApiKey.get_by_id(row.id).last_used_at is None
    ApiKey.authenticate(key, NOW + 5)
    assert ApiKey.get_by_id(row.id).last_used_at == NOW + 5


@pytest.mark.parametrize("gap_ms, recorded", [
    (10_000, NOW), (MINUTE_MS - 1, NOW), (61_000, NOW + 61_000),
], ids=["10s", "just-under-a-minute", "61s"])
def test_last_used_is_written_at_most_once_a_minute(conn, gap_ms, recorded):
    row, key = issue()
    ApiKey.authenticate(key, NOW)
    ApiKey.authenticate(key, NOW + gap_ms)
    assert ApiKey.get_by_id(row.id).last_used_at == recorded


@pytest.mark.parametrize("gap_ms, updates", [(10_000, 1), (61_000, 2)], ids=["10s", "61s"])
def test_last_used_update_statements(conn, monkeypatch, gap_ms, updates):
    """Two authentications 10 s apart write once; 61 s apart, twice."""
    row, key = issue()
    statements = []
    execute_sql = type(db.obj).execute_sql

    def spy(self, sql, params=None, *args, **kwargs):
        statements.append(sql)
        return execute_sql(self, sql, params, *args, **kwargs)

    monkeypatch.setattr(type(db.obj), "execute_sql", spy)
    ApiKey.authenticate(key, NOW)
    ApiKey.authenticate(key, NOW + gap_ms)
    assert len([sql for sql in statements if sql.lstrip().upper().startswith("UPDATE")]) \
        == updates


def test_frequent_use_over_several_minutes_keeps_last_used_fresh(conn):
    row, key = issue()
    for second in range(0, 181, 10):
        ApiKey.authenticate(key, NOW + second * 1000)
    assert NOW + 120_000 <= ApiKey.get_by_id(row.id).last_used_at <= NOW + 180_000


def test_issued_keys_have_unique_ids_and_secrets(conn):
    keys = [issue()[1] for _ in range(20)]
    assert len(set(keys)) == 20
    assert len({key.split("_", 2)[1] for key in keys}) == 20
