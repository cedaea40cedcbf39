"""Marshmallow building blocks that carry the contract's error codes.

Marshmallow reports errors as plain messages. Each message raised by the
fields and validators here is a `Problem`: a `str` that also carries the
contract's stable `code` and an optional `suggestion`, so the one error
handler can turn any ValidationError into `details[]` without parsing text.
"""
import re
from datetime import datetime, timezone
from functools import lru_cache

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate

from .fast_dump import FastDump

MAX_JSON_DEPTH = 64
# A string without NUL (U+0000), as a JSON Schema (ECMA-262) pattern: PostgreSQL can store
# no NUL, so a request body holding one anywhere is refused (app/http.py).
NO_NUL = "^[^\\u0000]*$"


class Problem(str):
    """An error message with the contract's code (and a suggestion) attached."""

    def __new__(cls, message, code="VALIDATION_ERROR", suggestion=None):
        problem = super().__new__(cls, message)
        problem.code = code
        problem.suggestion = suggestion
        return problem


# Marshmallow's error keys, mapped to the contract's codes.
CODE_OF_KEY = {
    "required": "MISSING_REQUIRED_FIELD",
    "null": "INVALID_TYPE",
    "invalid": "INVALID_TYPE",
    "type": "INVALID_TYPE",
    "invalid_utf8": "INVALID_FORMAT",
    "too_large": "OUT_OF_RANGE",
}


class CodedField:
    """Mixin: every error a field raises carries the code of its error key."""

    def make_error(self, key, **kwargs):
        error = super().make_error(key, **kwargs)
        code = CODE_OF_KEY.get(key, "VALIDATION_ERROR")
        return ValidationError(Problem(str(error.messages[0]), code))


class String(CodedField, fields.String):
    """A string of a request. `openapi` holds the JSON Schema keywords the document adds to
    the field's own (app/openapi.py): what the server refuses beyond the validators."""

    default_error_messages = {"invalid": "Expected a string."}
    openapi = {"pattern": NO_NUL}


class Integer(CodedField, fields.Integer):
    default_error_messages = {"invalid": "Expected an integer."}

    def _validated(self, value):
        # int() also takes "1_0", " 5" and non-ASCII digits; a client's integer is [+-]?[0-9]+
        if isinstance(value, str) and not re.fullmatch(r"[+-]?[0-9]+", value, re.ASCII):
            raise self.make_error("invalid")
        return super()._validated(value)


def json_depth(value, limit):
    """Return True when `value` nests lists or objects deeper than `limit`."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (item.values() if isinstance(item, dict)
                    else item if isinstance(item, list) else ())
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


class JSONObject(CodedField, fields.Dict):
    """A free-form JSON object, stored and returned as given (nesting bounded)."""

    # The rules a JSON Schema cannot state for any value inside the map, said in words.
    RULES = (f"Any JSON object, nested at most {MAX_JSON_DEPTH} levels deep, whose integers lie "
             "from -2^63 to 2^64-1 (send larger numbers as strings) and whose strings and keys "
             "hold no NUL character (U+0000).")

    default_error_messages = {
        "invalid": "Expected an object.",
        "too_deep": f"Nested deeper than {MAX_JSON_DEPTH} levels.",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise self.make_error("invalid")
        if json_depth(value, MAX_JSON_DEPTH):
            raise ValidationError(Problem(self.error_messages["too_deep"], "OUT_OF_RANGE",
                                          f"Keep nesting within {MAX_JSON_DEPTH} levels."))
        return value

    def _serialize(self, value, attr, obj, **kwargs):
        return value

    fast_dump = None  # stored and dumped as it is


def to_rfc3339(ms):
    """Format epoch milliseconds as RFC 3339 UTC with millisecond precision."""
    return second_text(ms // 1000) + f"{ms % 1000:03d}Z"


@lru_cache(maxsize=4096)
def second_text(seconds):
    """`YYYY-MM-DDTHH:MM:SS.` of a second (cached: an event log shares a few seconds)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")


def camelize(name):
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class CamelSchema(FastDump, Schema):
    """Fields are snake_case in Python and camelCase in JSON; answers dump the fast way
    (schemas/fast_dump.py)."""

    def on_bind_field(self, field_name, field_obj):
        field_obj.data_key = camelize(field_obj.data_key or field_name)


class Timestamp(fields.Field):
    """Epoch milliseconds, shown as RFC 3339 UTC with milliseconds (`...T09:15:30.123Z`)."""

    # The fast dump's conversion of a stored value (never None).
    fast_dump = staticmethod(to_rfc3339)

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else to_rfc3339(value)


class OneOf(validate.OneOf):
    def __call__(self, value):
        if value not in self.choices:
            raise ValidationError(Problem(
                "Invalid option", "INVALID_ENUM",
                f"Expected one of: {', '.join(map(str, self.choices))}."))
        return value


class Length(validate.Length):
    def __call__(self, value):
        try:
            return super().__call__(value)
        except ValidationError as error:
            bounds = (f"at most {self.max}" if not self.min
                      else f"{self.min} to {self.max}" if self.max is not None
                      else f"at least {self.min}")
            raise ValidationError(Problem(
                str(error.messages[0]), "OUT_OF_RANGE", f"Use {bounds} characters.")) from None


class Range(validate.Range):
    def __call__(self, value):
        try:
            return super().__call__(value)
        except ValidationError as error:
            bounds = (f"from {self.min} to {self.max}" if self.max is not None
                      else f"of at least {self.min}")
            raise ValidationError(Problem(
                str(error.messages[0]), "OUT_OF_RANGE",
                f"Expected an integer {bounds}.")) from None


class BodySchema(CamelSchema):
    """A request body: a JSON object whose unknown keys are errors."""

    error_messages = {
        "unknown": Problem("Unrecognized key", "UNRECOGNIZED_KEYS",
                           "Remove this key; see the API reference for the accepted fields."),
        "type": Problem("Expected a JSON object as the request body.", "INVALID_TYPE"),
    }

    class Meta:
        unknown = RAISE


class QuerySchema(Schema):
    """Query parameters: unknown ones are ignored."""

    class Meta:
        unknown = EXCLUDE
