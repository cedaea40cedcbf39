"""Marshmallow schemas: one instance per use, shared by validation and documentation."""
from .errors import ErrorSchema
from .health import HealthSchema, PurgeStatusSchema
from .session import (EventCreateSchema, EventListQuery, EventPageSchema, EventSchema,
                      EventStreamQuery, SessionCreateSchema, SessionDetailSchema,
                      SessionListQuery, SessionPageSchema, SessionPatchSchema, SessionSchema,
                      StreamTokenSchema, encode_cursor)

session_schema = SessionSchema()
session_detail_schema = SessionDetailSchema()
session_create_schema = SessionCreateSchema()
session_patch_schema = SessionPatchSchema()
session_list_query = SessionListQuery()
session_page_schema = SessionPageSchema()
event_schema = EventSchema()
event_create_schema = EventCreateSchema()
event_list_query = EventListQuery()
event_page_schema = EventPageSchema()
event_stream_query = EventStreamQuery()
stream_token_schema = StreamTokenSchema()
error_schema = ErrorSchema()
health_schema = HealthSchema()
purge_status_schema = PurgeStatusSchema()

__all__ = [name for name in dir() if name.endswith("_schema") or name.endswith("_query")]
__all__ += ["encode_cursor"]
