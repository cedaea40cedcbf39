"""Configuration: defaults, then the environment, then the caller's overrides."""
import os

DEFAULTS = {
    "DATABASE_URL": None,  # None: SQLite file under the instance folder
    "SESSION_TTL": 7 * 24 * 3600,
    "PURGE_SCHEDULE": "*/10 * * * *",
    "PURGE_BATCH_SIZE": 100,
    "PURGE_BATCH_PAUSE_MS": 50,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "RATE_LIMIT": "600/minute",
    "RATE_LIMIT_STORAGE_URI": "memory://",
    "JWT_PUBLIC_KEY_FILE": None,
    "JWT_ISSUER": None,
    "JWT_AUDIENCE": None,
    "JWT_AUTHORIZED_PARTIES": None,
    "CORS_ORIGINS": None,  # None: no CORS headers; "*" or comma-separated origins
    "SQLITE_BUSY_TIMEOUT": 30,
    # Live events: open streams per worker process (each holds a thread: the gunicorn
    # settings give a worker THREADS + STREAM_MAX threads), how long one stays open, how
    # often a quiet one sends a keep-alive, and how long a stream token lasts (seconds).
    "STREAM_MAX": 500,
    "STREAM_MAX_SECONDS": 300,
    "STREAM_HEARTBEAT_SECONDS": 15,
    "STREAM_TOKEN_TTL": 900,
}

# Environment variables that are whole numbers; the rest are taken as strings.
INTEGER_SETTINGS = {"SESSION_TTL", "PURGE_BATCH_SIZE", "PURGE_BATCH_PAUSE_MS",
                    "MAX_CONTENT_LENGTH", "SQLITE_BUSY_TIMEOUT", "STREAM_MAX",
                    "STREAM_MAX_SECONDS", "STREAM_HEARTBEAT_SECONDS", "STREAM_TOKEN_TTL"}
# Integer settings for which 0 makes sense (no pause).
ZERO_ALLOWED = {"PURGE_BATCH_PAUSE_MS"}


def as_int(name, raw):
    """Parse a whole-number setting, naming the variable when it is not one."""
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0 or (value == 0 and name not in ZERO_ALLOWED):
        raise ValueError(f"{name} must be positive, not {raw!r}")
    return value


def from_environment(environ=os.environ):
    """Return the settings the environment sets, parsed."""
    settings = {}
    for name in DEFAULTS:
        raw = environ.get(name)
        if raw is None or raw == "":
            continue
        settings[name] = as_int(name, raw) if name in INTEGER_SETTINGS else raw
    return settings
