"""The PostgreSQL pool trusts a connection it just had back, and still never serves a
dead one twice: connections cut by the server are found by a ping after an idle second,
or all dropped at once by the first request that trips over one. Hot statements are
prepared once per connection, and again on a new one."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shopctl.db import PING_AFTER_IDLE_SECONDS, database, discard_connection, is_postgres
from shopctl.models import Product
from shopctl.prepared import PreparedSelect

APP_NAME = "shopctl-pool-test"


@pytest.fixture
def pooled_server(db, start_server):
    if not is_postgres():
        pytest.skip("the connection pool is PostgreSQL's")
    product = Product.create(name="Mug", price_cents=900, quantity=5)
    with start_server(env={"PGAPPNAME": APP_NAME}) as live:
        yield live, product.id


def _warm_up(live, product_id: str, requests: int = 200) -> None:
    """Busy enough that several pooled connections sit idle afterwards."""
    with ThreadPoolExecutor(16) as pool:
        statuses = set(pool.map(lambda _: _get(live, product_id), range(requests)))
    assert statuses == {200}
    assert _server_connections() > 1


def _get(live, product_id: str) -> int:
    return live.request("GET", f"/product/{product_id}").status_code


def _server_connections() -> int:
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
    return database.execute_sql(query, (APP_NAME,)).fetchone()[0]


def _cut_server_connections() -> None:
    query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
    database.execute_sql(query, (APP_NAME,)).fetchall()
    while _server_connections():
        time.sleep(0.01)


def test_connections_cut_during_a_quiet_spell_are_found_before_use(pooled_server):
    live, product_id = pooled_server
    _warm_up(live, product_id)
    _cut_server_connections()
    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)
    assert [_get(live, product_id) for _ in range(20)] == [200] * 20


def test_the_first_request_on_a_cut_connection_clears_the_pool(pooled_server):
    """The pool trusts a connection back for less than PING_AFTER_IDLE_SECONDS: the first
    request on a cut one is a 503 and drops every idle connection, so no later request
    finds another. The path runs only while the connections are that fresh, so each try
    measures it (every connection went back after `fresh_from`) and is retried, up to a
    bound, if the machine was too slow to get there in time."""
    live, product_id = pooled_server
    for _ in range(5):
        fresh_from = time.monotonic()
        _warm_up(live, product_id, requests=48)
        _cut_server_connections()
        statuses = [_get(live, product_id) for _ in range(20)]
        if time.monotonic() - fresh_from < PING_AFTER_IDLE_SECONDS * 0.8:
            break  # the first request certainly met a trusted, cut connection
        assert statuses == [200] * 20, statuses  # too late: pinged and replaced instead
    else:
        pytest.fail("could not reach a cut connection within the trust window in 5 tries")
    assert statuses == [503] + [200] * 19, statuses


def test_statements_are_prepared_once_per_connection_and_again_on_a_new_one(db):
    if not is_postgres():
        pytest.skip("server-side prepared statements are PostgreSQL's")
    mug = Product.create(name="Mug", price_cents=900, quantity=5)
    by_name = PreparedSelect(lambda p: Product.select().where(Product.name == p.name))

    def prepared_here() -> int:
        query = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s"
        return database.execute_sql(query, ('%"t1"."name" = $1%',)).fetchone()[0]

    with database.atomic() as transaction:  # PREPARE outlives the rollback
        assert by_name.first(name="Mug").id == mug.id
        transaction.rollback()
    assert by_name.first(name="Mug").id == mug.id
    assert by_name.first(name="Cup") is None
    assert prepared_here() == 1
    discard_connection()
    assert by_name.first(name="Mug").id == mug.id  # prepared again, not looked up
    assert prepared_here() == 1
