"""The one source of "now", in integer milliseconds since the epoch (UTC).

Models take `now` as an argument; views get it from here, so tests can
freeze or move time by patching `now_ms`.
"""
import time


def now_ms():
    """Return the current time in whole milliseconds since the epoch."""
    return time.time_ns() // 1_000_000
