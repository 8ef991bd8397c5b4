"""The run's table and the issue-9 targets, as plain text or Markdown (for RESULTS.md)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from batch import BatchResult
from load import Result


@dataclass
class Row:
    result: Result
    ceiling: Result | None = None
    ceiling_kind: str = ""  # "id" or "list": which captured bytes the ceiling served

    @property
    def fraction(self) -> float | None:
        if self.ceiling is None or not self.ceiling.rps:
            return None
        return self.result.rps / self.ceiling.rps

    @property
    def cpu_fraction(self) -> float | None:
        """The fraction of the ceiling the CPU costs predict when both are CPU-bound: the
        ceiling's CPU per request (workers + wrk) over ours (workers + PostgreSQL + wrk).
        Busy neighbours slow both runs alike, so this holds better on a shared machine."""
        ours = self.result.total_cpu_ms_per_request
        theirs = self.ceiling.total_cpu_ms_per_request if self.ceiling else None
        return theirs / ours if ours and theirs else None


@dataclass
class Run:
    rows: dict[str, Row] = field(default_factory=dict)
    batches: dict[str, BatchResult] = field(default_factory=dict)
    memory: dict | None = None
    checks: dict = field(default_factory=dict)

    def add(self, key: str, result: Result) -> None:
        self.rows[key] = Row(result)

    def fraction(self, key: str) -> float | None:
        row = self.rows.get(key)
        return row.fraction if row else None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def table(run: Run) -> list[list[str]]:
    head = [
        "scenario",
        "wrk",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "% of ceiling",
        "% of ceiling by CPU",
        "CPU ms/req: workers",
        "PostgreSQL",
        "wrk",
    ]
    rows = [head]
    for row in run.rows.values():
        r = row.result
        errors = str(r.errors) + (f" ({_statuses(r)})" if r.errors else "")
        kind = f" ({row.ceiling_kind})" if row.ceiling_kind else ""
        rows.append(
            [
                r.name,
                r.settings.removeprefix("wrk "),
                f"{r.rps:,.0f}",
                f"{r.p50_ms:.1f}",
                f"{r.p99_ms:.1f}",
                errors,
                _pct(row.fraction) + kind,
                _pct(row.cpu_fraction) + kind,
                _ms(r.cpu_ms_per_request),
                _ms(r.db_cpu_ms_per_request),
                _ms(_per_request(r.wrk_cpu_seconds, r)),
            ]
        )
    return rows


def _per_request(seconds: float | None, result: Result) -> float | None:
    return 1000 * seconds / result.requests if seconds is not None and result.requests else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _statuses(result: Result) -> str:
    parts = [f"{status}x{count}" for status, count in sorted(result.statuses.items())]
    if result.socket_errors:
        parts.append(f"socketx{result.socket_errors}")
    return ", ".join(parts)


def batch_table(run: Run) -> list[list[str]]:
    rows = [
        [
            "batch job",
            "rows",
            "command s",
            "command rows/s",
            "plain s",
            "plain rows/s",
            "ratio",
            "plain baseline",
        ]
    ]
    for b in run.batches.values():
        rows.append(
            [
                b.name,
                f"{b.rows:,}",
                f"{b.command_seconds:.2f}",
                f"{b.command_rate:,.0f}",
                f"{b.plain_seconds:.2f}",
                f"{b.plain_rate:,.0f}",
                _pct(b.ratio),
                b.plain_label,
            ]
        )
    return rows


def memory_table(run: Run) -> list[list[str]]:
    rows = [["worker pid", "RSS cold MiB", "RSS warm MiB", "RSS after MiB", "peak MiB", "change"]]
    for pid, sizes in (run.memory or {}).get("workers", {}).items():
        rows.append(
            [
                str(pid),
                f"{sizes['cold']:.1f}",
                f"{sizes['before']:.1f}",
                f"{sizes['after']:.1f}",
                f"{sizes['peak']:.1f}",
                f"{100 * (sizes['after'] / sizes['before'] - 1):+.1f}%",
            ]
        )
    return rows


# --- targets ---------------------------------------------------------------------------

Verdict = tuple[str, bool | None]


def _at_least(run: Run, key: str, goal: float) -> Verdict:
    value = run.fraction(key)
    if value is None:
        return "not measured", None
    return f"{_pct(value)} of its ceiling", value >= goal


def _pay_later(run: Run) -> Verdict:
    row = run.rows.get("pay_later")
    stock = run.checks.get("pay_later_stock")
    if row is None or stock is None:
        return "not measured", None
    oversold = stock["negativeStock"] + stock["ledgerMismatches"]
    text = (
        f"{_pct(row.fraction)}, {row.result.errors} errors, {stock['negativeStock']} "
        f"products below 0, {stock['ledgerMismatches']} ledger mismatches, "
        f"doctor {'ok' if run.checks.get('pay_later_doctor') else 'FAILED'}"
    )
    met = (
        row.fraction >= 0.03
        and row.result.errors == 0
        and oversold == 0
        and bool(run.checks.get("pay_later_doctor"))
    )
    return text, met


def _webhooks(run: Run) -> Verdict:
    row = run.rows.get("webhook")
    if row is None:
        return "not measured", None
    r = row.result
    text = f"{_pct(row.fraction)}, p99 {r.p99_ms:.1f} ms, {r.errors} errors"
    if r.wrapped:
        text += " (bodies ran out: some deliveries were duplicates)"
    return text, row.fraction >= 0.04 and r.p99_ms < 50 and r.errors == 0


def _batch(run: Run, key: str) -> Verdict:
    b = run.batches.get(key)
    if b is None:
        return "not measured", None
    return (
        f"{b.command_rate:,.0f} vs {b.plain_rate:,.0f} rows/s = {_pct(b.ratio)}",
        b.ratio >= 0.5,
    )


def _beside(run: Run) -> Verdict:
    idle, busy = run.rows.get("list_idle"), run.rows.get("list_beside_500")
    if idle is None or busy is None:
        return "not measured", None
    ratio = busy.result.p99_ms / idle.result.p99_ms if idle.result.p99_ms else math.inf
    return (
        f"idle p99 {idle.result.p99_ms:.1f} ms, with 20 slow checkouts "
        f"{busy.result.p99_ms:.1f} ms = {ratio:.2f}x",
        ratio <= 2.0,
    )


def _memory(run: Run) -> Verdict:
    if not run.memory or not run.memory.get("workers"):
        return "not measured", None
    changes = [sizes["after"] / sizes["before"] - 1 for sizes in run.memory["workers"].values()]
    text = (
        ", ".join(f"{100 * change:+.1f}%" for change in changes)
        + f" over {run.memory['seconds']:.0f} s of mixed load"
    )
    return text, all(abs(change) <= 0.10 for change in changes)


def _metrics(run: Run) -> Verdict:
    cost = run.checks.get("metrics")
    if not cost:
        return "not measured", None
    cpu = f", CPU per request {cost['cpuRatio']:.3f}x" if cost.get("cpuRatio") else ""
    text = (
        f"on {cost['onRps']:,} vs off {cost['offRps']:,} req/s = "
        f"{_pct(cost['throughputRatio'])}{cpu} ({cost['rounds']} rounds, "
        f"{cost['scrapes']} scrapes)"
    )
    return text, cost["throughputRatio"] >= 0.95


TARGETS: list[tuple[str, Callable[[Run], Verdict]]] = [
    ("GET /product/:id ≥ 25% of the ceiling", lambda run: _at_least(run, "product_id", 0.25)),
    (
        "GET /product?limit=20 ≥ 15% of the ceiling",
        lambda run: _at_least(run, "product_list", 0.15),
    ),
    ("POST /order/pay-later ≥ 3%, zero errors, zero oversell", _pay_later),
    ("webhook ingestion ≥ 4%, p99 < 50 ms", _webhooks),
    ("orders expire ≥ 50% of plain SQL", lambda run: _batch(run, "expire")),
    ("products seed ≥ 50% of plain SQL", lambda run: _batch(run, "seed")),
    ("GET /product p99 with 20 slow checkouts ≤ 2x idle", _beside),
    ("worker RSS flat ±10% over the mixed load", _memory),
    ("GET /product/:id with metrics on ≥ 95% of off", _metrics),
]


def targets(run: Run) -> list[list[str]]:
    rows = [["target", "figure", "verdict"]]
    for label, check in TARGETS:
        figure, met = check(run)
        rows.append([label, figure, "-" if met is None else ("met" if met else "MISSED")])
    return rows


# --- rendering -------------------------------------------------------------------------


def plain(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


def markdown(rows: list[list[str]]) -> str:
    escape = [[cell.replace("|", "\\|") for cell in row] for row in rows]
    lines = ["| " + " | ".join(row) + " |" for row in escape]
    lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
    return "\n".join(lines)
