"""Operator commands on the app's CLI: `gensessions <command>`, or `flask --app wsgi <command>`.

Stdout carries only the result.
"""
import json
import os
import socket
from contextlib import contextmanager

import click
from flask import current_app
from flask.cli import with_appcontext

from .models import ApiKey, PurgeState, Session
from .models.api_key import SCOPES
from .models.migrations import migration_status
from .models.purge import purge_with_lock
from .schemas import purge_status_schema
from .schemas.base import to_rfc3339

from . import clock
from .db import binding, connected, ensure_tables
from .openapi import build_spec


def iso(ms):
    return to_rfc3339(ms) if ms else "-"


class Duration(click.ParamType):
    """A length of time: whole seconds, or a number with s, m, h, d or w; in milliseconds."""

    name = "duration"
    UNITS_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
    # Beyond this an expiry is "never" in all but name, and past what timestamps hold.
    MAX_MS = 100 * 365 * 86_400_000

    def convert(self, value, param, ctx):
        text = str(value).strip().lower()
        number, unit = (text[:-1], text[-1]) if text[-1:] in self.UNITS_MS else (text, "s")
        valid = number.isascii() and number.isdigit()
        if not valid or not 0 < int(number) * self.UNITS_MS[unit] <= self.MAX_MS:
            self.fail(f"{value!r} is not a duration such as 3600, 90m, 12h, 30d or 4w "
                      "(at most 100 years)", param, ctx)
        return int(number) * self.UNITS_MS[unit]


def migrate_now():
    """Migrate; return the steps applied."""
    with connected(current_app):
        return ensure_tables()


@contextmanager
def database():
    """The database for a command: connected (an in-memory one is kept, not closed), and
    migrated first if this process has not."""
    with connected(current_app):
        if not binding().tables_ready:
            ensure_tables()
        yield


@click.command("init-db")
@with_appcontext
def init_db_command():
    """Create the database's tables, or bring an older database's schema up to date."""
    applied = migrate_now()
    click.echo(f"Initialized the database ({len(applied)} migration steps applied).", err=True)


@click.command("migrate")
@with_appcontext
@click.option("--status", "show_status", is_flag=True,
              help="List every step and when it was applied; change nothing.")
def migrate_command(show_status):
    """Apply the schema migrations this database lacks; print each step applied."""
    with connected(current_app):  # no migration: show what is pending
        if show_status:
            for name, applied_at in migration_status():
                click.echo(f"{name}  {iso(applied_at) if applied_at else 'pending'}")
            return
    applied = migrate_now()
    for name in applied:
        click.echo(name)
    click.echo(f"{len(applied)} migration steps applied; the schema is up to date.", err=True)


@click.command("create-key")
@with_appcontext
@click.option("--user-id", required=True, help="The user the key acts as.")
@click.option("--org-id", default=None, help="The user's organization, if any.")
@click.option("--scope", type=click.Choice(SCOPES), default="write", show_default=True,
              help="read keys may only GET.")
@click.option("--name", default=None, help="A label to tell keys apart in list-keys.")
@click.option("--expires-in", type=Duration(), default=None, metavar="DURATION",
              help="Refuse the key after this long: 3600 (seconds), 90m, 12h, 30d or 4w. "
                   "Default: never.")
def create_key_command(user_id, org_id, scope, name, expires_in):
    """Create an API key and print it (it is shown only this once)."""
    with database():
        row, key = ApiKey.issue(user_id, clock.now_ms(), organization_id=org_id,
                                scope=scope, name=name, expires_in_ms=expires_in)
    expiry = f", expires {iso(row.expires_at)}" if row.expires_at else ""
    click.echo(f"Created key {row.id} for user {user_id} ({scope}{expiry}).", err=True)
    click.echo(key)


@click.command("dev-key")
@with_appcontext
def dev_key_command():
    """Print the development key kept in the instance folder, creating it when missing."""
    os.makedirs(current_app.instance_path, exist_ok=True)
    path = os.path.join(current_app.instance_path, "dev-api-key")
    with database():
        if os.path.exists(path):
            with open(path) as stored:
                key = stored.read().strip()
            if ApiKey.authenticate(key, clock.now_ms()) is not None:
                click.echo(key)
                return
        _, key = ApiKey.issue("dev_user", clock.now_ms(), organization_id="dev_org", name="dev")
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as stored:
        stored.write(key + "\n")
    click.echo(key)


@click.command("list-keys")
@with_appcontext
def list_keys_command():
    """List API keys (their public ids, never the secrets)."""
    columns = ("ID", "USER", "ORG", "SCOPE", "NAME", "STATE", "CREATED", "LAST USED",
               "EXPIRES", "REVOKED")
    now = clock.now_ms()
    with database():
        rows = [(k.id, k.user_id, k.organization_id or "-", k.scope, k.name or "-", k.state(now),
                 iso(k.created_at), iso(k.last_used_at), iso(k.expires_at), iso(k.revoked_at))
                for k in ApiKey.select().order_by(ApiKey.created_at, ApiKey.id)]
    widths = [max(len(str(v)) for v in column) for column in zip(columns, *rows)]
    for line in (columns, *rows):
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(line, widths)).rstrip())


@click.command("revoke-key")
@with_appcontext
@click.argument("key_id")
def revoke_key_command(key_id):
    """Revoke an API key by its id (as list-keys shows it); effective at once."""
    with database():
        revoked = ApiKey.revoke(key_id, clock.now_ms())
    if not revoked:
        raise click.ClickException(f"No active key with id {key_id!r}.")
    click.echo(f"Revoked key {key_id}.")


@click.command("purge-expired")
@with_appcontext
@click.option("--dry-run", is_flag=True, help="Count what would be purged; delete nothing.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=None,
              help="Sessions deleted per transaction (default PURGE_BATCH_SIZE).")
def purge_expired_command(dry_run, batch_size):
    """Delete expired sessions and their events; the last line is the count."""
    config = current_app.config
    with database():
        if dry_run:
            count = Session.purge_expired(clock.now_ms(), dry_run=True)
            click.echo(f"would purge {count} expired sessions", err=True)
        else:
            count = purge_with_lock(
                clock.now_ms, f"cli:{socket.gethostname()}:{os.getpid()}",
                batch_size or config["PURGE_BATCH_SIZE"], "cli",
                on_batch=lambda done: click.echo(f"purged {done} sessions so far", err=True),
                pause=config["PURGE_BATCH_PAUSE_MS"] / 1000)
            if count is None:
                click.echo("another purge is running; nothing done", err=True)
                count = 0
            else:
                click.echo(f"purged {count} expired sessions", err=True)
    click.echo(count)


@click.command("purge-status")
@with_appcontext
def purge_status_command():
    """Print when the last purge ran, what it removed, and whether one is running."""
    with database():
        status = PurgeState.status(clock.now_ms())
    click.echo(json.dumps(purge_status_schema.dump(status), indent=2))


@click.command("openapi")
@with_appcontext
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default="-",
              show_default=True, help="File to write; - for stdout.")
def openapi_command(output):
    """Write the OpenAPI document (as GET /v1/openapi.json serves it)."""
    text = json.dumps(build_spec(current_app), indent=2, ensure_ascii=False) + "\n"
    with click.open_file(output, "w", encoding="utf-8") as out:
        out.write(text)


def register_cli(app):
    """Attach the operator commands to the app's `flask` CLI."""
    for command in (init_db_command, migrate_command, create_key_command, dev_key_command,
                    list_keys_command, revoke_key_command, purge_expired_command,
                    purge_status_command, openapi_command):
        app.cli.add_command(command)
