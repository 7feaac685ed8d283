"""The ledger's migrations: a ledger of release 0.1 read with nothing lost, migrations that agree with the
models, ledgers opened by several processes at once, and ``dispatch ledger``."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from click.testing import CliRunner
from sqlalchemy import MetaData, func, inspect, select

from dispatcher.cli import cli
from dispatcher.errors import LedgerSchemaError
from dispatcher.ledger import Base, EventRow, Ledger, SubscriberRow, open_engine, verify_chain
from dispatcher.migrate import FIRST, HEAD, MIGRATIONS, RELEASE_0_1, stored_version, upgrade
from dispatcher.reports import item_status
from settings import Settings
from tests.e2e.conftest import free_port

FIXTURE = Path(__file__).parent.parent / "fixtures" / "ledger-0.1.sql"


def release_0_1(path: Path) -> str:
    """A SQLite ledger as release 0.1 wrote it (``tests/fixtures/make_ledger_0_1.py``); its URL."""
    connection = sqlite3.connect(path)
    connection.executescript(FIXTURE.read_text(encoding="utf-8"))
    connection.close()
    return f"sqlite:///{path}"


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of release 0.1, as the database holds them."""
    connection = sqlite3.connect(path)
    try:
        return {
            table: connection.execute(f'SELECT * FROM "{table}" ORDER BY 1, 2').fetchall()
            for table in sorted(RELEASE_0_1)
        }
    finally:
        connection.close()


#: Columns later revisions added at the end of release 0.1's tables, by table
ADDED = {"deliveries": 2, "items": 3, "events": 2}


def as_released(found: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """Rows as release 0.1 had them: the columns added since left out."""
    return {
        table: [row[: len(row) - ADDED[table]] for row in table_rows] if table in ADDED else table_rows
        for table, table_rows in found.items()
    }


def schema(path: Path) -> dict[str, str]:
    """Tables, indexes and triggers as SQLite keeps them, quotes and spacing aside."""
    connection = sqlite3.connect(path)
    try:
        return {
            name: " ".join(sql.replace('"', "").split())
            for name, sql in connection.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL")
        }
    finally:
        connection.close()


def differences(engine: sa.Engine, metadata: MetaData) -> list[Any]:
    """What ``metadata`` has that the database lacks, or the other way round, as Alembic sees it."""
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), metadata)


