"""The chaos cluster: DPP's real processes on real services, and the books a scenario must
balance afterwards.

One cluster per test module: the API (gunicorn), one reaper (``celery worker -Q reaper
-B``: beat and its worker in one process group) and the proxies that let a test take
object storage or the API's broker off the network. Workers belong to a scenario: it
starts them with the fault it needs and kills them as it sees fit.

Short timings make every repair happen in seconds: a 5 s lease, 1 s lease and requeue
scans, requeue after 6 s. The same values reach every process.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings

from billing import services as billing
from billing.models import Account, Plan, Transfer
from reaper.audit import audit
from runs.models import Run, RunEvent
from tests.chaos.faults import DIR_ENV, EXECUTIONS_FILE, FAULT_ENV, RELEASE_FILE
from tests.chaos.proxy import TcpProxy
from tests.e2e.stack import REPO_ROOT, HttpApi, start_api
from tests.execution.packs import TEST_PACKS
from tests.external import HOST, ManagedProcess, S3Server, SqsServer, venv_binary
from tests.factories import TenantFactory, issue_token, seeded_plan

USD = 1_000_000
LEASE_TTL_SEC = 5
RESERVED_MICROS = 50_000  # each run's reservation; its minimum fee is 5_000
MAX_COST_USD = "0.050000"
CHAOS_PACKS = {**TEST_PACKS, "chaos": "tests.chaos.faults.ChaosPack"}
TIMINGS = {
    "DPP_LEASE_TTL_SEC": str(LEASE_TTL_SEC),
    "DPP_MAX_ATTEMPTS": "2",
    "DPP_REQUEUE_AFTER_SEC": "6",
    "DPP_MAX_QUEUE_AGE_SEC": "600",
    "DPP_REAPER_BATCH_SIZE": "50",
    "DPP_REAPER_LEASE_SCAN_SEC": "1",
    "DPP_REAPER_REQUEUE_SCAN_SEC": "1",
    "DPP_REAPER_AUDIT_SEC": "2",
    "DPP_REAPER_RETENTION_SEC": "600",
    "DPP_REAPER_GAUGES_SEC": "600",
}
QUEUE_VISIBILITY_SEC = 3 * LEASE_TTL_SEC
START_TIMEOUT_SEC = 60.0


def via(url: str, proxy: TcpProxy) -> str:
    """``url`` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    netloc = f"{parts.username}:{parts.password}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{netloc}{HOST}:{proxy.port}"))


def celery_process(
    name: str,
    *,
    queue: str,
    env: Mapping[str, str],
    log_dir: Path,
    concurrency: int,
    beat: bool,
    app: str = "config",
) -> ManagedProcess:
    """``celery -A <app> worker -Q <queue>`` (prefork), with beat embedded if asked."""
    argv = [
        venv_binary("celery"),
        "-A",
        app,
        "worker",
        "-Q",
        queue,
        "--pool",
        "prefork",
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--hostname",
        f"{name}-{uuid.uuid4().hex[:6]}@%h",
    ]
    if beat:
        argv.append("--beat")
    return ManagedProcess(name, argv, log_dir=log_dir, env=env, cwd=REPO_ROOT)


def consuming(process: ManagedProcess) -> Callable[[], bool]:
    return lambda: process.log_path.exists() and " ready." in process.log_path.read_text()


def start_celery(name: str, **options: Any) -> ManagedProcess:
    """A Celery worker process, once it consumes."""
    process = celery_process(name, **options)
    return process.start(ready=consuming(process), timeout=START_TIMEOUT_SEC)


def json_lines(
    *processes: ManagedProcess, since: Mapping[str, int] | None = None
) -> list[dict[str, Any]]:
    """The JSON log lines of processes (banners and other text skipped); ``since`` maps a
    process name to the log offset to read from."""
    lines = []
    for process in processes:
        with process.log_path.open("rb") as log:
            log.seek((since or {}).get(process.name, 0))
            content = log.read().decode(errors="replace")
        for text in content.splitlines():
            if text.startswith("{"):
                try:
                    lines.append(json.loads(text))
                except ValueError:
                    continue
    return lines


