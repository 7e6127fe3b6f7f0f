"""The ledger audit: docs/design.md §3 invariants 1-7, checked with SQL over the whole ledger.

It lives in ``reaper`` because it is the layer that sees both runs and the ledger. It
only reads: on PostgreSQL the checks run in one READ ONLY, REPEATABLE READ transaction,
so they see one consistent snapshot (a run inserted between two checks cannot look
half-written) and the database itself refuses any write. It never moves money; flagging
runs AUDIT_REQUIRED and alerting is the periodic reaper task's job.

Each check is one aggregate statement (the rollups' two, compared by day); no Python loop
walks the transfers. Violations come back as rows, so a clean ledger returns nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import connection, transaction

from billing import usage
from billing.models import Account, Transfer, UsageDay
from billing.money import micros_to_usd
from runs.models import Run

INVARIANTS: dict[int, str] = {
    1: "account columns equal the sums of its transfers",
    2: "debits_posted + debits_pending <= credits_posted, no column negative",
    3: "one RESERVE per run; one SETTLE or VOID per terminal run, none otherwise",
    4: "SETTLE <= RESERVE = run.reserved_micros, VOID = RESERVE, actual_cost matches; "
    "a CANCELED run is charged at most its minimum fee",
    5: "money_state agrees with the transfers, their outcome with the run's status; "
    "COMPLETED runs point at a result",
    6: "each transfer's available_after = the previous one's + its effect (with 1: the "
    "newest one's is the account's available balance)",
    7: "every rolled-up day of usage equals the ledger's transfers of that day",
}

TERMINAL = tuple(str(s) for s in Run.TERMINAL)


@dataclass(frozen=True)
class Violation:
    invariant: int
    account_id: int | None
    tenant_id: str | None
    run_id: str | None
    detail: str

    def line(self) -> str:
        where = " ".join(
            f"{name}={value}"
            for name, value in (
                ("run", self.run_id),
                ("account", self.account_id),
                ("tenant", self.tenant_id),
            )
            if value is not None
        )
        return f"invariant {self.invariant} violated: {where}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditReport:
    violations: list[Violation]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not self.violations


def _uuid(value: Any) -> str | None:
    # PostgreSQL returns UUID objects; SQLite stores them as 32 hex characters.
    return None if value is None else str(uuid.UUID(str(value)))


def _tables() -> dict[str, str]:
    return {
        "account": Account._meta.db_table,
        "transfer": Transfer._meta.db_table,
        "run": Run._meta.db_table,
        "terminal": ", ".join(f"'{s}'" for s in TERMINAL),
    }


_INVARIANT_1 = """
WITH sums AS (
    SELECT t.account_id,
        SUM(CASE WHEN t.kind = 'TOPUP' THEN t.amount_micros
                 WHEN t.kind = 'ADJUST' AND t.amount_micros > 0 THEN t.amount_micros
                 ELSE 0 END) AS credits,
        SUM(CASE WHEN t.kind = 'SETTLE' THEN t.amount_micros
                 WHEN t.kind = 'ADJUST' AND t.amount_micros < 0 THEN -t.amount_micros
                 ELSE 0 END) AS debits,
        SUM(CASE WHEN t.kind = 'RESERVE' THEN t.amount_micros
                 WHEN t.kind IN ('SETTLE', 'VOID') THEN -COALESCE(r.amount_micros, 0)
                 ELSE 0 END) AS pending
    FROM {transfer} t
    LEFT JOIN {transfer} r
        ON t.kind IN ('SETTLE', 'VOID') AND r.run_id = t.run_id AND r.kind = 'RESERVE'
    GROUP BY t.account_id
)
SELECT a.id, a.tenant_id,
    a.credits_posted, COALESCE(s.credits, 0),
    a.debits_posted, COALESCE(s.debits, 0),
    a.debits_pending, COALESCE(s.pending, 0)
FROM {account} a LEFT JOIN sums s ON s.account_id = a.id
WHERE a.credits_posted <> COALESCE(s.credits, 0)
   OR a.debits_posted <> COALESCE(s.debits, 0)
   OR a.debits_pending <> COALESCE(s.pending, 0)
