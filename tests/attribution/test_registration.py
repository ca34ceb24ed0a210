"""Issue 15 §1 and §5: registering, re-targeting and removing products; what status(),
spans and the counter show. In-process, with the real clients against the real peers.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterator, Tuple

import pytest

import ua_autotag
from tests import databricks, pg
from tests.attribution.conftest import ACME, DEFAULT, GLOBEX, TOKEN, exactly_one, untouched
from ua_autotag.verify.http_peer import HeaderRecorder

ACME_36 = "AcmePartner_DatEngProduct/3.6"
ME = databricks.ME


# ------------------------------------------------------------------ claimed twice


def test_package_claimed_by_two_products_is_an_error_naming_both(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    with pytest.raises(ua_autotag.ConfigurationError) as info:
        ua_autotag.instrument(GLOBEX, packages=["acme_dateng"])
    message = str(info.value)
    assert ACME in message and GLOBEX in message and "acme_dateng" in message
    assert "acme_dateng/__init__.py" in message  # where the first claim was made
    # nothing changed
    products = {p.user_agent: p.packages for p in ua_autotag.status().products}
    assert products == {ACME: ("acme_dateng",), GLOBEX: ("globex_loader",)}
    assert world.acme.psycopg_name(pg_dsn) == ACME
    assert world.globex.psycopg_name(pg_dsn) == GLOBEX


def test_claiming_a_package_among_others_changes_nothing(world: SimpleNamespace) -> None:
    """The error is all-or-nothing: the free package of the same call is not taken either."""
    with pytest.raises(ua_autotag.ConfigurationError):
        ua_autotag.instrument(GLOBEX, packages=["globex_extra", "acme_dateng"])
    assert {p.user_agent: p.packages for p in ua_autotag.status().products} == {
        ACME: ("acme_dateng",),
        GLOBEX: ("globex_loader",),
    }


def test_every_value_rule_applies_per_product() -> None:
    with pytest.raises(ua_autotag.InvalidUserAgent):
        ua_autotag.instrument("no-underscore/1.0", packages=["some_lib"])
    with pytest.raises(ua_autotag.InvalidUserAgent):
        ua_autotag.instrument("Acme_" + "x" * 70, packages=["some_lib"])  # > 63 bytes (libpq)
    with pytest.raises(ua_autotag.ConfigurationError):
        ua_autotag.instrument(ACME, packages=["not a module name"])
    assert ua_autotag.status().products == []


# ------------------------------------------------------------------ re-target


@pytest.fixture
def sdk_peer(http_peer: HeaderRecorder, monkeypatch: pytest.MonkeyPatch) -> HeaderRecorder:
    return databricks.workspace(http_peer, monkeypatch)


def _objects(world: SimpleNamespace, ops: Any, peer: HeaderRecorder, pg_dsn: str) -> Dict[str, Any]:
    """Long-lived objects made by ``ops``'s code."""
    url = pg.URI.replace("postgresql://", "postgresql+psycopg://")
    return {
        "engine": ops.make_engine(url),
        "pool": ops.make_threaded_pool(pg_dsn, 0, 4),
        "sdk": ops.make_workspace(peer.url, TOKEN),
        "session": ops.make_requests_session(),
        "httpx": ops.make_httpx_client(),
    }


def _seen(objects: Dict[str, Any], peer: HeaderRecorder, customer: Any) -> Dict[str, str]:
    """What each object's next connection / request carries, used by the customer."""
    engine = objects["engine"]
    engine.dispose()
    with engine.connect() as conn:
        engine_name = conn.exec_driver_sql(pg.APPLICATION_NAME_SQL).scalar()
    pool = objects["pool"]
    conn = pool.getconn()
    cur = conn.cursor()
    cur.execute(pg.APPLICATION_NAME_SQL)
    pool_name = cur.fetchone()[0]
    pool.putconn(conn, close=True)
    seen = {"engine": engine_name, "pool": pool_name}
    for key in ("sdk", "session", "httpx"):
        peer.clear()
        if key == "sdk":
            customer.me(objects[key])
            (seen[key],) = peer.user_agents(ME)
        else:
            customer.http_get(objects[key], peer.url)
            (seen[key],) = peer.user_agents()
    return seen


