"""API keys: shown once, stored only as a SHA-256 hash, looked up by a public id.

A key reads `gsk_<public id>_<secret>`: the prefix lets secret scanners find a
leaked key, the public id names it in list-keys and logs, and the secret (256
random bits) is why a fast hash is enough: there is nothing to brute-force.
"""
import hashlib
import hmac
import re
import secrets

from peewee import BigIntegerField, CharField

from .database import BaseModel
from .writes import writes
from .prepared import Prepared

KEY_PREFIX = "gsk_"
PUBLIC_ID = re.compile(r"[0-9a-f]{12}")
SCOPES = ("write", "read")
# last_used_at is written at most this often per key, so auth is not a write per request.
LAST_USED_RESOLUTION_MS = 60_000


def hash_secret(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKey(BaseModel):
    # The public part of the key (`gsk_<id>_<secret>`), safe to show and log.
    id = CharField(primary_key=True, max_length=32)
    key_hash = CharField(max_length=64)
    name = CharField(max_length=255, null=True)
    user_id = CharField(max_length=255)
    organization_id = CharField(max_length=255, null=True)
    scope = CharField(max_length=8, default="write")
    created_at = BigIntegerField()
    last_used_at = BigIntegerField(null=True)
    revoked_at = BigIntegerField(null=True)
    expires_at = BigIntegerField(null=True)

    @classmethod
    @writes
    def issue(cls, user_id, now, organization_id=None, scope="write", name=None,
              expires_in_ms=None):
        """Create a key and return (row, the full key); the full key is never stored."""
        public_id = secrets.token_hex(6)
        key = f"{KEY_PREFIX}{public_id}_{secrets.token_urlsafe(32)}"
        expires_at = None if expires_in_ms is None else now + expires_in_ms
        row = cls.create(id=public_id, key_hash=hash_secret(key), name=name, user_id=user_id,
                         organization_id=organization_id, scope=scope, created_at=now,
                         expires_at=expires_at)
        return row, key

    @classmethod
    def active(cls, now):
        """The condition of a key that can be used at `now`: not revoked, not expired."""
        return cls.revoked_at.is_null() & (cls.expires_at.is_null() | (cls.expires_at > now))

    def state(self, now):
        """`active`, `revoked` or `expired`, for operators."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @classmethod
    def authenticate(cls, key, now):
        """Return the active key row matching `key`, or None.

        The secret is compared as a hash in constant time; a revoked or
        expired key matches nothing. Nothing is cached, so a revocation holds
        on every worker and host from the next request on.
        """
        if not key.startswith(KEY_PREFIX):
            return None
        public_id, _, secret = key[len(KEY_PREFIX):].partition("_")
        if not PUBLIC_ID.fullmatch(public_id) or not secret:
            return None
        row = ACTIVE_BY_ID.first(public_id, now)
        if row is None or not hmac.compare_digest(row.key_hash, hash_secret(key)):
            return None
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION_MS:
            row.last_used_at = now
            cls.touch(row.id, now)
        return row

    @classmethod
    @writes
    def touch(cls, public_id, now):
        """Record that the key was used at `now`."""
        cls.update(last_used_at=now).where(cls.id == public_id).execute()

    @classmethod
    @writes
    def revoke(cls, public_id, now):
        """Revoke a key by its public id; return False when no active key has that id."""
        return bool(cls.update(revoked_at=now)
                    .where((cls.id == public_id) & cls.revoked_at.is_null()).execute())


# Every authenticated request runs this one: kept as SQL (models/prepared.py).
ACTIVE_BY_ID = Prepared(ApiKey, lambda public_id, now: ApiKey.select().where(
    (ApiKey.id == public_id) & ApiKey.active(now)))
