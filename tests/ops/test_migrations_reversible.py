"""Every migration can be reversed (issue 9, item 4; docs/runbooks/rollback.md Level 3).

The round trip runs on a throwaway PostgreSQL database created for the test, so the
session's test database, which other tests share, is never migrated down. With rows in
every app's tables, each app (dependents first) is taken down one migration at a time,
each step reversed and re-applied once (a Level 3 rollback and the next deploy), then to
zero; finally everything is migrated back to the latest and the schema must be exactly
the one it started from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from graphlib import TopologicalSorter
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython, RunSQL
from psycopg import sql

from tests.e2e.stack import database_url
from tests.ops.migration_shell import MARKER

REPO = Path(__file__).resolve().parents[2]
APPS = ("dpp", "billing", "runs", "reaper")
SEED_PLANS = {"free", "pilot"}  # billing 0002_seed_plans

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="round trip needs PostgreSQL"),
]


def _loader() -> MigrationLoader:
    return MigrationLoader(None, ignore_no_migrations=True)


def migrations_of(app: str) -> list[str]:
    """The app's migrations, oldest first (one line of history: a fork fails here)."""
    loader = _loader()
    leaves = loader.graph.leaf_nodes(app)
    assert len(leaves) == 1, f"{app} has several leaf migrations: {leaves}"
    return [name for label, name in loader.graph.forwards_plan(leaves[0]) if label == app]


def teardown_order() -> list[str]:
    """Apps that depend on others first, so that each ``migrate <app> zero`` unapplies
    only that app's migrations."""
    depends_on: dict[str, set[str]] = {app: set() for app in APPS}
    for (app, _), migration in _loader().disk_migrations.items():
        if app in APPS:
            depends_on[app] |= {dep for dep, _ in migration.dependencies if dep in APPS} - {app}
    return list(reversed(list(TopologicalSorter(depends_on).static_order())))


class Database:
    """The throwaway database, inspected with plain SQL between migration steps."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    def rows(self, query: sql.Composable | str, *params) -> list[tuple]:
        with closing(psycopg.connect(self.conninfo, autocommit=True)) as conn:
            return conn.execute(query, params).fetchall()

    def tables(self) -> set[str]:
        found = self.rows("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {name for (name,) in found if name.split("_", 1)[0] in APPS}

    def applied(self) -> dict[str, list[str]]:
        found = self.rows("SELECT app, name FROM django_migrations ORDER BY id")
        return {app: [name for label, name in found if label == app] for app in APPS}

    def counts(self) -> dict[str, int]:
        return {
            table: self.rows(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))[0][0]
            for table in sorted(self.tables())
        }

    def plans(self) -> set[str]:
        return {name for (name,) in self.rows("SELECT name FROM billing_plan")}

    def schema(self) -> dict[str, list[tuple]]:
        """Columns, constraints and indexes of the apps' tables."""
        ours = sorted(self.tables())
        return {
            "columns": self.rows(
                "SELECT table_name, column_name, data_type, is_nullable, column_default,"
                " character_maximum_length FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = ANY(%s)"
                " ORDER BY table_name, column_name",
                ours,
            ),
            "constraints": self.rows(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)"
                " FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s)"
                " ORDER BY 1, 2",
                ours,
            ),
            "indexes": self.rows(
                "SELECT tablename, indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = 'public' AND tablename = ANY(%s) ORDER BY 1, 2",
                ours,
            ),
        }


class MigrationShell:
    """``manage.py`` commands in one long-lived process (tests/ops/migration_shell.py)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.output: list[str] = []

    def __call__(self, *command: str) -> dict:
        assert self.process.stdin
        assert self.process.stdout
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(MARKER):
                reply = json.loads(line.removeprefix(MARKER))
                assert reply["ok"], f"{' '.join(command)} failed:\n{reply['error']}"
                return reply
            self.output.append(line)
        raise AssertionError(f"the migration shell exited:\n{''.join(self.output[-40:])}")


@pytest.fixture
def throwaway_database() -> Iterator[Database]:
    settings_dict = connection.settings_dict
    name = f"{settings_dict['NAME']}_migrations"
    admin_url = database_url({**settings_dict, "NAME": "postgres"})
    with closing(psycopg.connect(admin_url, autocommit=True)) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield Database(database_url({**settings_dict, "NAME": name}))
    finally:
        with closing(psycopg.connect(admin_url, autocommit=True)) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def migrate(throwaway_database: Database, tmp_path: Path) -> Iterator[MigrationShell]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": throwaway_database.conninfo,
        "DPP_VAR_DIR": str(tmp_path / "var"),
        "DPP_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "ops" / "migration_shell.py")],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield MigrationShell(process)
    finally:
        if process.stdin:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_every_migration_declares_a_reverse() -> None:
    irreversible = []
    for (app, name), migration in sorted(_loader().disk_migrations.items()):
        if app not in APPS:
            continue
        for operation in migration.operations:
            missing_reverse = (
                isinstance(operation, RunPython) and operation.reverse_code is None
            ) or (isinstance(operation, RunSQL) and operation.reverse_sql is None)
            if missing_reverse or not operation.reversible:
                irreversible.append(f"{app}.{name}: {operation.describe()}")
    assert irreversible == []


def test_models_and_migrations_agree() -> None:
    # A model change without its migration would be a schema no rollback plan knows.
    call_command("makemigrations", "--check", "--dry-run", *APPS, verbosity=0)


def test_teardown_order_puts_dependents_first() -> None:
    order = teardown_order()
    assert sorted(order) == sorted(APPS)
    assert order.index("reaper") < order.index("runs") < order.index("dpp")
    assert order.index("billing") < order.index("runs")


def test_every_app_migrates_to_zero_and_back_with_data_present(
    throwaway_database: Database, migrate: MigrationShell
) -> None:
    db = throwaway_database
    migrate("migrate")
    latest = {app: migrations_of(app) for app in APPS}
    assert db.applied() == latest
    assert db.plans() == SEED_PLANS
    migrate("seed")
    schema = db.schema()
    seeded = db.counts()
    for table in ("dpp_tenant", "billing_account", "billing_transfer", "runs_run"):
        assert seeded[table] > 0, table

    for app in teardown_order():
        names = latest[app]
        for index in range(len(names) - 1, -1, -1):
            previous = names[index - 1] if index else "zero"
            before_applied, before_counts = db.applied(), db.counts()

            migrate("migrate", app, previous)
            down_applied, down_counts = db.applied(), db.counts()
            # Exactly this migration was reversed: no other app was touched, and no row
            # of a table that survives the step was lost.
            assert down_applied == {**before_applied, app: names[:index]}
            for table, count in down_counts.items():
                if (app, names[index], table) == ("billing", "0002_seed_plans", "billing_plan"):
                    continue
                assert count == before_counts[table], f"{app} -> {previous}: {table}"

            migrate("migrate", app, names[index])
            assert db.applied() == before_applied
            assert db.tables() == set(before_counts)
            if (app, names[index]) == ("billing", "0002_seed_plans"):
                assert db.plans() == SEED_PLANS
            migrate("migrate", app, previous)

            if (app, names[index]) == ("billing", "0002_seed_plans"):
                # The reverse keeps the plans that accounts point at (the round-trip
                # tenant is on "pilot") and removes the others.
                assert db.plans() == {"pilot"}

        assert not {table for table in db.tables() if table.startswith(f"{app}_")}

    assert db.tables() == set()
    assert db.applied() == {app: [] for app in APPS}

    migrate("migrate")
    assert db.applied() == latest
    assert db.plans() == SEED_PLANS
    assert db.schema() == schema
