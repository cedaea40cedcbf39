"""Idempotency-Key records: the first answer to a POST, replayed to its retries."""
from peewee import BigIntegerField, CharField, IntegerField, TextField

from .database import BaseModel, JSONField
from .writes import write_transaction, writes
from .exceptions import IdempotencyConflict

RETENTION_MS = 24 * 3600 * 1000
# A record still pending after this long belongs to a request that died; a retry takes it over.
ABANDONED_AFTER_MS = 60_000


class IdempotencyRecord(BaseModel):
    user_id = CharField(max_length=255)
    key = CharField(max_length=255)
    request_hash = CharField(max_length=64)
    created_at = BigIntegerField()
    # Null while the first request is still running.
    response_status = IntegerField(null=True)
    response_body = TextField(null=True)
    response_headers = JSONField(null=True)

    class Meta:
        indexes = ((("user_id", "key"), True), (("created_at",), False))

    @classmethod
    def claim(cls, user_id, key, request_hash, now):
        """Start a keyed request: return None to run it, or the finished record to replay.

        Raises IdempotencyConflict when the key was used for another request,
        or when its first request is still running.
        """
        with write_transaction():
            record = cls.get_or_none((cls.user_id == user_id) & (cls.key == key))
            if record is not None and (
                    record.created_at <= now - RETENTION_MS
                    or (record.response_status is None
                        and record.created_at <= now - ABANDONED_AFTER_MS)):
                record.delete_instance()
                record = None
            if record is None:
                cls.create(user_id=user_id, key=key, request_hash=request_hash, created_at=now)
                return None
        if record.request_hash != request_hash:
            raise IdempotencyConflict(
                "This Idempotency-Key was already used with a different request")
        if record.response_status is None:
            raise IdempotencyConflict("A request with this Idempotency-Key is still in progress")
        return record

    @classmethod
    @writes
    def complete(cls, user_id, key, status, body, headers):
        """Store the answer of a keyed request for its retries."""
        (cls.update(response_status=status, response_body=body, response_headers=headers)
         .where((cls.user_id == user_id) & (cls.key == key)).execute())

    @classmethod
    @writes
    def release(cls, user_id, key):
        """Forget a keyed request that did not succeed, so that a retry runs it again."""
        cls.delete().where((cls.user_id == user_id) & (cls.key == key)
                           & cls.response_status.is_null()).execute()

    @classmethod
    def purge_expired(cls, now):
        """Delete records older than the 24-hour retention; return how many."""
        return cls.delete().where(cls.created_at <= now - RETENTION_MS).execute()
