"""Schema migrations: the database's schema brought up to the models', step by step.

A fresh database gets every table as the models define them and every step
recorded as applied. A database made before a step existed gets that step,
once: `flask migrate` (and `init-db`, and each server at start) apply what is
missing, in order, each step with its record in one transaction. Steps use
peewee's playhouse.migrate, so they run on SQLite and PostgreSQL alike.

To change the schema: change the model, then append a step here that makes
the same change to an existing database. A step that adds a table spells
the table out as it is at that step (a later step may add to it). Never edit
or reorder a step that has shipped.
"""
import time

from peewee import BigIntegerField, CharField, PostgresqlDatabase
from playhouse.migrate import SchemaMigrator, migrate

from .database import BaseModel, db
from .writes import write_transaction

# Any constant: the PostgreSQL advisory lock that lets one process migrate at a time.
MIGRATION_LOCK = 0x6773_6d69


class AppliedMigration(BaseModel):
    """One row per step applied to this database."""

    name = CharField(primary_key=True, max_length=64)
    applied_at = BigIntegerField()


def initial(migrator):
    """The schema as it was before migrations existed (baseline; nothing to do)."""


def api_key_expiry(migrator):
    """API keys may expire (`create-key --expires-in`)."""
    migrate(migrator.add_column("api_key", "expires_at", BigIntegerField(null=True)))


def session_list_indexes(migrator):
    """Indexes for the status-filtered page (index order, no sort) and covering counts."""
    migrate(migrator.drop_index("session", "session_user_id_status_expires_at"),
            migrator.add_index("session", ("user_id", "status", "created_at", "id",
                                           "expires_at"), False),
            migrator.add_index("session", ("user_id", "expires_at"), False))


def server_secret(migrator):
    """Secrets of the database, shared by every process: the stream tokens' signing key."""
    class ServerSecret(BaseModel):
        name = CharField(primary_key=True, max_length=32)
        value = CharField(max_length=128)

        class Meta:
            table_name = "server_secret"

    db.create_tables([ServerSecret], safe=True)


# (name, step) in the order they apply. Append only.
STEPS = (
    ("0001_initial", initial),
    ("0002_api_key_expiry", api_key_expiry),
    ("0003_session_list_indexes", session_list_indexes),
    ("0004_server_secret", server_secret),
)


def pending(applied):
    return [(name, step) for name, step in STEPS if name not in applied]


def migrate_database(models):
    """Bring the database's schema up to `models`; return the names of the steps applied."""
    now = int(time.time() * 1000)
    with write_transaction():
        if isinstance(db.obj, PostgresqlDatabase):
            # Several workers or hosts starting at once: one migrates, the others then see it.
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        db.create_tables([AppliedMigration], safe=True)
        applied = {row.name for row in AppliedMigration.select(AppliedMigration.name)}
        if not applied and not any(db.table_exists(model._meta.table_name)
                                   for model in models):
            # A fresh database: the models are the latest schema already.
            db.create_tables(models, safe=True)
            steps = [(name, None) for name, _ in STEPS]
        else:
            # Tables made before migrations were recorded are at the baseline.
            steps = pending(applied or {STEPS[0][0]})
            if not applied:
                AppliedMigration.create(name=STEPS[0][0], applied_at=now)
            migrator = SchemaMigrator.from_database(db.obj)
            for _, step in steps:
                step(migrator)
        for name, _ in steps:
            AppliedMigration.create(name=name, applied_at=now)
    return [name for name, _ in steps]


def migration_status():
    """[(name, applied_at or None)] for every step, in order."""
    applied = {}
    if db.table_exists(AppliedMigration._meta.table_name):
        applied = {row.name: row.applied_at for row in AppliedMigration.select()}
    return [(name, applied.get(name)) for name, _ in STEPS]
