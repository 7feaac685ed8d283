"""The ledger's schema under versioned migrations (Alembic): on open, by hand, and new revisions.

:class:`~dispatcher.ledger.Ledger` calls :func:`upgrade` every time it opens a ledger. A ledger already
at :data:`HEAD` costs one query, and Alembic is not even imported: the worker's processes and the test
suite open ledgers all the time. Anything else is migrated under a lock, so that the pool processes of a
worker, which open the same ledger at once, migrate it once and the others find it done: on SQLite the
database's one write lock (the ledger's transactions begin ``IMMEDIATE``; in WAL mode, which the ledger
always uses, that is the lock ``BEGIN EXCLUSIVE`` takes), on PostgreSQL ``pg_advisory_xact_lock``. Every
revision runs in that one transaction (both databases have transactional DDL): a migration that fails
leaves the ledger as it was.

A ledger written by release 0.1 has the tables ``create_all`` made and no ``alembic_version``. It is
recognised, its tables and columns are checked against :data:`RELEASE_0_1`, its append-only triggers
made as that release made them on every open, and it is stamped at the first revision, then migrated on
like any other.

By hand: ``dispatch ledger upgrade`` and ``dispatch ledger version``. A developer who changes a model
writes its revision with ``python -m dispatcher.migrate revision -m "what changes" --autogenerate``.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine

from dispatcher.errors import LedgerSchemaError

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

#: The newest revision in ``migrations/versions``. A ledger that says it is there is not looked at any
#: further; ``tests/dispatcher/test_migrations.py`` fails while this and the scripts' head disagree.
HEAD = "0012"
#: The revision that made release 0.1's schema; an unversioned 0.1 ledger is stamped here.
FIRST = "0001"
MIGRATIONS = Path(__file__).with_name("migrations")

# Any constant, the same in every release: the key of the PostgreSQL advisory lock taken to migrate.
LOCK_KEY = 0x64697370617463  # "dispatc"

# Alembic's ``op`` and ``context`` are module globals: one migration at a time in a process (threads
# that open ledgers together); the database's lock orders the processes.
_migrating = threading.Lock()

#: What release 0.1 made with ``create_all``: each table and its columns. Never changes: it is what an
#: unversioned ledger must hold to be stamped at :data:`FIRST`.
RELEASE_0_1: dict[str, frozenset[str]] = {
    "items": frozenset(
        {"id", "uid", "kind", "title", "author", "department", "state", "created_at", "updated_at"}
    ),
    "revisions": frozenset({"id", "item_id", "number", "replaces_id", "document", "digest", "created_at"}),
    "approvals": frozenset({"id", "revision_id", "approver", "decision", "reason", "at"}),
    "deliveries": frozenset(
        {
            "id",
            "revision_id",
            "item_id",
            "channel",
            "target",
            "queue",
            "idempotency_key",
            "payload",
            "payload_digest",
            "state",
            "attempts",
            "provider_id",
            "last_error",
            "lease_until",
            "next_attempt_at",
            "enqueued_at",
            "created_at",
            "updated_at",
            "sent_at",
        }
    ),
    "subscribers": frozenset(
        {"id", "phone", "areas", "topics", "consent", "opted_out_at", "source", "created_at", "updated_at"}
    ),
    "sms_recipients": frozenset({"id", "delivery_id", "phone", "state", "report_type", "updated_at"}),
    "sms_batches": frozenset(
        {"delivery_id", "parts", "recipients", "final_reports", "reported_parts", "alerted"}
    ),
    "rate_buckets": frozenset({"key", "tokens", "updated_at"}),
    "circuits": frozenset(
        {"channel", "target", "state", "failures", "open_until", "last_error", "updated_at"}
    ),
    "events": frozenset({"id", "at", "item_id", "delivery_id", "name", "actor", "detail"}),
}


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` did: from which revision (None: no version) to which."""

    before: str | None
    after: str
    #: a ledger of release 0.1, checked and stamped at the first revision
    adopted: bool = False

    def __str__(self) -> str:
        if self.adopted:
            text = f"ledger of release 0.1 (no version) checked and stamped {FIRST}"
            return text + (f", then migrated to {self.after}" if self.after != FIRST else "")
        if self.before == self.after:
            return f"ledger at {self.after}, this release's newest revision: nothing to do"
        if self.before is None:
            return f"new ledger: migrated from nothing to {self.after}"
        return f"ledger migrated from {self.before} to {self.after}"


def upgrade(engine: Engine, *, migrations: Path = MIGRATIONS, head: str = HEAD) -> Upgrade:
    """Bring the ledger behind ``engine`` (made by :func:`dispatcher.ledger.open_engine`) to ``head``.

    ``migrations`` and ``head`` are for tests that bring revisions of their own.
    """
    found = stored_version(engine)
    if found == head:
        return Upgrade(found, found)
    with _migrating:
        return _upgrade_locked(engine, migrations, head)


def stored_version(engine: Engine) -> str | None:
    """The revision the ledger records, in one query; None when it has no ``alembic_version``."""
    # Straight on the driver's connection: on SQLite it is in autocommit mode, so this read takes no
    # write lock (a SQLAlchemy transaction would begin IMMEDIATE) and waits for no writer.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute("SELECT version_num FROM alembic_version")
            row = cursor.fetchone()
        except engine.dialect.loaded_dbapi.Error:  # no such table (yet): the locked path finds out why
            return None
        finally:
            cursor.close()
    finally:
        raw.close()
    return str(row[0]) if row else None