@dataclass
class Cluster:
    """The module's running services, processes and proxies."""

    base: Path
    env: dict[str, str]
    s3: S3Server
    sqs: SqsServer
    queue_urls: dict[str, str]  # Celery queue -> SQS queue URL
    s3_proxy: TcpProxy
    broker_proxy: TcpProxy
    api: ManagedProcess | None = None
    api_url: str = ""
    reapers: list[ManagedProcess] = field(default_factory=list)

    def reaper(self, name: str) -> ManagedProcess:
        """A reaper process: beat plus a 2-process worker on the reaper queue."""
        env = {**self.env, "DPP_VAR_DIR": str(self.base / name)}
        process = start_celery(
            name, queue="reaper", env=env, log_dir=self.base, concurrency=2, beat=True
        )
        self.reapers.append(process)
        return process

    def api_env(self) -> dict[str, str]:
        """The API publishes through the broker proxy, so a test can cut it off."""
        return {
            **self.env,
            "CELERY_BROKER_URL": via(self.env["CELERY_BROKER_URL"], self.broker_proxy),
            "DPP_SQS_RUNS_QUEUE_URL": via(self.queue_urls["runs"], self.broker_proxy),
            "DPP_SQS_REAPER_QUEUE_URL": via(self.queue_urls["reaper"], self.broker_proxy),
        }

    def start_api(self) -> ManagedProcess:
        self.api, self.api_url = start_api("api", env=self.api_env(), log_dir=self.base)
        return self.api


@dataclass(frozen=True)
class Books:
    """One scenario's runs and money, as its report line states them."""

    runs: int
    completed: int
    failed: int
    canceled: int
    refunded: int
    audit_required: int
    credits: int
    charges: int
    pending: int

    @property
    def balance(self) -> int:
        return self.credits - self.charges - self.pending

    def line(self, scenario: str) -> str:
        return (
            f"{scenario}: runs={self.runs} completed={self.completed} failed={self.failed} "
            f"canceled={self.canceled} refunded={self.refunded} "
            f"audit_required={self.audit_required} "
            f"credits={_usd(self.credits)} charges={_usd(self.charges)} "
            f"pending={_usd(self.pending)} balance={_usd(self.balance)}"
        )


def _usd(micros: int) -> str:
    whole, fraction = divmod(micros, USD)
    return f"${whole}.{fraction:06d}"


