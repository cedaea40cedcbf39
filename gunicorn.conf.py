"""gunicorn's defaults for gensessions: `gunicorn wsgi:app` reads this file.

The settings live in the package (app/gunicorn_config.py), so that an installed
`gensessions serve` runs with the same ones.
"""
from gensessions.gunicorn_config import *  # noqa: F401,F403
