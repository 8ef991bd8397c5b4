"""Shared by the resilience and security tests: Stripe events shaped like the sandbox's,
the shop's invariants, row counts, a private Stripe sandbox and a private PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from glob import glob
from itertools import pairwise
from pathlib import Path

import httpx

from shopctl.models import ALL_MODELS, Order, OrderHistory, OrderItem, Payment, Product
from shopctl.sandbox import shapes
from shopctl.services.catalog.ledger import order_stock_mismatches, stock_mismatches
from tests.conftest import free_port

# --- Stripe events, built from the sandbox's own object shapes -------------------------


@dataclass
class Checkout:
    """Stripe's side of one order: its Checkout Session, PaymentIntent and money."""

    order_id: str
    payment_id: str
    amount: int
    currency: str = "usd"
    session_id: str | None = None
    session: str = "none"  # none | open | processing | complete | expired
    intent_id: str | None = None
    captured: bool = False
    refunded: int = 0

    @property
    def metadata(self) -> dict[str, str]:
        return {"orderId": self.order_id, "paymentId": self.payment_id}


def stripe_event(event_type: str, obj: dict) -> dict:
    return shapes.event(event_type, obj, request_id=None, idempotency_key=None, pending_webhooks=1)


def session_object(checkout: Checkout, status: str, payment_status: str) -> dict:
    return shapes.checkout_session(
        checkout.session_id,
        amount=checkout.amount,
        currency=checkout.currency,
        expires_at=int(time.time()) + 1860,
        url=None,
        payment_intent=checkout.intent_id,
        fields={
            "metadata": checkout.metadata,
            "client_reference_id": checkout.order_id,
            "status": status,
            "payment_status": payment_status,
        },
    )


def intent_object(checkout: Checkout, status: str, **fields) -> dict:
    return shapes.payment_intent(
        checkout.intent_id,
        amount=checkout.amount,
        currency=checkout.currency,
        metadata=checkout.metadata,
        fields={"status": status, **fields},
    )


def charge_object(checkout: Checkout) -> dict:
    intent = intent_object(checkout, "succeeded")
    return shapes.charge(
        shapes.new_id("ch_"), intent=intent, payment_method="pm_card_visa", email=None
    )


def declined_error() -> dict:
    return shapes.card_error("generic_decline", "Your card was declined.", "pm_card_declined")


# --- the shop's invariants -------------------------------------------------------------

UNPAID, PROCESSING, PAID, FAILED = "UNPAID", "PROCESSING", "PAID", "FAILED"
CANCELED, EXPIRED, REFUNDED = "CANCELED", "EXPIRED", "REFUNDED"
HOLDING = (UNPAID, PROCESSING, PAID)
RELEASED = (EXPIRED, CANCELED, FAILED)

# The SPEC's life-cycle diagram, edge by edge, plus its late-payment paragraph
# (money for an EXPIRED/CANCELED order: PAID again, or REFUNDED when the stock is gone),
# which lifecycle.ALLOWED applies to a FAILED order too (its stock went back as well).
SPEC_EDGES = {
    (UNPAID, PAID),
    (UNPAID, PROCESSING),
    (PROCESSING, PAID),
    (PROCESSING, FAILED),
    (PAID, REFUNDED),
    (UNPAID, CANCELED),
    (UNPAID, EXPIRED),
    (EXPIRED, PAID),
    (CANCELED, PAID),
    (EXPIRED, REFUNDED),
    (CANCELED, REFUNDED),
    (FAILED, PAID),
    (FAILED, REFUNDED),
    (REFUNDED, PAID),  # a refund that failed or was canceled (issue #15)
}