ORDER BY a.id
"""

_INVARIANT_2 = """
SELECT a.id, a.tenant_id, a.credits_posted, a.debits_posted, a.debits_pending
FROM {account} a
WHERE a.debits_posted + a.debits_pending > a.credits_posted
   OR a.credits_posted < 0 OR a.debits_posted < 0 OR a.debits_pending < 0
ORDER BY a.id
"""

_INVARIANT_3 = """
SELECT r.id, r.tenant_id, r.status,
    SUM(CASE WHEN t.kind = 'RESERVE' THEN 1 ELSE 0 END) AS reserves,
    SUM(CASE WHEN t.kind IN ('SETTLE', 'VOID') THEN 1 ELSE 0 END) AS finalizations,
    SUM(CASE WHEN t.id IS NOT NULL AND a.tenant_id <> r.tenant_id THEN 1 ELSE 0 END)
        AS foreign_transfers
FROM {run} r
LEFT JOIN {transfer} t ON t.run_id = r.id
LEFT JOIN {account} a ON a.id = t.account_id
GROUP BY r.id, r.tenant_id, r.status
HAVING SUM(CASE WHEN t.kind = 'RESERVE' THEN 1 ELSE 0 END) <> 1
    OR SUM(CASE WHEN t.kind IN ('SETTLE', 'VOID') THEN 1 ELSE 0 END)
       <> CASE WHEN r.status IN ({terminal}) THEN 1 ELSE 0 END
    OR SUM(CASE WHEN t.id IS NOT NULL AND a.tenant_id <> r.tenant_id THEN 1 ELSE 0 END) > 0
ORDER BY r.id
"""

_INVARIANT_4 = """
SELECT r.id, r.tenant_id, t.account_id, t.kind, t.amount_micros,
    res.amount_micros, r.reserved_micros, r.actual_cost_micros, r.status,
    r.minimum_fee_micros
FROM {transfer} t
JOIN {run} r ON r.id = t.run_id
LEFT JOIN {transfer} res ON res.run_id = t.run_id AND res.kind = 'RESERVE'
WHERE (t.kind = 'RESERVE' AND t.amount_micros <> r.reserved_micros)
   OR (t.kind = 'SETTLE' AND (
           t.amount_micros > COALESCE(res.amount_micros, 0)
           OR r.actual_cost_micros IS NULL
           OR r.actual_cost_micros <> t.amount_micros))
   OR (t.kind = 'VOID' AND (
           t.amount_micros <> COALESCE(res.amount_micros, 0)
           OR COALESCE(r.actual_cost_micros, 0) <> 0))
   OR (t.kind = 'SETTLE' AND r.status = 'CANCELED' AND t.amount_micros > r.minimum_fee_micros)
ORDER BY r.id, t.id
"""

# AUDIT_REQUIRED runs are already flagged for a person; their state is not re-judged here.
_INVARIANT_5 = """
SELECT r.id, r.tenant_id, r.status, r.money_state, r.result_key, r.result_sha256,
    CASE WHEN SUM(CASE WHEN t.kind = 'SETTLE' THEN 1 ELSE 0 END) > 0 THEN 'SETTLED'
         WHEN SUM(CASE WHEN t.kind = 'VOID' THEN 1 ELSE 0 END) > 0 THEN 'REFUNDED'
         WHEN SUM(CASE WHEN t.kind = 'RESERVE' THEN 1 ELSE 0 END) > 0 THEN 'RESERVED'
         ELSE NULL END AS expected,
    MAX(CASE WHEN t.kind IN ('SETTLE', 'VOID') THEN t.outcome END) AS outcome
FROM {run} r
LEFT JOIN {transfer} t ON t.run_id = r.id
WHERE r.money_state <> 'AUDIT_REQUIRED'
GROUP BY r.id, r.tenant_id, r.status, r.money_state, r.result_key, r.result_sha256
HAVING r.money_state <> COALESCE(
        CASE WHEN SUM(CASE WHEN t.kind = 'SETTLE' THEN 1 ELSE 0 END) > 0 THEN 'SETTLED'
             WHEN SUM(CASE WHEN t.kind = 'VOID' THEN 1 ELSE 0 END) > 0 THEN 'REFUNDED'
             WHEN SUM(CASE WHEN t.kind = 'RESERVE' THEN 1 ELSE 0 END) > 0 THEN 'RESERVED'
             ELSE NULL END, '')
    OR (r.status = 'COMPLETED' AND (r.result_sha256 = '' OR r.result_key = ''))
    OR SUM(CASE WHEN t.kind IN ('SETTLE', 'VOID') AND t.outcome <> r.status
                     AND r.status IN ({terminal}) THEN 1 ELSE 0 END) > 0
