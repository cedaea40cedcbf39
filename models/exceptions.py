"""Domain errors the models raise; app/errors.py turns each into its HTTP answer."""


class DomainError(Exception):
    """Base class of the rules the models enforce."""


class NotFound(DomainError):
    """The session does not exist, is another user's, or has expired."""


class StaleRevision(DomainError):
    """An If-Match precondition named a revision that is no longer current."""


class TransitionRefused(DomainError):
    """A terminal session was asked to move to another status."""

    def __init__(self, current, requested):
        super().__init__(f"Cannot change status from {current} to {requested}")
        self.current = current
        self.requested = requested


class UnknownEvent(DomainError):
    """An `after` event id that names no event of the session."""


class IdempotencyConflict(DomainError):
    """An Idempotency-Key reused with another request, or while its first use still runs."""
