"""Stream tokens: a short-lived pass to read one session's live stream, and nothing else.

Browsers' EventSource cannot send an Authorization header, so the stream also takes a
token in its URL. A token reads `gst_<payload>.<signature>`: the payload names the user,
the organization, the session and the expiry; the signature is an HMAC-SHA256 of it under
a key that the database holds (made on first use). So every worker and host sharing the
database verifies a token any of them issued, with no setting to share, and a token is
never stored anywhere: there is nothing to steal from the database but the signing key,
which signs only these read-only, minutes-long passes.
"""
import base64
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from weakref import WeakKeyDictionary

import orjson
from peewee import CharField

from .database import BaseModel, db
from .session import Session
from .writes import writes

TOKEN_PREFIX = "gst_"
SIGNING_KEY_NAME = "stream-token"


class ServerSecret(BaseModel):
    """A secret of this database, shared by every process that uses it."""

    name = CharField(primary_key=True, max_length=32)
    value = CharField(max_length=128)

    @classmethod
    @writes
    def make(cls, name):
        """Create the secret `name` unless another process already has."""
        cls.insert(name=name, value=secrets.token_hex(32)).on_conflict_ignore().execute()

    @classmethod
    def value_of(cls, name):
        row = cls.get_or_none(cls.name == name)
        if row is None:
            cls.make(name)
            row = cls.get(cls.name == name)
        return bytes.fromhex(row.value)


# The signing key of each open database, read once per process (it never changes).
signing_keys = WeakKeyDictionary()
signing_keys_lock = threading.Lock()


def signing_key():
    database = db.obj
    key = signing_keys.get(database)
    if key is None:
        with signing_keys_lock:
            key = signing_keys.get(database)
            if key is None:
                key = signing_keys[database] = ServerSecret.value_of(SIGNING_KEY_NAME)
    return key


@dataclass(frozen=True)
class StreamPass:
    """What a valid stream token allows: reading `session_id`'s stream as `user_id`."""

    user_id: str
    organization_id: str | None
    session_id: str
    expires_at: int


def encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signature(payload):
    return encode(hmac.new(signing_key(), payload.encode(), hashlib.sha256).digest())


def issue(user_id, organization_id, session_id, now, ttl_seconds):
    """Return (token, expires_at) for reading `session_id`'s stream as `user_id`."""
    expires_at = now + ttl_seconds * 1000
    payload = encode(orjson.dumps([user_id, organization_id, session_id, expires_at]))
    return f"{TOKEN_PREFIX}{payload}.{signature(payload)}", expires_at


def issue_for_session(session_id, user_id, now, ttl_seconds):
    """{"token", "expires_at"} for the caller's live session; raises NotFound."""
    session = Session.get_live(session_id, user_id, now)
    token, expires_at = issue(session.user_id, session.organization_id, session.id, now,
                              ttl_seconds)
    return {"token": token, "expires_at": expires_at}


def verify(token, now):
    """The StreamPass of a valid, unexpired token; None for anything else."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX) or len(token) > 2048:
        return None
    payload, _, signed = token[len(TOKEN_PREFIX):].partition(".")
    if not payload or not signed.isascii() or not hmac.compare_digest(
            signed.encode(), signature(payload).encode()):
        return None
    try:
        user_id, organization_id, session_id, expires_at = orjson.loads(
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError):
        return None
    if not isinstance(expires_at, int) or expires_at <= now:
        return None
    return StreamPass(user_id, organization_id, session_id, expires_at)
