"""The service's own log lines ("gensessions.*"), on stderr beside gunicorn's."""
import logging
import sys

LOGGER = "gensessions"


def configure_logging(level=logging.INFO):
    """Send gensessions.* records to stderr unless the host application set up a handler."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"))
        logger.addHandler(handler)
