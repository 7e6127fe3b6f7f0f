"""Preflight: the machine-checkable pilot entry criteria, against the running configuration.

``manage.py dpp_preflight`` runs every check in ``CHECKS`` and prints a table; each check
returns PASS or FAIL with a detail an operator can act on. What needs a person (team
readiness, the IAM least-privilege review, network rules) is in docs/PILOT_READY.md.

The checks span the platform (settings, the readiness checks of every app, migrations of
every app, the ledger audit), so they live in ``reaper``, the layer that may import all.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks as django_checks
from django.core.files.storage import storages
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from storages.backends.s3 import S3Storage

from dpp.health import CHECKS as READINESS_CHECKS
from dpp.kill_switch import switch_state
from reaper.audit import run_audit

PASS, FAIL = "PASS", "FAIL"
MIN_SECRET_LENGTH = 32
DEFAULT_ALERT_RULES = Path(settings.BASE_DIR) / "docker" / "prometheus" / "alerts.yml"
# The pilot document's alerts ("Monitoring & Alerts", mapped in docs/PILOT_READY.md).
REQUIRED_ALERTS = (
    "MoneyLeak",
    "ApiDown",
    "DatabaseNotReady",
    "HighQueueDepth",
    "ElevatedErrorRate",
    "WorkerHeartbeatMissing",
)
# Passwords an installer, a tutorial or a tired person would pick; a superuser with one
# of them (or with its own username) is an open door to the admin and its kill switch.
DEFAULT_PASSWORDS = (
    "admin",
    "password",
    "changeme",
    "root",
    "123456",
    "12345678",
    "admin123",
    "password123",
    "secret",
    "dpp",
)
_DETAIL_LIMIT = 300


@dataclass(frozen=True)
class Outcome:
    check: str
    status: str
    detail: str

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Options:
    alert_rules: Path | None = None  # None: read the rules from stdin ("-")


Check = Callable[[Options], list[Outcome]]


def _one(name: str, ok: bool, detail: str) -> list[Outcome]:
    return [Outcome(name, PASS if ok else FAIL, detail)]


# --- Configuration ----------------------------------------------------------------------


def check_environment(options: Options) -> list[Outcome]:
    return _one(
        "DJANGO_ENV=production",
        settings.DJANGO_ENV == "production",
        f"DJANGO_ENV={settings.DJANGO_ENV}",
    )


def check_debug(options: Options) -> list[Outcome]:
    return _one("DEBUG off", not settings.DEBUG, f"DEBUG={settings.DEBUG}")


def check_secrets(options: Options) -> list[Outcome]:
    outcomes = []
    for name, value, development in (
        ("DJANGO_SECRET_KEY", settings.SECRET_KEY, settings.DEV_SECRET_KEY),
        ("DPP_API_KEY_PEPPER", settings.DPP_API_KEY_PEPPER, settings.DEV_API_KEY_PEPPER),
    ):
        # The detail never shows the value, not even a part of it.
        if value == development:
            outcomes += _one(f"secret {name}", False, "the development value (not set)")
        elif len(value) < MIN_SECRET_LENGTH:
            outcomes += _one(
                f"secret {name}", False, f"{len(value)} characters, need {MIN_SECRET_LENGTH}+"
            )
        else:
            outcomes += _one(f"secret {name}", True, f"set, {len(value)} characters")
    return outcomes


def check_allowed_hosts(options: Options) -> list[Outcome]:
    hosts = list(settings.ALLOWED_HOSTS)
    ok = bool(hosts) and "*" not in hosts
    return _one("DJANGO_ALLOWED_HOSTS", ok, ", ".join(hosts) or "empty")


def check_backends(options: Options) -> list[Outcome]:
    database = settings.DATABASES["default"]
    cache = settings.CACHES["default"]["BACKEND"]
    broker = settings.CELERY_BROKER_URL
    queues = {
        "DPP_SQS_RUNS_QUEUE_URL": settings.DPP_SQS_RUNS_QUEUE_URL,
        "DPP_SQS_REAPER_QUEUE_URL": settings.DPP_SQS_REAPER_QUEUE_URL,
    }
    missing_queues = [name for name, url in queues.items() if not url]
    results = storages["results"]
    return [
        *_one(
            "backend database is PostgreSQL",
            connection.vendor == "postgresql",
            f"{connection.vendor} {database.get('HOST') or ''} {database.get('NAME')}".strip(),
        ),
        *_one(
            "backend cache is Redis",
            cache.endswith("RedisCache"),
            cache,
        ),
        *_one(
            "backend broker is SQS",
            broker.startswith("sqs://") and not missing_queues,
            f"{broker.split('://', 1)[0]}://"
            + (f"; missing {', '.join(missing_queues)}" if missing_queues else "; queue URLs set"),
        ),
        *_one(
            "backend storage is S3",
            isinstance(results, S3Storage),
            f"bucket {results.bucket_name}"
            if isinstance(results, S3Storage)
            else type(results).__name__,
        ),
    ]


def check_django_deploy(options: Options) -> list[Outcome]:
    """``manage.py check --deploy --fail-level WARNING``."""
    found = [
        message
        for message in django_checks.run_checks(include_deployment_checks=True)
        if message.level >= django_checks.WARNING and not message.is_silenced()
    ]
    return _one(
        "django check --deploy",
        not found,
        ", ".join(sorted({m.id or "?" for m in found})) or "no warnings",
    )


def check_alert_rules(options: Options) -> list[Outcome]:
    name = "alert rules"
    if options.alert_rules is None:
        text, where = sys.stdin.read(), "stdin"
    else:
        if not options.alert_rules.is_file():
            return _one(name, False, f"{options.alert_rules} not found (--alert-rules PATH)")
        text, where = options.alert_rules.read_text(), str(options.alert_rules)
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        return _one(name, False, f"{where}: not YAML ({type(exc).__name__})")
    groups = document.get("groups") if isinstance(document, dict) else None
    alerts = {
        rule.get("alert")
        for group in groups or []
        for rule in (group.get("rules") or [])
        if isinstance(rule, dict)
    }
    missing = [alert for alert in REQUIRED_ALERTS if alert not in alerts]
    if missing:
        return _one(name, False, f"{where}: missing {', '.join(missing)}")
    return _one(name, True, f"{where}: {len(alerts - {None})} alerts")


# --- Reachability (the readiness checks every app registered) --------------------------


def check_reachable(options: Options) -> list[Outcome]:
    outcomes = []
    for check_name, probe in READINESS_CHECKS.items():
        started = time.perf_counter()
        try:
            probe()
        except Exception as exc:
            outcomes += _one(f"reachable {check_name}", False, _error(exc))
        else:
            elapsed = (time.perf_counter() - started) * 1000
            outcomes += _one(f"reachable {check_name}", True, f"{elapsed:.0f} ms")
    return outcomes


# --- The database's content -------------------------------------------------------------


def check_migrations(options: Options) -> list[Outcome]:
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        names = [f"{m.app_label}.{m.name}" for m, _ in plan]
        shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
        return _one(
            "migrations applied", False, f"{len(names)} unapplied (manage.py migrate): {shown}"
        )
    applied = len(executor.loader.applied_migrations)
    return _one("migrations applied", True, f"all {applied} applied")


def check_superusers(options: Options) -> list[Outcome]:
    users = list(get_user_model().objects.filter(is_superuser=True, is_active=True))
    weak = [
        user.get_username()
        for user in users
        if user.has_usable_password()
        and any(
            user.check_password(candidate)
            for candidate in (*DEFAULT_PASSWORDS, user.get_username())
        )
    ]
    if weak:
        return _one(
            "superuser passwords",
            False,
            f"default password: {', '.join(sorted(weak))} (manage.py changepassword)",
        )
    return _one("superuser passwords", True, f"{len(users)} superuser(s), none with a default")


def check_ledger(options: Options) -> list[Outcome]:
    report = run_audit()
    if not report.clean:
        return _one(
            "ledger audit",
            False,
            f"{len(report.violations)} violation(s) (manage.py dpp_audit)",
        )
    counts = report.counts
    return _one(
        "ledger audit", True, f"clean: {counts['accounts']} accounts, {counts['runs']} runs"
    )


def check_kill_switch(options: Options) -> list[Outcome]:
    # Reported, not judged: an operator may preflight with submissions paused on purpose.
    return _one("kill switch", True, switch_state().describe())


# (the row's name if the check itself raises, the check), in the order of the table.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("DJANGO_ENV=production", check_environment),
    ("DEBUG off", check_debug),
    ("secrets", check_secrets),
    ("DJANGO_ALLOWED_HOSTS", check_allowed_hosts),
    ("backends", check_backends),
    ("django check --deploy", check_django_deploy),
    ("alert rules", check_alert_rules),
    ("reachable", check_reachable),
    ("migrations applied", check_migrations),
    ("superuser passwords", check_superusers),
    ("ledger audit", check_ledger),
    ("kill switch", check_kill_switch),
)


def run_preflight(options: Options) -> list[Outcome]:
    """Every check; one that raises is a FAIL with the error, never a crash."""
    outcomes: list[Outcome] = []
    with _quiet_logs():
        for name, check in CHECKS:
            try:
                outcomes += check(options)
            except Exception as exc:
                outcomes += _one(name, False, _error(exc))
    return outcomes


def _error(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1] + "…"


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """The table is the report: the probes' own log lines (JSON on stdout) would only
    interleave with it and break ``--json``."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(previous)