ORDER BY r.id
"""

# LAG over the account's transfers in id order: the order they moved its balance. With
# invariant 1 (the columns are the sums of the effects) the newest one's balance is the
# account's available balance.
_INVARIANT_6 = """
WITH effects AS (
    SELECT t.id, t.account_id, t.available_after_micros AS after,
        CASE WHEN t.kind IN ('TOPUP', 'ADJUST') THEN t.amount_micros
             WHEN t.kind = 'RESERVE' THEN -t.amount_micros
             WHEN t.kind = 'SETTLE' THEN COALESCE(r.amount_micros, 0) - t.amount_micros
             ELSE COALESCE(r.amount_micros, 0) END AS effect,
        LAG(t.available_after_micros, 1, 0)
            OVER (PARTITION BY t.account_id ORDER BY t.id) AS before
    FROM {transfer} t
    LEFT JOIN {transfer} r
        ON t.kind IN ('SETTLE', 'VOID') AND r.run_id = t.run_id AND r.kind = 'RESERVE'
)
SELECT e.id, e.account_id, a.tenant_id, e.before, e.effect, e.after
FROM effects e JOIN {account} a ON a.id = e.account_id
WHERE e.before + e.effect <> e.after
ORDER BY e.id
"""

_COUNTS = """
SELECT
    (SELECT COUNT(*) FROM {account}),
    (SELECT COUNT(*) FROM {transfer}),
    (SELECT COUNT(*) FROM {run}),
    (SELECT COUNT(*) FROM {run} WHERE money_state = 'AUDIT_REQUIRED')
