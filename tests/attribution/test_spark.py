"""Issue 15 §3, Spark Connect: a session created by a product's code sends that product's
value on every request, whoever runs the actions and on whatever thread (real pyspark
client, the local Spark Connect gRPC peer, asserting the ``client_type`` it received).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, Iterator, List

import pytest

import ua_autotag
from tests.attribution.conftest import ACME, GLOBEX, SCOPED, exactly_one
from ua_autotag.verify.spark_peer import SparkConnectPeer

SUFFIX = re.compile(r" (?:dbconnect|spark)/")
ACME_36 = "AcmePartner_DatEngProduct/3.6"


@pytest.fixture(scope="module")
def spark_peer() -> Iterator[SparkConnectPeer]:
    with SparkConnectPeer() as server:
        yield server


@pytest.fixture
def sessions(spark_peer: SparkConnectPeer) -> Iterator[List[Any]]:
    made: List[Any] = []
    yield made
    for session in made:
        session.stop()


def user_parts(peer: SparkConnectPeer, spark: Any) -> List[str]:
    """The user part of the ``client_type`` of every request of ``spark``'s session."""
    sid = spark.session_id
    agents = [c.client_type for c in peer.requests if c.session_id == sid]
    assert agents, "no request of this session reached the peer"
    parts = []
    for agent in agents:
        found = SUFFIX.search(agent)
        assert found, agent
        parts.append(agent[: found.start()])
    return parts


def quiet(peer: SparkConnectPeer) -> None:
    """Wait until the peer got nothing for 0.3 s: pyspark sends the ``ReleaseExecute`` of an
    action from a background thread, after the action returned."""
    import time

    seen, still = -1, 0.0
    while still < 0.3:
        count = len(peer.requests)
        if count != seen:
            seen, still = count, 0.0
        time.sleep(0.05)
        still += 0.05


def act(peer: SparkConnectPeer, spark: Any, runner: Any = None) -> List[str]:
    """Run a real action (through ``runner``, e.g. another module or thread); the parts sent."""
    quiet(peer)
    peer.clear()
    if runner is None:
        assert spark.range(2).collect()[1].id == 1
    else:
        assert runner(spark) == [0, 1]
    return user_parts(peer, spark)


def single(parts: List[str]) -> str:
    assert len(set(parts)) == 1, parts
    return parts[0]


def test_session_made_by_product_used_by_customer(
    world: SimpleNamespace, spark_peer: SparkConnectPeer, sessions: List[Any]
) -> None:
    acme = world.acme.spark_session(spark_peer.url)
    globex = world.globex.spark_session(spark_peer.url)
    sessions += [acme, globex]
    assert single(act(spark_peer, acme, world.customer.spark_act)) == ACME
    assert single(act(spark_peer, globex, world.customer.spark_act)) == GLOBEX
    # B's code running actions on A's session: the session's product
    assert single(act(spark_peer, acme, world.globex.spark_act)) == ACME

    def on_thread(spark: Any) -> Any:
        with ThreadPoolExecutor(max_workers=1) as executor:
            return executor.submit(world.customer.spark_act, spark).result(timeout=60)

    assert single(act(spark_peer, globex, on_thread)) == GLOBEX
    for part in user_parts(spark_peer, globex):
        exactly_one(part, GLOBEX)


def test_session_made_by_customer(
    world: SimpleNamespace, spark_peer: SparkConnectPeer, sessions: List[Any]
) -> None:
    spark = world.customer.spark_session(spark_peer.url)
    sessions.append(spark)
    expected = world.default or "_SPARK_CONNECT_PYTHON"  # pyspark's own placeholder
    assert single(act(spark_peer, spark, world.customer.spark_act)) == expected


def test_session_made_inside_a_scope_keeps_the_scope(
    world: SimpleNamespace, spark_peer: SparkConnectPeer, sessions: List[Any]
) -> None:
    with ua_autotag.user_agent(SCOPED):
        spark = world.acme.spark_session(spark_peer.url)
    sessions.append(spark)
    assert single(act(spark_peer, spark, world.customer.spark_act)) == SCOPED


#: integration spark_connect: ``_on_session`` stores the *Settings* in force at creation on
#: the channel builder (``CAPTURED``) and ``session_settings`` returns them for as long as
#: anything is instrumented, so the session never follows its product (unlike pins, which
#: hold the Product): a re-target or an ``uninstrument(packages=...)`` does not reach it.


def test_retarget_reaches_a_session_made_before(
    world: SimpleNamespace, spark_peer: SparkConnectPeer, sessions: List[Any]
) -> None:
    """§1: calling instrument() again for the same packages re-targets that product."""
    spark = world.acme.spark_session(spark_peer.url)
    sessions.append(spark)
    assert single(act(spark_peer, spark)) == ACME
    quiet(spark_peer)  # the first action's last request left before the re-target
    ua_autotag.instrument(ACME_36, packages=["acme_dateng"], rest_hosts=["127.0.0.1"])
    assert single(act(spark_peer, spark)) == ACME_36


def test_uninstrumented_product_session_stops_sending_its_value(
    world: SimpleNamespace, spark_peer: SparkConnectPeer, sessions: List[Any]
) -> None:
    """§1: removing one product's registration: its session no longer carries its value;
    the other product's session keeps working."""
    acme = world.acme.spark_session(spark_peer.url)
    globex = world.globex.spark_session(spark_peer.url)
    sessions += [acme, globex]
    ua_autotag.uninstrument(packages=["acme_dateng"])
    assert single(act(spark_peer, globex)) == GLOBEX
    assert single(act(spark_peer, acme)) == (world.default or "_SPARK_CONNECT_PYTHON")