def _close(objects: Dict[str, Any]) -> None:
    objects["engine"].dispose()
    objects["pool"].closeall()
    objects["session"].close()
    objects["httpx"].close()


def test_same_product_registering_again_retargets_objects_made_before(
    world: SimpleNamespace, sdk_peer: HeaderRecorder, pg_dsn: str
) -> None:
    objects = _objects(world, world.acme, sdk_peer, pg_dsn)
    try:
        before = _seen(objects, sdk_peer, world.customer)
        assert before["engine"] == before["pool"] == ACME
        for key in ("sdk", "session", "httpx"):
            exactly_one(before[key], ACME)
        ua_autotag.instrument(ACME_36, packages=["acme_dateng"], rest_hosts=["127.0.0.1"])
        after = _seen(objects, sdk_peer, world.customer)
        assert after["engine"] == after["pool"] == ACME_36
        for key in ("sdk", "session", "httpx"):
            exactly_one(after[key], ACME_36)
        assert world.acme.psycopg_name(pg_dsn) == ACME_36  # the stack rule too
        assert world.globex.psycopg_name(pg_dsn) == GLOBEX
        assert [p.user_agent for p in ua_autotag.status().products] == [ACME_36, GLOBEX]
    finally:
        _close(objects)


def test_uninstrument_one_product_the_other_keeps_working(
    world: SimpleNamespace, sdk_peer: HeaderRecorder, pg_dsn: str
) -> None:
    globex_objects = _objects(world, world.globex, sdk_peer, pg_dsn)
    acme_objects = _objects(world, world.acme, sdk_peer, pg_dsn)
    try:
        ua_autotag.uninstrument(packages=["globex_loader"])
        assert [p.user_agent for p in ua_autotag.status().products] == [ACME]
        assert ua_autotag.status()["psycopg"].state == "patched"
        # B's code and B's objects: now like the customer's
        assert world.globex.psycopg_name(pg_dsn) == untouched(world.default)
        assert world.globex.psycopg2_name(pg_dsn) == untouched(world.default)
        gone = _seen(globex_objects, sdk_peer, world.customer)
        assert gone["engine"] == gone["pool"] == untouched(world.default)
        for key in ("sdk", "session", "httpx"):
            exactly_one(gone[key], world.default)
        # A is untouched by B's removal
        assert world.acme.psycopg_name(pg_dsn) == ACME
        kept = _seen(acme_objects, sdk_peer, world.customer)
        assert kept["engine"] == kept["pool"] == ACME
        for key in ("sdk", "session", "httpx"):
            exactly_one(kept[key], ACME)
        # and B may register again
        ua_autotag.instrument(GLOBEX, packages=["globex_loader"])
        assert world.globex.psycopg_name(pg_dsn) == GLOBEX
    finally:
        _close(globex_objects)
        _close(acme_objects)