def describe_version(engine: Engine) -> str:
    """One line for ``dispatch ledger version``: the ledger's revision and this release's newest."""
    found = stored_version(engine)
    if found == HEAD:
        return f"{found} (this release's newest revision)"
    if found is not None:
        from alembic.script import ScriptDirectory

        if not _known(ScriptDirectory(str(MIGRATIONS)), found):
            return f"{found}, which this release does not know: a newer release migrated the ledger"
        return f"{found}; this release migrates it to {HEAD} (dispatch ledger upgrade, or any command)"
    if set(inspect(engine).get_table_names()) & RELEASE_0_1.keys():
        return f"none: written by release 0.1, before migrations; opening it checks and stamps it {FIRST}"
    return f"none: an empty ledger; opening it creates the schema ({HEAD})"


def _upgrade_locked(engine: Engine, migrations: Path, head: str) -> Upgrade:
    from alembic import command
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            # A revision that rebuilds a table (SQLite's batch operations copy it and drop the old one)
            # would trip over the rows that refer to it; SQLite's own procedure for schema changes
            # turns foreign keys off outside the transaction and checks them before committing.
            _driver(connection).execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():  # on SQLite, BEGIN IMMEDIATE: the write lock, until commit
                if engine.dialect.name == "postgresql":
                    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
                context = MigrationContext.configure(connection)
                before = context.get_current_revision()  # again: another process may have migrated it
                if before is not None and not _known(script, before):
                    raise LedgerSchemaError(
                        f"the ledger is at revision {before}, which this release does not know (its "
                        f"newest is {head}): a newer release migrated it; run that release"
                    )
                adopted = before is None and _adopt(connection)
                if adopted:
                    # Release 0.1 made its triggers on every open (on PostgreSQL it failed to): as it did.
                    with Operations.context(context):
                        script.get_revision(FIRST).module.create_append_only_triggers()
                    context.stamp(script, FIRST)
                if (FIRST if adopted else before) != head:
                    command.upgrade(_config(connection, migrations), head)
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise LedgerSchemaError(f"the migration left rows whose references broke: {broken}")
        finally:
            if sqlite:
                _driver(connection).execute("PRAGMA foreign_keys=ON")
    return Upgrade(before, head, adopted)


def _known(script: ScriptDirectory, revision: str) -> bool:
    from alembic.util import CommandError

    try:
        script.get_revision(revision)
    except CommandError:
        return False
    return True


def _adopt(connection: Connection) -> bool:
    """True for a ledger of release 0.1 (checked: else :class:`LedgerSchemaError`); False for a new one."""
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    if not tables & RELEASE_0_1.keys():
        return False  # nothing of ours yet (another application's tables may share the database)
    problems = [f"no table {name}" for name in sorted(RELEASE_0_1.keys() - tables)]
    for name, columns in RELEASE_0_1.items():
        if name in tables:
            found = {column["name"] for column in inspector.get_columns(name)}
            problems += [f"no column {name}.{column}" for column in sorted(columns - found)]
            problems += [f"an unknown column {name}.{column}" for column in sorted(found - columns)]
    if problems:
        raise LedgerSchemaError(
            "the ledger has tables but no schema version, and they are not those release 0.1 made ("
            + "; ".join(problems)
            + "): it cannot be migrated; move its data into a new ledger"
        )
    return True


def _driver(connection: Connection) -> Any:
    """The driver's own connection, for what must happen outside a SQLAlchemy transaction."""
    return connection.connection.driver_connection


def _config(connection: Connection, migrations: Path) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["connection"] = connection  # env.py reads no setting: it migrates this
    return config


def revision(message: str, *, autogenerate: bool, migrations: Path = MIGRATIONS) -> Path:
    """Write the revision after :data:`HEAD` into ``migrations/versions`` and return its path.

    With ``autogenerate`` it holds what the models have that a scratch SQLite database migrated to
    :data:`HEAD` lacks; read it before committing it (Alembic cannot see renames, triggers or data).
    """
    from alembic import command

    number = f"{int(HEAD) + 1:04d}"
    with tempfile.TemporaryDirectory() as scratch:
        engine = create_engine(f"sqlite:///{Path(scratch) / 'ledger.sqlite'}")
        upgrade(engine, migrations=migrations)
        with engine.connect() as connection:
            config = _config(connection, migrations)
            if importlib.util.find_spec("ruff") is not None:  # installed with the dev extra
                config.set_section_option("post_write_hooks", "hooks", "ruff")
                config.set_section_option("post_write_hooks", "ruff.type", "module")
                config.set_section_option("post_write_hooks", "ruff.module", "ruff")
                config.set_section_option(
                    "post_write_hooks", "ruff.options", "format REVISION_SCRIPT_FILENAME"
                )
            written = command.revision(config, message=message, autogenerate=autogenerate, rev_id=number)
        engine.dispose()
    assert written is not None and not isinstance(written, list)
    return Path(written.path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m dispatcher.migrate", description="Write a revision of the ledger's schema."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("revision", help="write the next revision into dispatcher/migrations/versions")
    new.add_argument("-m", "--message", required=True, help="what the revision changes")
    new.add_argument("--autogenerate", action="store_true", help="fill it from the models' differences")
    args = parser.parse_args(argv)
    path = revision(args.message, autogenerate=args.autogenerate)
    print(f"wrote {path}")
    print(f"read it, then set HEAD = {path.name[:4]!r} in dispatcher/migrate.py (the tests check it)")


if __name__ == "__main__":
    main()
