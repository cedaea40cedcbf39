"""Shapes of error answers (documentation of what app/errors.py builds)."""
from marshmallow import Schema, fields

CODES = ("MISSING_REQUIRED_FIELD", "INVALID_TYPE", "INVALID_ENUM", "OUT_OF_RANGE",
         "INVALID_FORMAT", "UNRECOGNIZED_KEYS", "INVALID_UNION", "CUSTOM_VALIDATION",
         "VALIDATION_ERROR")


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"enum": list(CODES)})
    message = fields.String(required=True)
    path = fields.String(required=True, metadata={
        "description": "Dotted path to the field; empty for the body itself."})
    suggestion = fields.String(metadata={"description": "An actionable hint."})


class ErrorSchema(Schema):
    error = fields.String(required=True, metadata={"example": "Session not found"})
    details = fields.List(fields.Nested(ErrorDetailSchema))


class ValidationErrorSchema(Schema):
    error = fields.String(required=True, metadata={"example": "Validation error"})
    details = fields.List(fields.Nested(ErrorDetailSchema), required=True)
