"""The `gensessions` console command: every command of the app's CLI, plus `serve` and
`demo`.

gensessions stores AI product generation sessions and their event logs behind a REST API.
`serve` runs it (gunicorn with the package's defaults); `demo` runs it on throwaway data
that moves by itself; the other commands manage its database and API keys. Settings come
from environment variables (see the README).
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

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
    for option, value in (("--bind", bind), ("--workers", workers)):
        if value is not None:
            arguments += [option, str(value)]
    if threads is not None:
        # THREADS, not gunicorn's --threads: the settings add STREAM_MAX to it for streams.
        os.environ["THREADS"] = str(threads)
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


# The demo's browser clients: a front end's development server on any local port.
DEMO_ORIGINS = "http://localhost:*,http://127.0.0.1:*"


@click.command("demo")
@click.option("--bind", "-b", default="127.0.0.1:8000", show_default=True,
              metavar="HOST:PORT", help="Address to listen on.")
@click.option("--pace", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              metavar="SECONDS", help="About how often the simulator takes a step.")
@click.option("--db", "db_path", type=click.Path(dir_okay=False),
              help="Keep the data in this SQLite file (default: a throwaway one, deleted at "
                   "exit).")
def demo_command(bind, pace, db_path):
    """Serve a demo: realistic sessions that move by themselves, on throwaway data.

    Seeds sessions in every status and runs a simulator that creates sessions and moves
    them through the lifecycle, appending progress events. CORS is open to
    http://localhost and http://127.0.0.1 on any port. Prints a demo key and the
    viewer's URL. Ctrl-C ends it (and deletes the data unless --db).
    """
    from . import demo
    from .db import connected, ensure_tables

    folder = tempfile.mkdtemp(prefix="gensessions-demo-") if db_path is None else None
    database = db_path and os.path.abspath(db_path) or os.path.join(folder, "demo.db")
    settings = {"DATABASE_URL": database, "CORS_ORIGINS": DEMO_ORIGINS,
                "INSTANCE_PATH": folder or os.path.dirname(database)}
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    server = None
    try:
        app = create_app({**settings, "PURGE_SCHEDULE": "off", "RATE_LIMIT": "off"})
        rng = random.Random()
        ttl = app.config["SESSION_TTL"]
        with connected(app):
            ensure_tables()  # an app made for a command leaves that to the command
            key = demo.issue_demo_key()
            fresh = not demo.has_sessions()
            running = demo.seed(rng, ttl) if fresh else demo.still_running(rng, ttl)
        server = subprocess.Popen(
            [sys.executable, "-m", "gensessions", "serve", "--bind", bind],
            env={**os.environ, **settings}, start_new_session=True)
        url = f"http://{bind}"
        if not wait_until_healthy(url, server, stopping):
            raise click.ClickException(f"the server did not start on {bind}")
        click.echo(demo_banner(url, key, folder is None, fresh))
        simulator = demo.Simulator(running, pace, ttl, rng)
        with connected(app):
            simulator.run(stopping, server.poll)
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        click.echo("Demo stopped" + ("; its data is deleted." if folder else "."), err=True)


def wait_until_healthy(url, server, stopping, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not stopping.is_set() and server.poll() is None:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def demo_banner(url, key, kept, fresh):
    data = ("kept in the --db file" if kept else "throwaway: deleted when the demo stops")
    seeded = "seeded with sessions in every status" if fresh else "as the --db file left it"
    return f"""
  gensessions DEMO: realistic sessions that move by themselves. Not for real data.
  Data: {data}; {seeded}.

  Viewer:    {url}/ui/#key={key}
  Demo key:  {key}
  API:       {url}/v1/products/generation/sessions   (docs: {url}/docs/)
  Try:       curl -s {url}/v1/products/generation/sessions -H "Authorization: Bearer {key}"
  CORS:      open to http://localhost:* and http://127.0.0.1:* (any port)

  Ctrl-C stops it.
"""


@click.group(cls=GensessionsGroup, help=__doc__.split("\n\n")[1].replace("\n", " "))
@click.version_option(__version__, prog_name="gensessions")
def main():
    pass


main.add_command(serve_command)
main.add_command(demo_command)
