"""Issue 15 §2-3 over HTTP: the Databricks SDK, the SQL connector, requests and httpx
against the local header recorder; we assert the User-Agent the recorder received.

SDK clients (``WorkspaceClient``, ``ApiClient``/``Config``), ``requests.Session`` and
``httpx.Client`` created by a product's code send that product's value on every request,
whoever makes the request and on whatever thread; objects the customer created follow
the rule at request time. The recorder listens on 127.0.0.1, which every registration in
these tests lists in ``rest_hosts``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, Dict, Iterator, List, Optional

import pytest

import ua_autotag
from tests import databricks
from tests.attribution.conftest import ACME, GLOBEX, SCOPED, TOKEN, exactly_one
from ua_autotag.verify.http_peer import HeaderRecorder

ME = databricks.ME

# A failed SQL Connection.__init__ leaves an object whose __del__ raises AttributeError
# (the connector's own behaviour, with or without ua_autotag).
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture
def peer(http_peer: HeaderRecorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeaderRecorder]:
    """The workspace (answers SCIM Me); no DATABRICKS_* configuration from the environment."""
    yield databricks.workspace(http_peer, monkeypatch)


def one_agent(peer: HeaderRecorder, path: Optional[str] = None) -> str:
    """The single User-Agent the recorder got (on ``path``) since the last clear."""
    agents = peer.user_agents(path)
    assert agents, [r.path for r in peer.requests]
    assert len(set(agents)) == 1, agents
    return agents[0]


def me_agent(peer: HeaderRecorder, fn: Any, *args: Any) -> str:
    peer.clear()
    assert fn(*args) == "someone@example.com"
    return one_agent(peer, ME)


def on_thread(fn: Any, *args: Any) -> Any:
    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(fn, *args).result(timeout=60)


# ------------------------------------------------------------------ Databricks SDK


def test_sdk_client_made_by_product_used_by_customer(
    world: SimpleNamespace, peer: HeaderRecorder
) -> None:
    peer.clear()
    acme_client = world.acme.make_workspace(peer.url, TOKEN)
    for recorded in peer.requests:  # the /.well-known probe while the product built it
        exactly_one(recorded.user_agent, ACME)
    globex_client = world.globex.make_workspace(peer.url, TOKEN)
    exactly_one(me_agent(peer, world.customer.me, acme_client), ACME)
    exactly_one(me_agent(peer, world.customer.me, globex_client), GLOBEX)
    exactly_one(me_agent(peer, on_thread, world.customer.me, acme_client), ACME)
    # B's code using A's client: the client's pin wins over the stack
    exactly_one(me_agent(peer, world.globex.me, acme_client), ACME)


def test_sdk_client_made_by_customer_follows_the_stack(
    world: SimpleNamespace, peer: HeaderRecorder
) -> None:
    client = world.customer.make_workspace(peer.url, TOKEN)
    exactly_one(me_agent(peer, world.customer.me, client), world.default)
    exactly_one(me_agent(peer, world.acme.me, client), ACME)  # used from A's code: A's
    exactly_one(me_agent(peer, world.globex.me, client), GLOBEX)
    exactly_one(me_agent(peer, world.acme.thread_call, world.globex.me, client), GLOBEX)


def test_sdk_scope_wins_over_the_pin(world: SimpleNamespace, peer: HeaderRecorder) -> None:
    client = world.acme.make_workspace(peer.url, TOKEN)
    with ua_autotag.user_agent(SCOPED):
        exactly_one(me_agent(peer, world.customer.me, client), SCOPED)
    exactly_one(me_agent(peer, world.customer.me, client), ACME)


def test_sdk_config_and_api_client_made_by_product(
    world: SimpleNamespace, peer: HeaderRecorder
) -> None:
    config = world.globex.make_config(peer.url, TOKEN)
    exactly_one(str(config.user_agent), GLOBEX)  # read by the customer: the creator's
    exactly_one(on_thread(lambda: str(config.user_agent)), GLOBEX)
    api = world.globex.make_api_client(config)
    peer.clear()
    assert api.do("GET", ME)["userName"] == "someone@example.com"  # customer's request
    exactly_one(one_agent(peer, ME), GLOBEX)
    customer_config = world.customer.make_config(peer.url, TOKEN)
    exactly_one(str(customer_config.user_agent), world.default)
    exactly_one(str(world.acme.call(lambda: customer_config.user_agent)), ACME)


def test_sdk_client_built_by_customer_from_a_products_config(
    world: SimpleNamespace, peer: HeaderRecorder
) -> None:
    """§3 pins ``ApiClient``/``Config``: a product handing its Config to the customer."""
    from databricks.sdk import WorkspaceClient

    config = world.acme.make_config(peer.url, TOKEN)
    client = WorkspaceClient(config=config)  # the customer's line
    exactly_one(me_agent(peer, world.customer.me, client), ACME)


# ------------------------------------------------------------------ SQL connector


def thrift(peer: HeaderRecorder) -> Dict[str, Any]:
    return databricks.thrift(peer, TOKEN)


def sql_agent(peer: HeaderRecorder, fn: Any, *args: Any) -> str:
    """Connect through ``fn`` (the 404 peer makes it fail fast); the session's User-Agent."""
    from databricks.sql.exc import Error

    peer.clear()
    with pytest.raises(Error):
        fn(*args)
    return one_agent(peer, "/x")