def _closure(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Reordered webhooks may skip a state nobody saw (UNPAID → FAILED when the async failure
    arrives before `checkout.session.completed`), so a step may follow any diagram path."""
    reach = set(edges)
    while True:
        more = {(a, d) for a, b in reach for c, d in reach if b == c} - reach
        if not more:
            return reach
        reach |= more


SPEC_REACHABLE = _closure(SPEC_EDGES)


def held_units() -> dict[str, int]:
    """Product id → units in orders that still hold their stock (reserved or sold)."""
    held: dict[str, int] = defaultdict(int)
    rows = (
        OrderItem.select(OrderItem.product, OrderItem.quantity - OrderItem.restocked_quantity)
        .join(Order)
        .where(~Order.stock_released)
        .tuples()
    )
    for product_id, quantity in rows:
        held[product_id] += quantity
    return held


def assert_stock_adds_up(stocked: dict[str, int]) -> None:
    """stock + reserved + sold == what was stocked, for every product; the ledger agrees."""
    held = held_units()
    for product in Product.select():
        assert product.quantity >= 0, product.name
        assert product.quantity + held[product.id] == stocked[product.id], (
            f"{product.name}: stock {product.quantity} + held {held[product.id]} "
            f"!= stocked {stocked[product.id]}"
        )
    assert stock_mismatches() == []
    assert order_stock_mismatches() == []


def refunded_from() -> dict[str, str]:
    """REFUNDED order id → the status its latest refund moved it from."""
    rows = (
        OrderHistory.select(OrderHistory.order, OrderHistory.from_status)
        .where((OrderHistory.to_status == REFUNDED) & OrderHistory.event.is_null())
        .order_by(OrderHistory.id)
        .tuples()
    )
    return dict(rows)


def assert_orders_hold_what_their_status_says() -> None:
    """HOLDING statuses hold their stock, RELEASED ones gave it back, and a REFUNDED order
    kept what it had: refunds do not return stock (refunded from PAID: still held)."""
    before_refund = refunded_from()
    for order in Order.select(Order.id, Order.status, Order.stock_released):
        if order.status in HOLDING:
            assert not order.stock_released, f"{order.id} is {order.status} but gave its stock back"
        if order.status in RELEASED:
            assert order.stock_released, f"{order.id} is {order.status} but still holds stock"
        if order.status == REFUNDED:
            held = before_refund[order.id] in HOLDING
            assert order.stock_released != held, (
                f"{order.id} was refunded from {before_refund[order.id]}: its refund "
                + ("returned the stock" if held else "took stock again")
            )


def assert_refunds_within_amounts() -> None:
    for payment in Payment.select():
        assert 0 <= payment.refunded_cents <= payment.amount_cents, payment.id


def assert_histories_are_spec_paths() -> None:
    """Each order's history is one walk along the SPEC diagram, ending at its status, and
    no event (actor `evt_…`) moved an order twice."""
    rows = OrderHistory.select().where(OrderHistory.event.is_null()).order_by(OrderHistory.id)
    histories: dict[str, list[OrderHistory]] = defaultdict(list)
    for row in rows:
        histories[row.order_id].append(row)
    for order in Order.select(Order.id, Order.status):
        steps = histories[order.id]
        assert steps and (steps[0].from_status, steps[0].to_status) == (None, UNPAID)
        for before, after in pairwise(steps):
            assert after.from_status == before.to_status, f"{order.id}: history has a gap"
            assert (after.from_status, after.to_status) in SPEC_REACHABLE, (
                f"{order.id}: {after.from_status} → {after.to_status} is not in the SPEC"
            )
        assert steps[-1].to_status == order.status
        # A refund that fails takes REFUNDED back to PAID, so those two may come again
        # (alternating: PAID → PAID is no SPEC step); any other status twice is a repeat.
        statuses = Counter(s.to_status for s in steps if s.to_status not in (PAID, REFUNDED))
        assert not statuses or max(statuses.values()) == 1, (
            f"{order.id} visited a status twice: {statuses}"
        )
        # One event may make two moves (a payment whose refund overtook it: PAID, then
        # REFUNDED); the same move twice from one event is a double apply.
        moves = Counter((s.actor, s.to_status) for s in steps if s.actor.startswith("evt_"))
        assert not moves or max(moves.values()) == 1, f"{order.id}: an event applied twice"


def row_counts() -> dict[str, int]:
    return {model._meta.table_name: model.select().count() for model in ALL_MODELS}


def table_contents() -> dict[str, list]:
    """Every table's rows, every column, in a stable order: equal means nothing changed."""
    return {
        model._meta.table_name: sorted(model.select().tuples(), key=repr) for model in ALL_MODELS
    }


# --- a private Stripe sandbox ------------------------------------------------------------


@contextmanager
def running_sandbox(log_dir: Path) -> Iterator[str]:
    """`shopctl sandbox` on a free port, no webhook URL: its events are only listed."""
    port = free_port()
    log = log_dir / "sandbox.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "shopctl", "sandbox", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/_sandbox/health", process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)


def _wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited early:\n{log.read_text(errors='replace')}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} not up after {timeout}s:\n{log.read_text(errors='replace')}")


# --- a private PostgreSQL, which a test may stop and start -----------------------------


def postgres_bin() -> Path | None:
    found = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """initdb + pg_ctl as the `postgres` user (PostgreSQL refuses root) on a free port.

    Trust authentication on 127.0.0.1 only; the data directory is removed afterwards.
    """

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="shopctl-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o700)

    def _as_postgres(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = " ".join(f"'{arg}'" for arg in args)
        return subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", command],
            check=check,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def init(self) -> None:
        self._as_postgres(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.log),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        self._as_postgres(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-m",
            "fast",
            "-w",
            "-t",
            "60",
            "stop",
            check=False,
        )

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(self.url(), connect_timeout=5)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
        finally:
            conn.close()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    import pytest

    bindir = postgres_bin()
    if bindir is None or shutil.which("su") is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (/usr/lib/postgresql/*/bin/initdb) are missing")
        pytest.skip("no /usr/lib/postgresql/*/bin/initdb: cannot run a private PostgreSQL")
    server = PrivatePostgres(bindir)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


# --- scanning output for secrets --------------------------------------------------------


def leaked(text: str, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets whose value (or a long piece of it) appears in `text`."""
    found = []
    for name, value in secrets.items():
        pieces = {value, value[: len(value) // 2 + 4], value[len(value) // 2 - 4 :]}
        if any(len(piece) >= 12 and piece in text for piece in pieces):
            found.append(name)
    return found