"""


def _rows(cursor, sql: str) -> list[tuple]:
    cursor.execute(sql.format(**_tables()))
    return cursor.fetchall()


def _usd(micros: int | None) -> str:
    return "none" if micros is None else micros_to_usd(int(micros))


def _check_1(cursor) -> Iterator[Violation]:
    for account_id, tenant_id, *pairs in _rows(cursor, _INVARIANT_1):
        names = ("credits_posted", "debits_posted", "debits_pending")
        diffs = [
            f"{name} {_usd(stored)} != transfers {_usd(summed)}"
            for name, stored, summed in zip(names, pairs[0::2], pairs[1::2], strict=True)
            if stored != summed
        ]
        yield Violation(1, account_id, _uuid(tenant_id), None, "; ".join(diffs))


def _check_2(cursor) -> Iterator[Violation]:
    for account_id, tenant_id, credits, debits, pending in _rows(cursor, _INVARIANT_2):
        yield Violation(
            2,
            account_id,
            _uuid(tenant_id),
            None,
            f"debits_posted {_usd(debits)} + debits_pending {_usd(pending)} exceed "
            f"credits_posted {_usd(credits)} (or a column is negative)",
        )


def _check_3(cursor) -> Iterator[Violation]:
    for run_id, tenant_id, status, reserves, finals, foreign in _rows(cursor, _INVARIANT_3):
        problems = []
        if reserves != 1:
            problems.append(f"{reserves} RESERVE transfers (expected 1)")
        expected = 1 if status in TERMINAL else 0
        if finals != expected:
            problems.append(
                f"{finals} SETTLE/VOID transfers for a {status} run (expected {expected})"
            )
        if foreign:
            problems.append(f"{foreign} transfers on another tenant's account")
        yield Violation(3, None, _uuid(tenant_id), _uuid(run_id), "; ".join(problems))


def _check_4(cursor) -> Iterator[Violation]:
    for row in _rows(cursor, _INVARIANT_4):
        run_id, tenant_id, account_id, kind, amount, reserved, run_reserved, actual, *rest = row
        status, minimum_fee = rest
        if kind == "SETTLE" and status == "CANCELED" and amount > minimum_fee:
            detail = f"CANCELED run charged {_usd(amount)} > its minimum fee {_usd(minimum_fee)}"
        elif kind == "RESERVE":
            detail = f"RESERVE {_usd(amount)} != run.reserved {_usd(run_reserved)}"
        elif reserved is None:
            detail = f"{kind} {_usd(amount)} without a RESERVE"
        elif kind == "SETTLE" and amount > reserved:
            detail = f"SETTLE {_usd(amount)} exceeds RESERVE {_usd(reserved)}"
        elif kind == "SETTLE":
            detail = f"SETTLE {_usd(amount)} != run.actual_cost {_usd(actual)}"
        elif amount != reserved:
            detail = f"VOID {_usd(amount)} != RESERVE {_usd(reserved)}"
        else:
            detail = f"VOID but run.actual_cost is {_usd(actual)} (expected 0 or none)"
        yield Violation(4, account_id, _uuid(tenant_id), _uuid(run_id), detail)


def _check_5(cursor) -> Iterator[Violation]:
    for row in _rows(cursor, _INVARIANT_5):
        run_id, tenant_id, status, money_state, result_key, result_sha256, expected, outcome = row
        problems = []
        if money_state != (expected or ""):
            problems.append(
                f"money_state {money_state} but transfers say {expected or 'no RESERVE'}"
            )
        if status == "COMPLETED" and not (result_key and result_sha256):
            # Whether the object's real sha256 matches is the reaper's storage check.
            problems.append("COMPLETED without a result key and sha256")
        if outcome is not None and status in TERMINAL and outcome != status:
            problems.append(f"the ledger finalized it as {outcome} but the run is {status}")
        yield Violation(5, None, _uuid(tenant_id), _uuid(run_id), "; ".join(problems))


def _check_6(cursor) -> Iterator[Violation]:
    for row in _rows(cursor, _INVARIANT_6):
        transfer_id, account_id, tenant_id, before, effect, after = row
        detail = (
            f"transfer {transfer_id}: available_after {_usd(after)} != "
            f"{_usd(before)} before it + {_usd(effect)}"
        )
        yield Violation(6, account_id, _uuid(tenant_id), None, detail)


def _check_7(cursor) -> Iterator[Violation]:
    """Rolled-up days (before the watermark) against the same days computed anew."""
    boundary = usage.unsealed_from()
    if boundary is None:
        return
    ledger = usage.day_totals(Transfer.objects.filter(created_at__lt=usage.midnight(boundary)))
    rolled = {
        (row.account_id, row.date): usage.DayUsage(
            date=row.date,
            **{name: getattr(row, name) for name in (*usage.COUNTS, *usage.AMOUNTS)},
        )
        for row in UsageDay.objects.filter(date__lt=boundary)
    }
    tenants = dict(Account.objects.values_list("id", "tenant_id"))
    for account_id, day in sorted(set(ledger) | set(rolled), key=lambda key: (key[1], key[0])):
        expected = ledger.get((account_id, day), usage.DayUsage(date=day))
        found = rolled.get((account_id, day), usage.DayUsage(date=day))
        diffs = [
            f"{name} {getattr(found, name)} != ledger {getattr(expected, name)}"
            for name in (*usage.COUNTS, *usage.AMOUNTS)
            if getattr(found, name) != getattr(expected, name)
        ]
        if diffs:
            yield Violation(
                7, account_id, _uuid(tenants.get(account_id)), None, f"{day}: " + "; ".join(diffs)
            )


CHECKS = (_check_1, _check_2, _check_3, _check_4, _check_5, _check_6, _check_7)


@contextmanager
def _snapshot() -> Iterator[None]:
    """One read-only snapshot for all checks when we own the transaction (PostgreSQL)."""
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


def run_audit() -> AuditReport:
    """Every violation of invariants 1-7, plus the ledger's size, from one snapshot."""
    with _snapshot(), connection.cursor() as cursor:
        violations = [v for check in CHECKS for v in check(cursor)]
        accounts, transfers, runs, flagged = _rows(cursor, _COUNTS)[0]
    return AuditReport(
        violations=violations,
        counts={
            "accounts": accounts,
            "transfers": transfers,
            "runs": runs,
            "audit_required_runs": flagged,
        },
    )


def audit() -> list[Violation]:
    """The violations only: ``[]`` means the ledger is clean."""
    return run_audit().violations