def test_sql_connector_connection(world: SimpleNamespace, peer: HeaderRecorder) -> None:
    kwargs = thrift(peer)
    acme = sql_agent(peer, lambda: world.acme.sql_connect(**kwargs))
    assert f"({ACME})" in acme
    exactly_one(acme, ACME)
    exactly_one(sql_agent(peer, lambda: world.globex.sql_connect(**kwargs)), GLOBEX)
    exactly_one(sql_agent(peer, lambda: world.customer.sql_connect(**kwargs)), world.default)
    exactly_one(
        sql_agent(peer, world.acme.call, lambda: world.globex.sql_connect(**kwargs)), GLOBEX
    )
    exactly_one(sql_agent(peer, lambda: world.acme.thread_call(world.acme.sql_connect, **kwargs)),
                ACME)
    with ua_autotag.user_agent(SCOPED):
        exactly_one(sql_agent(peer, lambda: world.acme.sql_connect(**kwargs)), SCOPED)
    mine = sql_agent(peer, lambda: world.globex.sql_connect(user_agent_entry="loader", **kwargs))
    assert f"(loader {GLOBEX})" in mine  # the caller's entry kept, one product added
    exactly_one(mine, GLOBEX)


# ------------------------------------------------------------------ requests / httpx


def scoped_get(get: Any, client: Any, url: str) -> Any:
    with ua_autotag.user_agent(SCOPED):
        return get(client, url)


MAKERS = ["make_requests_session", "make_httpx_client"]


@pytest.mark.parametrize("maker", MAKERS)
def test_http_client_made_by_product_used_by_customer(
    world: SimpleNamespace, peer: HeaderRecorder, maker: str
) -> None:
    acme_client = getattr(world.acme, maker)()
    globex_client = getattr(world.globex, maker)()
    customer_client = getattr(world.customer, maker)()
    try:
        def agent(fn: Any, *args: Any) -> str:
            peer.clear()
            fn(*args)
            return one_agent(peer)

        get = world.customer.http_get
        exactly_one(agent(get, acme_client, peer.url), ACME)
        exactly_one(agent(get, globex_client, peer.url), GLOBEX)
        exactly_one(agent(on_thread, get, acme_client, peer.url), ACME)
        exactly_one(agent(world.globex.http_get, acme_client, peer.url), ACME)  # pin > stack
        # the customer's client: the rule at request time
        exactly_one(agent(get, customer_client, peer.url), world.default)
        exactly_one(agent(world.globex.http_get, customer_client, peer.url), GLOBEX)
        if world.default is not None:
            # a scope takes its options (rest_hosts here) from what applies where it is
            # entered: the default lists 127.0.0.1, the library defaults do not
            with ua_autotag.user_agent(SCOPED):
                exactly_one(agent(get, acme_client, peer.url), SCOPED)
        # a scope entered under A's code: A's options, the scope's value
        exactly_one(agent(world.acme.call, scoped_get, get, acme_client, peer.url), SCOPED)
    finally:
        for client in (acme_client, globex_client, customer_client):
            client.close()


def test_requests_module_functions_follow_the_stack(
    world: SimpleNamespace, peer: HeaderRecorder
) -> None:
    """``requests.get`` makes its Session inside the call: the caller's product."""
    agents: List[str] = []
    for fn in (world.acme.requests_get, world.globex.requests_get, world.customer.requests_get):
        peer.clear()
        fn(peer.url)
        agents.append(one_agent(peer))
    exactly_one(agents[0], ACME)
    exactly_one(agents[1], GLOBEX)
    exactly_one(agents[2], world.default)


def test_non_databricks_host_is_left_alone_by_products(
    world: SimpleNamespace, peer: HeaderRecorder
) -> None:
    """A product's rest_hosts decide for its own objects: ``localhost`` is not listed."""
    session = world.acme.make_requests_session()
    try:
        peer.clear()
        world.customer.http_get(session, f"http://localhost:{peer.port}")
        exactly_one(one_agent(peer), None)
    finally:
        session.close()


@pytest.mark.parametrize(
    "maker",
    ["make_requests_session", "make_httpx_client"],
)
def test_customer_client_first_used_by_a_product_then_by_the_customer(
    world: SimpleNamespace, peer: HeaderRecorder, maker: str
) -> None:
    """An object nobody's product created follows each request's caller, in any order."""
    client = getattr(world.customer, maker)()
    try:
        agents = []
        for fn in (world.globex.http_get, world.customer.http_get, world.acme.http_get):
            peer.clear()
            fn(client, peer.url)
            agents.append(one_agent(peer))
        exactly_one(agents[0], GLOBEX)
        exactly_one(agents[1], world.default)
        exactly_one(agents[2], ACME)
    finally:
        client.close()


def test_sdk_client_made_by_customer_first_used_by_a_product(
    world: SimpleNamespace, peer: HeaderRecorder
) -> None:
    client = world.customer.make_workspace(peer.url, TOKEN)
    exactly_one(me_agent(peer, world.globex.me, client), GLOBEX)
    exactly_one(me_agent(peer, world.customer.me, client), world.default)
    exactly_one(me_agent(peer, world.acme.me, client), ACME)
