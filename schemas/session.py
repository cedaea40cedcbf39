"""Shapes of sessions and events, in requests and in answers."""
import re

from marshmallow import ValidationError, fields, validates_schema

from ..models.session import ID_PATTERN, STATUSES

from .base import (BodySchema, CamelSchema, Integer, JSONObject, Length, OneOf, Problem,
                   QuerySchema, Range, String, Timestamp)

# Offsets past this are refused rather than overflowing a database integer.
MAX_OFFSET = 2 ** 31 - 1


class EventSchema(CamelSchema):
    id = fields.String(required=True, metadata={"example": "evt_8f3b2c9d7a1e4f2b0c6d5e4a"})
    session_id = fields.String(required=True)
    user_id = fields.String(required=True)
    organization_id = fields.String(required=True, allow_none=True)
    sequence = fields.Integer(required=True)
    type = fields.String(required=True)
    stage = fields.String(required=True, allow_none=True)
    message = fields.String(required=True, allow_none=True)
    payload = JSONObject(required=True, allow_none=True)
    created_at = Timestamp(required=True)


class SessionSchema(CamelSchema):
    id = fields.String(required=True, metadata={"example": "sess_1234567890abcdefghijklmn"})
    user_id = fields.String(required=True)
    organization_id = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, validate=OneOf(STATUSES))
    prd = JSONObject(required=True, allow_none=True)
    plan = JSONObject(required=True, allow_none=True)
    product_object = JSONObject(required=True, allow_none=True)
    product_object_hash = fields.String(required=True, allow_none=True)
    assembly_state = JSONObject(required=True, allow_none=True)
    catalog_version = fields.String(required=True, allow_none=True)
    schema_version = fields.String(required=True, allow_none=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)
    expires_at = Timestamp(required=True)


class SessionDetailSchema(SessionSchema):
    events = fields.List(fields.Nested(EventSchema), required=True, attribute="event_log")


class SessionCreateSchema(BodySchema):
    catalog_version = String(validate=Length(max=64))
    prd = JSONObject(allow_none=True)
    schema_version = String(validate=Length(max=64))


class SessionPatchSchema(BodySchema):
    """Each given field replaces the stored one whole; null clears it."""

    assembly_state = JSONObject(allow_none=True)
    plan = JSONObject(allow_none=True)
    prd = JSONObject(allow_none=True)
    product_object = JSONObject(allow_none=True)
    product_object_hash = String(allow_none=True, validate=Length(max=128), metadata={
        "description": "Defaults to the SHA-256 of productObject's canonical JSON when "
                       "productObject is given without it."})
    status = String(validate=OneOf(STATUSES), metadata={
        "description": "completed, failed and cancelled are final."})


class EventCreateSchema(BodySchema):
    type = String(required=True, validate=Length(min=1, max=64))
    message = String(allow_none=True, validate=Length(max=10_000))
    stage = String(allow_none=True, validate=Length(max=64),
                   metadata={"description": "Defaults to the session's status."})
    payload = JSONObject(allow_none=True)


# The characters of an id (models.session.ID_PATTERN is them, 1 to 64 times).
ID_CHARS = ID_PATTERN.pattern.partition("{")[0]
# A cursor is `<createdAt in epoch ms>.<id>` of the session the page ended with. 15 digits of
# milliseconds reach the year 33658; more is no time of ours.
CURSOR = re.compile(rf"([0-9]{{1,15}})\.({ID_CHARS}{{1,64}})")
# `after`: a sequence number (18 digits stay below 2^62, the most events a session holds),
# or an event id, `evt_` and the rest of an id.
AFTER = re.compile(rf"[0-9]{{1,18}}|evt_{ID_CHARS}{{0,60}}")
# The longest `wait` of an events request, in seconds.
MAX_WAIT_SECONDS = 30


def encode_cursor(session):
    """The opaque cursor that continues a listing after `session`."""
    return f"{session.created_at}.{session.id}"