def test_a_ledger_of_release_0_1_is_stamped_and_read_with_nothing_lost(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    url = release_0_1(path)
    before = rows(path)
    assert {table: len(found) for table, found in before.items()} == {
        "approvals": 4,
        "circuits": 3,
        "deliveries": 7,
        "events": 37,
        "items": 5,
        "rate_buckets": 2,
        "revisions": 6,
        "sms_batches": 1,
        "sms_recipients": 3,
        "subscribers": 4,
    }

    ledger = Ledger(url)
    assert stored_version(ledger.engine) == HEAD
    assert as_released(rows(path)) == before
    migrated = rows(path)
    # Revision 0004: every delivery so far published; an item's live revision is its latest approved one
    assert {row[-2:] for row in migrated["deliveries"]} == {("publish", None)}
    approved = {r[0] for r in before["approvals"] if r[3] == "approved"}
    latest = {
        item: max((r[0] for r in before["revisions"] if r[1] == item and r[0] in approved), default=None)
        for item in {r[0] for r in before["items"]}
    }
    assert {row[0]: row[-3] for row in migrated["items"]} == latest
    assert latest[1] is not None and latest[5] is None  # an approved warning; a draft
    # Revision 0007: when the live revision expires, read from it (in UTC); an item expired before the
    # upgrade counts as ended then (found in review: otherwise the sweeper would end every old item anew)
    assert {row[0] for row in migrated["items"] if row[-2] is not None} == {i for i, r in latest.items() if r}
    for row in migrated["items"]:
        expired = row[-2] is not None and datetime.fromisoformat(row[-2]).replace(tzinfo=UTC) <= datetime.now(
            UTC
        )
        assert (row[-1] is not None) == expired and (not expired or row[-1] == row[-2])
    fresh = tmp_path / "fresh.sqlite"
    Ledger(f"sqlite:///{fresh}").dispose()
    assert schema(path) == schema(fresh)  # stamped, not rebuilt: and the same as a new ledger's

    # Revision 0010: the events already there were chained in their order
    with ledger.session() as session:
        assert verify_chain(session)[:2] == (len(before["events"]), None)
    warning = item_status(ledger, 1)
    assert warning["state"] == "approved" and warning["approver"] == "陈刚"
    assert [(d["channel"], d["state"]) for d in warning["deliveries"]] == [
        ("website", "sent"),
        ("sms", "sent"),
        ("display", "sent"),
        ("display", "retrying"),
        ("microblog", "dead"),
    ]
    assert warning["deliveries"][1]["recipients"] == {"delivered": 1, "failed": 1, "pending": 1}
    assert item_status(ledger, 2)["deliveries"][0]["state"] == "unknown"
    with ledger.session() as session:
        opted_out = session.scalars(
            select(SubscriberRow).where(SubscriberRow.opted_out_at.is_not(None))
        ).one()
        assert opted_out.phone == "+8613800138003" and opted_out.opted_out_at.tzinfo is not None
        last = session.scalars(select(EventRow).order_by(EventRow.id.desc())).first()
        assert last is not None and last.name == "subscriber.opted_out"
        assert session.get(EventRow, 24).detail["error"].startswith("weibo: HTTP 500")

    raw = sqlite3.connect(path)
    for statement in ("UPDATE events SET name = 'rewritten'", "DELETE FROM events", "DELETE FROM approvals"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute(statement)
    raw.close()

    ledger.dispose()
    Ledger(url).dispose()  # and again: nothing more to do
    assert rows(path) == migrated


def test_the_ledger_goes_on_after_the_migration(tmp_path: Path) -> None:
    """New rows follow the old ones, and the ORM's own guard still stands."""
    ledger = Ledger(release_0_1(tmp_path / "ledger.sqlite"))
    with ledger.session() as session:
        session.add(EventRow(name="test.after", actor="tester", detail={}))
    with ledger.session() as session:
        assert session.scalars(select(func.max(EventRow.id))).one() == 38
    with pytest.raises(RuntimeError, match="append-only"):
        with ledger.session() as session:
            session.delete(session.get(EventRow, 1))
    ledger.dispose()


def test_an_unversioned_ledger_unlike_release_0_1_is_refused_and_left_alone(tmp_path: Path) -> None:
    """A ledger from before release 0.1's last column (``reported_parts``) cannot be stamped as 0.1."""
    path = tmp_path / "ledger.sqlite"
    url = release_0_1(path)
    raw = sqlite3.connect(path)
    raw.execute("ALTER TABLE sms_batches DROP COLUMN reported_parts")
    raw.execute("ALTER TABLE circuits ADD COLUMN note TEXT")
    raw.commit()
    raw.close()
    before = schema(path)
    with pytest.raises(LedgerSchemaError, match="no column sms_batches.reported_parts") as refused:
        Ledger(url)
    assert "an unknown column circuits.note" in str(refused.value)
    assert schema(path) == before  # not stamped, nothing made


def test_a_ledger_a_newer_release_migrated_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    Ledger(url).dispose()
    raw = sqlite3.connect(tmp_path / "ledger.sqlite")
    raw.execute("UPDATE alembic_version SET version_num = '0999'")
    raw.commit()
    raw.close()
    with pytest.raises(LedgerSchemaError, match="revision 0999, which this release does not know"):
        Ledger(url)


def test_head_is_the_newest_script_and_release_0_1_what_the_first_one_makes(tmp_path: Path) -> None:
    """HEAD lets an up-to-date ledger open with one query: it must name the scripts' head."""
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert scripts.get_current_head() == HEAD
    assert list(scripts.get_bases()) == [FIRST]
    engine = open_engine(f"sqlite:///{tmp_path / 'first.sqlite'}")
    upgrade(engine, head=FIRST)
    found = inspect(engine)
    tables = set(found.get_table_names()) - {"alembic_version"}
    assert {name: {c["name"] for c in found.get_columns(name)} for name in tables} == RELEASE_0_1
    engine.dispose()


def test_the_migrations_make_what_the_models_describe(tmp_path: Path) -> None:
    """A column added to a model without a revision fails here (write one with dispatcher.migrate)."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    assert differences(ledger.engine, Base.metadata) == []
    ledger.dispose()


def test_the_comparison_sees_what_the_migrations_lack(tmp_path: Path) -> None:
    """The check above can fail: a model with a column no revision made is reported."""
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    models = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(models)
    models.tables["items"].append_column(sa.Column("summary", sa.Text(), nullable=True))
    models.tables["deliveries"].append_column(sa.Column("region", sa.String(20), nullable=True))
    found = differences(ledger.engine, models)
    assert sorted((d[0], d[2], d[3].name) for d in found) == [
        ("add_column", "deliveries", "region"),
        ("add_column", "items", "summary"),
    ]
    ledger.dispose()


#: The number of a revision after this release's newest.
LATER = f"{int(HEAD) + 1:04d}"

LATER_REVISION = f'''"""A later revision that rebuilds a table others refer to (SQLite's batch operations)."""

import sqlalchemy as sa
from alembic import op

revision = "{LATER}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", recreate="always") as batch:
        batch.add_column(sa.Column("summary", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("items", recreate="always") as batch:
        batch.drop_column("summary")
'''


def test_a_later_revision_reaches_a_ledger_of_release_0_1(tmp_path: Path) -> None:
    """What the migrations are for: a column added later reaches a ledger written before, rows and
    references intact, even when SQLite must copy a table that others refer to."""
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / f"{LATER}_summary.py").write_text(LATER_REVISION, encoding="utf-8")
    path = tmp_path / "ledger.sqlite"
    url = release_0_1(path)
    before = rows(path)
    engine = open_engine(url)
    done = upgrade(engine, migrations=migrations, head=LATER)
    assert (done.before, done.after, done.adopted) == (None, LATER, True)
    assert (
        str(done)
        == f"ledger of release 0.1 (no version) checked and stamped {FIRST}, then migrated to {LATER}"
    )
    assert stored_version(engine) == LATER
    after = rows(path)
    assert [row[-1] for row in after["items"]] == [None] * len(before["items"])  # the later column
    after["items"] = [row[:-1] for row in after["items"]]
    assert as_released(after) == before
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
        references = connection.exec_driver_sql("PRAGMA foreign_key_list(deliveries)").fetchall()
        # still the tables, not a copy (and the delivery a later one acts on: revision 0004)
        assert {r[2] for r in references} == {"items", "revisions", "deliveries"}
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on for the pool
    engine.dispose()


OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
from dispatcher.ledger import Ledger

url, ready, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
ready.touch()
while not go.exists():
    time.sleep(0.001)
Ledger(url).dispose()
"""


def open_at_once(url: str, tmp_path: Path, processes: int = 4) -> None:
    """Processes that open ``url`` at the same moment, as a worker's pool does; each must succeed."""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(processes)]
    started = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_WHEN_TOLD, url, str(flag), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 60
    while not all(flag.exists() for flag in ready) and time.monotonic() < deadline:
        time.sleep(0.01)  # each has imported the dispatcher and waits
    go.touch()
    for process in started:
        _out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err.decode()


@pytest.mark.parametrize("written_by", ["nothing", "release 0.1"])
def test_processes_that_open_a_ledger_at_once_migrate_it_once(tmp_path: Path, written_by: str) -> None:
    path = tmp_path / "ledger.sqlite"
    url = release_0_1(path) if written_by == "release 0.1" else f"sqlite:///{path}"
    open_at_once(url, tmp_path)
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    raw.close()
    if written_by == "release 0.1":
        assert len(rows(path)["events"]) == 37


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_dispatch_ledger_version_and_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_LEDGER_URL", f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert run("ledger", "version") == f"none: an empty ledger; opening it creates the schema ({HEAD})"
    assert run("ledger", "upgrade") == f"new ledger: migrated from nothing to {HEAD}"
    assert run("ledger", "upgrade") == f"ledger at {HEAD}, this release's newest revision: nothing to do"
    assert run("ledger", "version") == f"{HEAD} (this release's newest revision)"

    monkeypatch.setenv("DISPATCH_LEDGER_URL", release_0_1(tmp_path / "old.sqlite"))
    assert run("ledger", "version").startswith("none: written by release 0.1, before migrations")
    assert (
        run("ledger", "upgrade")
        == f"ledger of release 0.1 (no version) checked and stamped {FIRST}, then migrated to {HEAD}"
    )
    assert run("ledger", "version") == f"{HEAD} (this release's newest revision)"


# PostgreSQL: the advisory lock and the triggers' own SQL. Runs where Debian's postgresql is installed.


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a free port; the URL of its maintenance database."""
    psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL tests need psycopg")
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        pytest.skip("PostgreSQL is not installed (Debian's postgresql)")
    bin_dir = found[-1].parent
    # PostgreSQL refuses to run as root: as root, run it as the postgres user Debian's package makes.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
    if as_user:
        shutil.chown(home, "postgres")
    port = free_port()
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(home / "data"), "-A", "trust", "-U", "dispatch"],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [*as_user, str(bin_dir / "postgres"), "-D", str(home / "data"), "-p", str(port), "-k", str(home)]
        + ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"postgresql+psycopg://dispatch@127.0.0.1:{port}/postgres"
    deadline = time.monotonic() + 20
    while True:
        try:
            psycopg.connect(f"host=127.0.0.1 port={port} user=dispatch dbname=postgres").close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                server.kill()
                pytest.fail("PostgreSQL did not accept connections within 20 s")
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=20)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres: str, request: pytest.FixtureRequest) -> str:
    """A new, empty database of its own on the shared server."""
    name = "ledger_" + request.node.name.split("[")[0].removeprefix("test_")[:40]
    engine = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return postgres.rsplit("/", 1)[0] + "/" + name


def test_postgresql_ledger_is_migrated_and_append_only(postgres_url: str) -> None:
    ledger = Ledger(postgres_url)
    assert stored_version(ledger.engine) == HEAD
    assert differences(ledger.engine, Base.metadata) == []
    with ledger.session() as session:
        session.add(EventRow(name="test.event", actor="tester", detail={}))
    for statement in ("UPDATE events SET name = 'rewritten'", "DELETE FROM events"):
        with pytest.raises(sa.exc.DBAPIError, match="events is append-only"):
            with ledger.engine.begin() as connection:
                connection.exec_driver_sql(statement)
    ledger.dispose()


def test_postgresql_ledger_of_release_0_1_gets_its_triggers_and_is_stamped(postgres_url: str) -> None:
    """Release 0.1 made the tables on PostgreSQL, then failed on its trigger SQL: no triggers, no version."""
    engine = open_engine(postgres_url)
    upgrade(engine, head=FIRST)
    with engine.begin() as connection:
        for table in ("events", "approvals"):
            connection.exec_driver_sql(f"DROP TRIGGER {table}_append_only ON {table}")
        connection.exec_driver_sql("DROP FUNCTION dispatch_append_only()")
        connection.exec_driver_sql("DROP TABLE alembic_version")
        connection.exec_driver_sql(
            "INSERT INTO circuits VALUES ('sms', 'batch-001', 'closed', 0, NULL, NULL, now())"
        )
    engine.dispose()
    ledger = Ledger(postgres_url)
    assert stored_version(ledger.engine) == HEAD
    with ledger.engine.begin() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM circuits").scalar() == 1
        connection.exec_driver_sql(
            "INSERT INTO items (uid, kind, title, author, department, state, created_at, updated_at) "
            "VALUES ('u', 'warning', 't', 'a', 'd', 'draft', now(), now())"
        )
        connection.exec_driver_sql(
            "INSERT INTO revisions (item_id, number, document, digest, created_at) "
            "SELECT id, 1, '{}', 'x', now() FROM items"
        )
        connection.exec_driver_sql(
            "INSERT INTO approvals (revision_id, approver, decision, at) "
            "SELECT id, 'b', 'approved', now() FROM revisions"
        )
    for statement in ("UPDATE approvals SET approver = 'c'", "DELETE FROM approvals"):
        with pytest.raises(sa.exc.DBAPIError, match="approvals is append-only"):
            with ledger.engine.begin() as connection:
                connection.exec_driver_sql(statement)
    ledger.dispose()


def test_postgresql_processes_that_open_a_new_ledger_at_once_migrate_it_once(
    postgres_url: str, tmp_path: Path
) -> None:
    open_at_once(postgres_url, tmp_path)
    engine = sa.create_engine(postgres_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
    engine.dispose()


def test_postgresql_counts_routine_texts_against_the_daily_cap(
    postgres_url: str, settings: Settings, tmp_path: Path
) -> None:
    """The cap's counting is SQL of its own (an upsert, an advisory lock): run on PostgreSQL too."""
    from dispatcher import approval
    from dispatcher.items import parse_item
    from dispatcher.ledger import SmsCapRow, SmsQuotaRow
    from dispatcher.subscribers import import_csv
    from tests.conftest import SUBSCRIBERS
    from tests.support import item_doc

    capped = settings.model_copy(
        update={
            "quiet_hours": {},
            "sms": settings.sms.model_copy(update={"daily_cap": 1, "over_cap": "skip"}),
        }
    )
    ledger = Ledger(postgres_url)
    (tmp_path / "subscribers.csv").write_text(SUBSCRIBERS, encoding="utf-8")
    import_csv(ledger, tmp_path / "subscribers.csv", capped.sms)
    tip = {"kind": "safety_tip", "severity": None, "urgency": None, "certainty": None, "channels": ["sms"]}
    for title in ("第一条提示", "第二条提示"):
        item_id = approval.submit(ledger, parse_item(item_doc(title=title, topics=["safety"], **tip)))
        approval.approve(ledger, capped, item_id, "陈刚")
    with ledger.session() as session:
        assert [(q.phone, q.count) for q in session.query(SmsQuotaRow)] == [("+8613800138000", 1)]
        assert [(c.item_id, c.outcome) for c in session.query(SmsCapRow)] == [(item_id, "skipped")]
    ledger.dispose()
