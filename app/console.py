"""The `gensessions` console command: every command of the app's CLI, plus `serve`.

`gensessions <command>` is `flask --app wsgi <command>` for an installed package:
the same commands (init-db, create-key, list-keys, revoke-key, purge-expired, ...,
and Flask's own run, shell and routes), on the app `create_app()` makes from the
environment. `serve` runs gunicorn with the package's defaults (gunicorn_config.py).
"""
import sys

import click
from flask.cli import FlaskGroup

from . import __version__, create_app

GUNICORN_CONFIG = "python:gensessions.gunicorn_config"


@click.command("serve")
@click.option("--bind", "-b", metavar="HOST:PORT",
              help="Address to listen on.  [default: $BIND or 127.0.0.1:8000]")
@click.option("--workers", "-w", type=click.IntRange(min=1),
              help="Worker processes.  [default: $WEB_CONCURRENCY or 2]")
@click.option("--threads", type=click.IntRange(min=1),
              help="Request threads per worker.  [default: $THREADS or 8]")
def serve_command(bind, workers, threads):
    """Serve the API with gunicorn and gensessions' defaults.

    Configuration comes from the environment (DATABASE_URL, RATE_LIMIT, ...: see the
    README); any other gunicorn setting can be given in GUNICORN_CMD_ARGS.
    """
    from gunicorn.app.wsgiapp import WSGIApplication

    arguments = ["--config", GUNICORN_CONFIG]
    for option, value in (("--bind", bind), ("--workers", workers), ("--threads", threads)):
        if value is not None:
            arguments += [option, str(value)]
    # gunicorn's own command line, run in this process: each worker makes its app with
    # the factory after the fork, exactly as `gunicorn 'gensessions:create_app()'` would.
    sys.argv = ["gensessions serve", *arguments, "gensessions:create_app()"]
    WSGIApplication("%(prog)s [OPTIONS]").run()


class GensessionsGroup(FlaskGroup):
    """Flask's CLI group bound to gensessions' own app factory (so no --app option)."""

    def __init__(self, **extra):
        super().__init__(create_app=create_app, add_version_option=False, **extra)
        # The app is always gensessions': FlaskGroup's --app would be ignored, so hide it.
        self.params = [param for param in self.params if param.name != "app"]


@click.group(cls=GensessionsGroup, help=__doc__.split("\n\n")[1].replace("\n", " "))
@click.version_option(__version__, prog_name="gensessions")
def main():
    pass


main.add_command(serve_command)