def test_uninstrument_the_last_product_keeps_the_default(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    ua_autotag.uninstrument(packages=["acme_dateng", "globex_loader"])
    assert ua_autotag.status().products == []
    assert ua_autotag.is_instrumented() is (world.default is not None)
    assert world.acme.psycopg_name(pg_dsn) == untouched(world.default)


# ------------------------------------------------------------------ seen from outside


def test_status_lists_the_products_with_packages_and_origin(world: SimpleNamespace) -> None:
    status = ua_autotag.status()
    by_value = {p.user_agent: p for p in status.products}
    assert set(by_value) == {ACME, GLOBEX}
    assert by_value[ACME].packages == ("acme_dateng",)
    assert by_value[GLOBEX].packages == ("globex_loader",)
    for package, product in (("acme_dateng", by_value[ACME]), ("globex_loader", by_value[GLOBEX])):
        assert product.origin is not None
        path, _, line = product.origin.rpartition(":")
        assert Path(path) == world.dir / package / "__init__.py" and int(line) == 4
        assert product.as_dict()["packages"] == [package]
    if world.default is None:
        assert status.default is None
    else:
        assert status.default is not None and status.default.user_agent == DEFAULT
        assert status.default.packages == ()


def _points(spans: Any) -> Dict[Tuple[str, str], int]:
    data = spans.metric_reader.get_metrics_data()
    found: Dict[Tuple[str, str], int] = {}
    if data is None:
        return found
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != "ua_autotag.connections":
                    continue
                for point in metric.data.data_points:
                    attrs = dict(point.attributes)
                    if attrs.get("outcome") != "ok":
                        continue
                    key = (attrs["ua_autotag.integration"], attrs["ua_autotag.product"])
                    found[key] = found.get(key, 0) + point.value
    return found


def test_spans_carry_the_products_packages_and_the_counter_is_split(
    world: SimpleNamespace, pg_dsn: str, spans: Any
) -> None:
    before = _points(spans)
    world.acme.psycopg_name(pg_dsn)
    world.acme.psycopg_name(pg_dsn)
    world.globex.psycopg_name(pg_dsn)
    world.acme.call(world.globex.psycopg2_name, pg_dsn)
    world.customer.psycopg_name(pg_dsn)
    ours = [s for s in spans.get_finished_spans() if s.attributes.get("ua_autotag.integration")]
    got = [
        (
            s.attributes["ua_autotag.integration"],
            s.attributes["ua_autotag.product"],
            tuple(s.attributes.get("ua_autotag.product.packages", ())),
            s.attributes.get("user_agent.original"),
        )
        for s in ours
    ]
    expected = [
        ("psycopg", "AcmePartner_DatEngProduct", ("acme_dateng",), ACME),
        ("psycopg", "AcmePartner_DatEngProduct", ("acme_dateng",), ACME),
        ("psycopg", "Globex_Loader", ("globex_loader",), GLOBEX),
        ("psycopg2", "Globex_Loader", ("globex_loader",), GLOBEX),
    ]
    if world.default is not None:  # the customer's connection: the default, no packages
        expected.append(("psycopg", "InitechCorp_Platform", (), DEFAULT))
    assert got == expected  # untouched connections get no span
    after = _points(spans)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    assert delta.get(("psycopg", "AcmePartner_DatEngProduct")) == 2
    assert delta.get(("psycopg", "Globex_Loader")) == 1
    assert delta.get(("psycopg2", "Globex_Loader")) == 1
    assert delta.get(("psycopg", "InitechCorp_Platform"), 0) == (1 if world.default else 0)


# ------------------------------------------------------------------ identical code


@pytest.fixture
def twin(tmp_path: Path, no_pg_env: None) -> Iterator[SimpleNamespace]:
    """A product and a customer module whose functions are byte-identical, line for line."""
    source = (
        "import psycopg\n"
        "SQL = " + repr(pg.APPLICATION_NAME_SQL) + "\n\n\n"
        "def name(dsn):\n"
        "    with psycopg.connect(dsn) as conn:\n"
        "        return conn.execute(SQL).fetchone()[0]\n"
    )
    (tmp_path / "twin_product").mkdir()
    (tmp_path / "twin_product" / "__init__.py").write_text(
        "import ua_autotag\n"
        f"ua_autotag.instrument({ACME!r}, packages=[__name__])\n"
    )
    (tmp_path / "twin_product" / "db.py").write_text(source)
    (tmp_path / "twin_customer.py").write_text(source)
    sys.path.insert(0, str(tmp_path))
    try:
        yield SimpleNamespace(
            product=importlib.import_module("twin_product.db"),
            customer=importlib.import_module("twin_customer"),
        )
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("twin_product", "twin_product.db", "twin_customer"):
            sys.modules.pop(name, None)


@pytest.mark.parametrize("first", ["product", "customer"])
def test_identical_code_in_a_product_and_in_customer_code(
    twin: SimpleNamespace, pg_dsn: str, first: str
) -> None:
    """Vendored or generated helpers are often identical: each module is still its own."""
    order = [twin.product, twin.customer] if first == "product" else [twin.customer, twin.product]
    got = {module.__name__: module.name(pg_dsn) for module in order}
    assert got == {"twin_product.db": ACME, "twin_customer": ""}