class Cursor(String):
    """An opaque `nextCursor`, decoded to the (created_at, id) it continues after."""

    openapi = {"minLength": 3, "pattern": f"^{CURSOR.pattern}$"}

    def _deserialize(self, value, attr, data, **kwargs):
        match = CURSOR.fullmatch(super()._deserialize(value, attr, data, **kwargs))
        if match is None:
            raise ValidationError(Problem(
                "Invalid cursor", "INVALID_FORMAT",
                "Pass the nextCursor of a previous page unchanged."))
        return int(match[1]), match[2]


class SessionListQuery(QuerySchema):
    status = String(validate=OneOf(STATUSES), metadata={"description": "Only this status."})
    limit = Integer(load_default=20, validate=Range(min=1, max=100),
                    metadata={"description": "Sessions per page."})
    offset = Integer(load_default=0, validate=Range(min=0, max=MAX_OFFSET),
                     metadata={"description": "Sessions to skip (not with `cursor`)."})
    cursor = Cursor(metadata={"description": "The `nextCursor` of the previous page, unchanged."})

    @validates_schema
    def cursor_or_offset(self, data, **kwargs):
        if data.get("cursor") is not None and data.get("offset"):
            raise ValidationError(Problem(
                "cursor and offset cannot be used together", "CUSTOM_VALIDATION",
                "Use either cursor or offset, not both."), field_name="cursor")


class SequenceNumber(int):
    """A sequence number, with the text the client wrote it as (`text`), to give back."""

    def __new__(cls, text):
        number = super().__new__(cls, text)
        number.text = text
        return number


class EventAfter(String):
    """`after`: an event id, or a sequence number; decoded to str or SequenceNumber."""

    openapi = {"minLength": 1, "pattern": f"^(?:{AFTER.pattern})$"}

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if AFTER.fullmatch(text) is None:
            raise ValidationError(Problem(
                "Invalid after", "INVALID_FORMAT",
                "Pass an event id (evt_...) or a sequence number."))
        return text if text.startswith("evt_") else SequenceNumber(text)


class EventListQuery(QuerySchema):
    after = EventAfter(metadata={
        "description": "Only events after this one: an event id (`evt_...`, e.g. the last "
                       "`nextCursor`) or a sequence number. An event id that names no event "
                       "of this session answers 400 (`INVALID_FORMAT`); a sequence number "
                       "past the last event is an empty page."})
    limit = Integer(load_default=100, validate=Range(min=1, max=1000),
                    metadata={"description": "Events per page."})
    wait = Integer(load_default=0, validate=Range(min=0, max=MAX_WAIT_SECONDS), metadata={
        "description": "Seconds to wait when no event is there yet after `after`: the answer "
                       "comes as soon as one is appended (by any worker or host), or after "
                       "`wait` seconds with an empty `data`. 0: answer at once."})


class EventStreamQuery(QuerySchema):
    after = EventAfter(metadata={
        "description": "Replay from after this event (an event id or a sequence number); "
                       "the `Last-Event-ID` header, when sent, wins. Default: the start of "
                       "the log."})
    access_token = String(metadata={
        "description": "A stream token (POST .../stream-tokens) instead of the Authorization "
                       "header, for browsers' EventSource; taken on this endpoint only."})


class StreamTokenSchema(CamelSchema):
    token = fields.String(required=True, metadata={
        "description": "Pass it as `access_token` to this session's event stream."})
    expires_at = Timestamp(required=True)


class SessionPaginationSchema(CamelSchema):
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    total = fields.Integer(required=True)
    has_more = fields.Boolean(required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class SessionPageSchema(CamelSchema):
    data = fields.List(fields.Nested(SessionSchema), required=True)
    pagination = fields.Nested(SessionPaginationSchema, required=True)


class EventPaginationSchema(CamelSchema):
    limit = fields.Integer(required=True)
    has_more = fields.Boolean(required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class EventPageSchema(CamelSchema):
    data = fields.List(fields.Nested(EventSchema), required=True)
    pagination = fields.Nested(EventPaginationSchema, required=True)
