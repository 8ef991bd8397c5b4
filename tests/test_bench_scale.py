"""The shop `bench/run --scale` builds is a normal shopctl database: the real schema (its
indexes rebuilt from their own definitions), and every ledger invariant `doctor` checks
holds, so the benchmark's doctor figures measure a passing doctor. The build is
PostgreSQL SQL (generate_series, session_replication_role): PostgreSQL only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from shopctl.models import Order, Product, StockMovement, StripeEvent, User, utcnow

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))


@pytest.fixture
def scale_data(db, backend_url):
    if not backend_url.startswith("postgres"):
        pytest.skip("the scale build is PostgreSQL SQL")
    import scale_data

    return scale_data


def _indexes(db) -> set[str]:
    rows = db.execute_sql("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
    return {name for (name,) in rows.fetchall()}


def test_the_scale_build_is_a_shop_doctor_passes(scale_data, db, backend_url, cli):
    before = _indexes(db)
    db.close_all()  # the build's connection drops and rebuilds indexes: no lock held here
    shape = scale_data.build(backend_url, 200, "-", utcnow(), log=lambda line: None)
    assert (shape["products"], shape["orders"], shape["events"]) == (200, 400, 200)
    assert (Product.select().count(), Order.select().count()) == (200, 400)
    assert StripeEvent.select().count() == 200 and User.select().count() == 20
    assert StockMovement.select().count() > 400
    assert _indexes(db) == before
    for args in (("doctor", "--full", "--json"), ("doctor", "--json")):
        result = cli(*args)
        failed = [c for c in json.loads(result.output)["checks"] if not c["ok"]]
        # configuration may warn about test secrets; every data check must pass
        assert [c["name"] for c in failed if c["name"] != "configuration"] == [], failed
