"""Shapes of error answers (documentation of what app/errors.py builds)."""
from marshmallow import Schema, fields

CODES = ("MISSING_REQUIRED_FIELD", "INVALID_TYPE", "INVALID_ENUM", "OUT_OF_RANGE",
         "INVALID_FORMAT", "UNRECOGNIZED_KEYS", "INVALID_UNION", "CUSTOM_VALIDATION",
         "VALIDATION_ERROR")


class ErrorDetailSchema(Schema):
    code = fields.String(metadata={"enum": list(CODES)})
    message = fields.String()
    path = fields.String()
    suggestion = fields.String()


class ErrorSchema(Schema):
    error = fields.String()
    details = fields.List(fields.Nested(ErrorDetailSchema))