class Scenario:
    """One fault: its tenants, its runs, its workers, and the checks every scenario ends
    with. Workers it started are stopped when the test ends."""

    def __init__(self, name: str, cluster: Cluster, directory: Path, report: Callable) -> None:
        self.name = name
        self.cluster = cluster
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._report = report
        self.accounts: list[Account] = []
        self.run_ids: list[str] = []
        self.workers: list[ManagedProcess] = []
        self.started = time.monotonic()
        # The module's reaper logs every scenario: this one's lines start here.
        self.reaper_log_start = {p.name: p.log_path.stat().st_size for p in cluster.reapers}

    # --- processes ------------------------------------------------------------------

    def worker(
        self,
        name: str,
        *,
        fault: str = "",
        concurrency: int = 2,
        env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> ManagedProcess:
        """A worker on the runs queue with ``fault`` installed; ``wait=False`` returns as
        soon as it is started (see ``wait_consuming``), so several can start together."""
        variables = {
            **self.cluster.env,
            "DPP_VAR_DIR": str(self.dir / name),
            DIR_ENV: str(self.dir),
            FAULT_ENV: fault,
            **(env or {}),
        }
        process = celery_process(
            f"{self.name}-{name}",
            queue="runs",
            env=variables,
            log_dir=self.cluster.base,
            concurrency=concurrency,
            beat=False,
            app="tests.chaos.worker_app",
        )
        self.workers.append(process)
        process.start(ready=consuming(process) if wait else None, timeout=START_TIMEOUT_SEC)
        return process

    def wait_consuming(self, *processes: ManagedProcess) -> None:
        for process in processes:
            process.wait_until(consuming(process), timeout=START_TIMEOUT_SEC)

    def stop_workers(self) -> None:
        for process in self.workers:
            process.stop(grace=5)

    # --- runs -----------------------------------------------------------------------

    def tenant(self, usd: int = 10) -> HttpApi:
        seeded_plan(settings.DPP_DEFAULT_PLAN)
        plan, _ = Plan.objects.get_or_create(
            name="chaos",
            defaults={
                "submit_per_minute": 100_000,
                "poll_per_minute": 100_000,
                "max_concurrent_runs": 100_000,
                "max_cost_per_run_micros": 5 * USD,
                "allowed_pack_types": ["decision", *CHAOS_PACKS],
                "retention_days": 30,
            },
        )
        account = billing.account_open(tenant=TenantFactory(), plan=plan)
        billing.top_up(account=account, amount_micros=usd * USD, reason="chaos")
        self.accounts.append(account)
        return HttpApi(base_url=self.cluster.api_url, token=issue_token(account.tenant))

    def submit(self, api: HttpApi, count: int, **inputs: Any) -> list[str]:
        """``count`` chaos runs, each with its own price, through the API."""
        ids = []
        for _ in range(count):
            cost = 10_000 + 137 * (len(self.run_ids) + 1)
            run_id = api.submit(
                pack_type="chaos",
                inputs={"cost": cost, **inputs},
                max_cost_usd=MAX_COST_USD,
                timebox_sec=30,
            )
            ids.append(run_id)
            self.run_ids.append(run_id)
        return ids

    def runs(self, ids: Iterable[str] | None = None) -> list[Run]:
        return list(Run.objects.filter(id__in=list(ids or self.run_ids)))

    def executions(self) -> Counter:
        log = self.dir / EXECUTIONS_FILE
        return Counter(log.read_text().split()) if log.exists() else Counter()

    def events(self, run_id: str) -> list[tuple[str, int]]:
        """The run's lease history after its submission: claims, requeues, flags and
        finalizations. Lease renewals and the requeue scan's republishes are left out: how
        many a run gets depends on how long the machine took, not on what happened to it."""
        return list(
            RunEvent.objects.filter(run_id=run_id)
            .exclude(
                kind__in=[
                    RunEvent.Kind.SUBMITTED,
                    RunEvent.Kind.LEASE_EXTENDED,
                    RunEvent.Kind.REPUBLISHED,
                ]
            )
            .values_list("kind", "attempt")
        )

    # --- faults ---------------------------------------------------------------------

    def markers(self, point: str) -> dict[str, dict[str, Any]]:
        return {
            path.name.split(".", 1)[1]: json.loads(path.read_text())
            for path in self.dir.glob(f"{point}.*")
        }

    def wait_for_markers(self, point: str, count: int, timeout: float = 60) -> dict[str, Any]:
        """Until ``count`` worker processes are paused at ``point``."""
        deadline = time.monotonic() + timeout
        while len(found := self.markers(point)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(found)} of {count} workers reached {point}:\n{self.log_tails()}"
                )
            time.sleep(0.1)
        return found

    def clear_markers(self, point: str) -> None:
        for path in self.dir.glob(f"{point}.*"):
            path.unlink()

    def release(self) -> None:
        (self.dir / RELEASE_FILE).touch()

    def wait_until(self, probe: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not probe():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached in {timeout:.0f} s:\n{self.log_tails()}")
            time.sleep(0.2)

    def reaper_lines(self) -> list[dict[str, Any]]:
        """The reapers' JSON log lines written during this scenario."""
        return json_lines(*self.cluster.reapers, since=self.reaper_log_start)

    def log_tails(self, lines: int = 15) -> str:
        processes = [*self.workers, *self.cluster.reapers]
        return "\n".join(f"--- {p.name}\n{p.log_tail(lines)}" for p in processes)

    # --- the end of every scenario ----------------------------------------------------

    def wait_settled(self, timeout: float = 90) -> list[Run]:
        """Until every run is terminal or AUDIT_REQUIRED: nothing may stay stuck."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs()
            stuck = [
                run
                for run in runs
                if not run.is_terminal and run.money_state != Run.MoneyState.AUDIT_REQUIRED
            ]
            if len(runs) == len(self.run_ids) and not stuck:
                return runs
            if time.monotonic() > deadline:
                states = Counter(f"{run.status}/{run.money_state}" for run in stuck)
                raise TimeoutError(f"stuck runs {dict(states)}:\n{self.log_tails()}")
            time.sleep(0.25)

    def books(self) -> Books:
        """Check each run's transfers and each tenant's account against what the runs
        say they cost; the returned totals are the report's."""
        runs = self.runs()
        assert len(runs) == len(self.run_ids)
        finals = Counter(
            str(run_id)
            for run_id in Transfer.objects.filter(
                run_id__in=self.run_ids, kind__in=(Transfer.Kind.SETTLE, Transfer.Kind.VOID)
            ).values_list("run_id", flat=True)
        )
        reserves = Counter(
            str(run_id)
            for run_id in Transfer.objects.filter(
                run_id__in=self.run_ids, kind=Transfer.Kind.RESERVE
            ).values_list("run_id", flat=True)
        )
        charges: Counter = Counter()
        pending: Counter = Counter()
        outcome: Counter = Counter()
        for run in runs:
            run_id = str(run.id)
            assert reserves[run_id] == 1, run_id
            if run.money_state == Run.MoneyState.AUDIT_REQUIRED:
                # Unknowable: never silently settled, its reservation stays pending.
                assert finals[run_id] == 0, f"{run_id} was flagged and settled"
                pending[run.tenant_id] += run.reserved_micros
                outcome["audit_required"] += 1
                continue
            assert finals[run_id] == 1, f"{run_id}: {finals[run_id]} finalizations"
            if run.status == Run.Status.COMPLETED:
                assert run.money_state == Run.MoneyState.SETTLED
                assert run.actual_cost_micros == run.inputs["cost"], run_id
                outcome["completed"] += 1
            elif run.money_state == Run.MoneyState.REFUNDED:
                assert run.actual_cost_micros == 0
                outcome["refunded"] += 1
            elif run.status == Run.Status.CANCELED:
                # Canceled while processing: never more than the minimum fee.
                assert run.money_state == Run.MoneyState.SETTLED
                assert run.actual_cost_micros == run.minimum_fee_micros == 5_000, run_id
                outcome["canceled"] += 1
            else:
                assert (run.status, run.money_state) == (Run.Status.FAILED, "SETTLED")
                assert run.actual_cost_micros == run.minimum_fee_micros == 5_000, run_id
                outcome["failed"] += 1
            charges[run.tenant_id] += run.actual_cost_micros
        credits = 0
        for account in self.accounts:
            account.refresh_from_db()
            topped_up = sum(
                Transfer.objects.filter(account=account, kind=Transfer.Kind.TOPUP).values_list(
                    "amount_micros", flat=True
                )
            )
            assert account.credits_posted == topped_up
            assert account.debits_posted == charges[account.tenant_id]
            assert account.debits_pending == pending[account.tenant_id]
            assert account.available_micros == (
                topped_up - charges[account.tenant_id] - pending[account.tenant_id]
            )
            credits += topped_up
        # The audit is clean but for runs the fault made unknowable, which are flagged.
        flagged = {str(run.id) for run in runs if run.money_state == "AUDIT_REQUIRED"}
        for violation in audit():
            assert violation.run_id in flagged, violation.line()
        return Books(
            runs=len(runs),
            completed=outcome["completed"],
            failed=outcome["failed"],
            canceled=outcome["canceled"],
            refunded=outcome["refunded"],
            audit_required=outcome["audit_required"],
            credits=credits,
            charges=sum(charges.values()),
            pending=sum(pending.values()),
        )

    def report(self, books: Books, **extra: Any) -> None:
        details = " ".join(f"{key}={value}" for key, value in extra.items())
        elapsed = time.monotonic() - self.started
        line = f"{books.line(self.name)} {details} ({elapsed:.0f} s)".replace("  ", " ")
        self._report(line)
        sys.stdout.write(f"\n[chaos] {line}\n")


def pg_terminate(backend_pid: int) -> bool:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
        return bool(cursor.fetchone()[0])


def environment(*, database: str, s3_env: Mapping[str, str], sqs: SqsServer, **extra: str):
    return {
        "DATABASE_URL": database,
        "PYTHONPATH": str(REPO_ROOT),
        "DPP_EXTRA_PACKS": json.dumps(CHAOS_PACKS),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **s3_env,
        **sqs.env(),
        **TIMINGS,
        **extra,
    }
