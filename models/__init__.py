"""Peewee models and the domain rules that live next to them."""
from .api_key import ApiKey
from .database import db, open_database, using
from .exceptions import (DomainError, IdempotencyConflict, NotFound, StaleRevision,
                         TransitionRefused, UnknownEvent)
from .idempotency import IdempotencyRecord
from .migrations import migrate_database
from .purge import PurgeState
from .stream_token import ServerSecret
from .session import STATUSES, TERMINAL_STATUSES, Event, Session, canonical_hash

MODELS = (ApiKey, Session, Event, IdempotencyRecord, PurgeState, ServerSecret)


def create_tables():
    """Create the tables of a fresh database, or migrate an older one; return the steps run."""
    return migrate_database(MODELS)


__all__ = ["ApiKey", "Event", "Session", "IdempotencyRecord", "PurgeState", "ServerSecret",
           "STATUSES",
           "TERMINAL_STATUSES",
           "DomainError", "IdempotencyConflict", "NotFound", "StaleRevision", "TransitionRefused",
           "UnknownEvent",
           "canonical_hash", "create_tables", "db", "open_database", "using", "MODELS"]
