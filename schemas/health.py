"""Shapes of the health answer and of the purge status operators read."""
from marshmallow import fields

from .base import CamelSchema, Timestamp


class PurgeStatusSchema(CamelSchema):
    running = fields.Boolean()
    runs = fields.Integer()
    # OpenAPI 3.0 needs null among an enum's values, hence None in the list.
    last_trigger = fields.String(allow_none=True, metadata={"enum": ["schedule", "cli", None]})
    last_started_at = Timestamp(allow_none=True)
    last_finished_at = Timestamp(allow_none=True)
    last_purged = fields.Integer(allow_none=True)
    last_duration_ms = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)


class HealthSchema(CamelSchema):
    status = fields.String(metadata={"enum": ["ok"]})
    purge = fields.Nested(PurgeStatusSchema)
