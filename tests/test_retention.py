"""`shopctl db prune` and doctor's retention check (issue 16), on both databases.

The data is made the way the shop makes it — over HTTP to a live server: failed logins,
logins and refreshes, orders with an Idempotency-Key, webhooks — then aged by moving
its timestamps back. Regression pinned: nothing ever deleted login-throttle rows, spent
refresh sessions, idempotency keys or years of Stripe events.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta

import pytest

from shopctl.models import LoginThrottle, Order, RefreshSession, StripeEvent, utcnow
from shopctl.services.accounts.auth import hash_password
from shopctl.services.system import retention
from tests.orders_support import bearer, make_product, make_user
from tests.resilience_support import row_counts
from tests.test_indexes import fresh_database  # noqa: F401  (a fixture)
from tests.test_webhooks import deliver

PASSWORD = "Passw0rd!"
DAY = timedelta(days=1)


def _age(model, column, by: timedelta, *where) -> None:
    """Move `column` back by `by` on the rows matching `where` (in Python: portable)."""
    for row in model.select().where(*where) if where else model.select():
        setattr(row, column, getattr(row, column) - by)
        row.save()


def _event(n: int) -> dict:
    return {
        "id": f"evt_retention_{n}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": {"id": f"pi_unknown_{n}", "metadata": {}}},
    }


@pytest.fixture
def aged_shop(server, settings):
    """A shop with live rows and rows past their purpose, in each pruned table; returns
    what prune must remove, by table, and the ids that must stay."""
    user = make_user("owner@example.com")
    user.password_hash = hash_password(settings, PASSWORD)
    user.save()
    product = make_product("Mug", quantity=100)
    http = server.http
    # login_throttle: failed logins from the test client, later aged past their window.
    for _ in range(3):
        bad = {"email": "stranger@example.com", "password": "Wrong-pass1"}
        assert http.post("/api/v1/auth/login", json=bad).status_code == 401
    assert len(LoginThrottle.select()) == 3  # the account, the pair, the address
    _age(LoginThrottle, "window_started_at", timedelta(minutes=16))
    _age(LoginThrottle, "expires_at", timedelta(minutes=16))
    # A failure for another account: the address's counter starts a new window (live).
    bad = {"email": "fresh@example.com", "password": "Wrong-pass1"}
    assert http.post("/api/v1/auth/login", json=bad).status_code == 401
    spent_keys = {"email:stranger@example.com", "pair:stranger@example.com|127.0.0.1"}
    # refresh_session: two logins, one refreshed twice (rotations), then one family aged
    # past its lifetime.
    good = {"email": "owner@example.com", "password": PASSWORD}
    old = http.post("/api/v1/auth/login", json=good).json()["data"]
    token = old["refreshToken"]
    for _ in range(2):
        response = http.post("/api/v1/auth/refresh-token", json={"refreshToken": token})
        token = response.json()["data"]["refreshToken"]
    http.cookies.clear()
    old_family = {row.id for row in RefreshSession.select()}
    lifetime = timedelta(seconds=settings.jwt_refresh_expires)
    _age(RefreshSession, "expires_at", lifetime + DAY)
    _age(RefreshSession, "created_at", lifetime + DAY)
    # Another account's live session (a login also drops its own account's expired ones).
    other = make_user("other@example.com")
    other.password_hash = user.password_hash
    other.save()
    assert (
        http.post("/api/v1/auth/login", json={**good, "email": "other@example.com"}).status_code
        == 200
    )
    http.cookies.clear()
    live_sessions = {row.id for row in RefreshSession.select()} - old_family
    # idempotency keys: three keyed orders, two aged past 24 hours, and one unkeyed.
    headers = bearer(settings, user)
    items = {"items": [{"productId": product.id, "quantity": 1}]}
    keyed = []
    for n in range(3):
        response = http.post(
            "/api/v1/order/pay-later", json=items, headers={**headers, "Idempotency-Key": f"k{n}"}
        )
        assert response.status_code == 201, response.text
        keyed.append(response.json()["data"]["orderId"])
    assert http.post("/api/v1/order/pay-later", json=items, headers=headers).status_code == 201
    _age(Order, "created_at", timedelta(hours=25), Order.id.in_(keyed[:2]))
    # stripe_event: webhooks for payments we do not know are stored as IGNORED; then some
    # are marked as other outcomes, and aged.
    for n in range(7):
        assert deliver(server, _event(n)).status_code == 200
    retention_days = timedelta(days=settings.event_retention_days)
    statuses = {0: "PROCESSED", 1: "IGNORED", 2: "PROCESSED", 3: "FAILED", 4: "RECEIVED"}
    for n, status in statuses.items():
        StripeEvent.update(status=status).where(StripeEvent.id == f"evt_retention_{n}").execute()
    old_events = [f"evt_retention_{n}" for n in range(5)]
    _age(StripeEvent, "received_at", retention_days + DAY, StripeEvent.id.in_(old_events))
    return {
        "expected": {
            "login_throttle": 2,
            "refresh_session": len(old_family),
            "idempotency_key": 2,
            "stripe_event": 3,
        },
        "spent_keys": spent_keys,
        "old_family": old_family,
        "live_sessions": live_sessions,
        "keyed": keyed,
        "archived": {"evt_retention_0", "evt_retention_1", "evt_retention_2"},
    }


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_prune_deletes_exactly_what_is_past_its_purpose(aged_shop, cli, tmp_path):
    expected = aged_shop["expected"]
    assert expected["refresh_session"] == 3  # the login and its two rotations
    before = row_counts()
    assert _json(cli("db", "prune", "--dry-run", "--json")) == {"tables": expected}
    assert row_counts() == before  # --dry-run changes nothing
    archive = tmp_path / "events.jsonl"
    assert _json(cli("db", "prune", "--json", "--archive", str(archive))) == {"tables": expected}
    # Nothing live went.
    assert not LoginThrottle.select().where(LoginThrottle.key.in_(aged_shop["spent_keys"])).count()
    assert LoginThrottle.select().count() == before["login_throttle"] - expected["login_throttle"]
    assert {row.id for row in RefreshSession.select()} == aged_shop["live_sessions"]
    keys = {o.id: o.idempotency_key for o in Order.select()}
    first, second, fresh = aged_shop["keyed"]
    assert (keys[first], keys[second], keys[fresh]) == (None, None, "k2")
    assert Order.select().count() == before["order"]
    left = {event.id: event.status for event in StripeEvent.select()}
    assert left == {
        "evt_retention_3": "FAILED",
        "evt_retention_4": "RECEIVED",
        "evt_retention_5": "IGNORED",
        "evt_retention_6": "IGNORED",
    }
    # The archive holds each deleted event once, with Stripe's payload.
    lines = [json.loads(line) for line in archive.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(aged_shop["archived"])
    for line in lines:
        assert line["payload"]["id"] == line["id"]
        assert line["payload"]["type"] == "payment_intent.succeeded"
        assert line["status"] in ("PROCESSED", "IGNORED") and line["receivedAt"]
    # A second run finds nothing and leaves the archive as it was.
    nothing = dict.fromkeys(expected, 0)
    assert _json(cli("db", "prune", "--json", "--archive", str(archive))) == {"tables": nothing}
    assert len(archive.read_text().splitlines()) == 3
    text = cli("db", "prune")
    assert text.exit_code == 0 and "stripe_event" in text.output


def test_prune_in_small_batches_from_several_hosts_at_once(aged_shop, settings, tmp_path):
    """Four pruners at once, one row per batch: the rows are split between them, each
    deleted (and archived) once."""
    results, archives = {}, [tmp_path / f"host{n}.jsonl" for n in range(4)]

    def host(n: int) -> None:
        from shopctl.db import connection

        with connection():
            results[n] = retention.prune(settings, archive=archives[n], batch=1)

    threads = [threading.Thread(target=host, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    totals = {name: sum(r[name] for r in results.values()) for name in results[0]}
    assert totals == aged_shop["expected"]
    archived = [
        json.loads(line)["id"] for path in archives if path.exists()
        for line in path.read_text().splitlines()
    ]  # fmt: skip
    assert sorted(archived) == sorted(aged_shop["archived"])


def test_doctor_reports_the_tables_and_warns_when_pruning_has_not_run(aged_shop, cli):
    # Age everything prunable by three more days: it has waited longer than two.
    _age(StripeEvent, "received_at", 3 * DAY)
    _age(Order, "created_at", 3 * DAY, Order.idempotency_key.is_null(False))
    report = json.loads(cli("doctor", "--json").output)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["retention"]["ok"] is False
    assert "never" in checks["retention"]["detail"]
    for table in ("login_throttle", "refresh_session", "idempotency_key", "stripe_event"):
        assert checks[f"{table} rows"]["ok"] is True
        assert "oldest" in checks[f"{table} rows"]["detail"]
    assert "7 rows" in checks["stripe_event rows"]["detail"]
    assert cli("db", "prune").exit_code == 0
    report = json.loads(cli("doctor", "--json").output)
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["retention"]["ok"] is True
    assert utcnow().isoformat()[:10] in checks["retention"]["detail"]
    assert "4 rows" in checks["stripe_event rows"]["detail"]


def test_migration_0007_fills_expires_at_rolls_back_and_applies_again(fresh_database):  # noqa: F811
    from tests.test_indexes import runner_for

    runner = runner_for(fresh_database)
    earlier = [m.name for m in runner.status() if m.name < "0007"]
    runner.up(earlier[-1])
    started = utcnow() - timedelta(minutes=20)
    fresh_database.execute_sql(
        'INSERT INTO "login_throttle" ("key", "failures", "window_started_at") VALUES '
        + ("(%s, %s, %s)" if hasattr(fresh_database, "close_all") else "(?, ?, ?)"),
        ("email:old@example.com", 3, started),
    )
    assert runner.up("0007_retention") == ["0007_retention"]
    (spent,) = fresh_database.execute_sql('SELECT "expires_at" FROM "login_throttle"').fetchone()
    spent = spent if not isinstance(spent, str) else datetime.fromisoformat(spent)
    assert abs(spent - (started + timedelta(minutes=15))) < timedelta(seconds=1)
    indexes = {i.name for t in ("login_throttle", "refresh_session", "order")
               for i in fresh_database.get_indexes(t)}  # fmt: skip
    assert {"login_throttle_expires_at", "refresh_session_expires_at",
            "order_idempotency_key_created_at"} <= indexes  # fmt: skip
    assert runner.down() == ["0007_retention"]
    columns = {c.name for c in fresh_database.get_columns("login_throttle")}
    assert "expires_at" not in columns
    assert runner.up("0007_retention") == ["0007_retention"]
