"""Every case of the per-call path, against the real PostgreSQL: what ran and what the
server received.

sync (psycopg2) / async (asyncpg) x span recording or not x products registered or
the default only x outcome (tagged; the client's own exception; our tagging step
failing; a configuration error under ``strict``). The OpenTelemetry SDK is installed
for every case (the ``spans`` fixture) and recording is switched by ``spans=``, so no
case depends on which test ran before it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any, Callable

import pytest

import ua_autotag
from tests import pg
from ua_autotag import telemetry
from ua_autotag.engine import attribution
from ua_autotag.merge.libpq import merge_application_name
from ua_autotag.value import ConfigurationError

DEFAULT_UA = "AcmeDefault_Paths/1.0"
PRODUCT_UA = "AcmeProduct_Paths/2.0"
PRODUCT_PACKAGE = "tests_paths_product"

#: where each client's tagging step can be made to fail (a module global it calls)
STEP = {"sync": ("ua_autotag.integrations.psycopg2", "plan"),
        "async": ("ua_autotag.integrations.asyncpg", "merge_application_name")}
INTEGRATION = {"sync": "psycopg2", "async": "asyncpg"}


def _sync_connect(dbname: str, caller: str) -> str:
    import psycopg2

    conn = psycopg2.connect(
        f"host={pg.HOST} port={pg.PORT} user={pg.USER} dbname={dbname}", application_name=caller
    )
    try:
        with conn.cursor() as cur:
            cur.execute(pg.APPLICATION_NAME_SQL)
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def _async_connect(dbname: str, caller: str) -> str:
    import asyncpg

    async def run() -> str:
        conn = await asyncpg.connect(
            f"postgresql://{pg.USER}@{pg.HOST}:{pg.PORT}/{dbname}",
            server_settings={"application_name": caller},
        )
        try:
            return str(await conn.fetchval(pg.APPLICATION_NAME_SQL))
        finally:
            await conn.close()

    return asyncio.run(run())


def _from_product(fn: Callable[..., str]) -> Callable[..., str]:
    """``fn`` called from a frame of the registered product's package."""
    namespace: dict[str, Any] = {"__name__": f"{PRODUCT_PACKAGE}.app", "fn": fn}
    exec("def call(*args):\n    return fn(*args)\n", namespace)
    call: Callable[..., str] = namespace["call"]
    return call


@pytest.mark.parametrize("outcome", ["tagged", "client-error", "step-fails", "strict-error"])
@pytest.mark.parametrize("products", [False, True], ids=["default-only", "products"])
@pytest.mark.parametrize("recording", [False, True], ids=["no-span", "span"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_one_path(
    pg_dsn: str,
    spans: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    recording: bool,
    products: bool,
    outcome: str,
) -> None:
    import asyncpg  # noqa: F401 - both clients loaded: their integrations apply now
    import psycopg2  # noqa: F401

    strict = outcome == "strict-error"
    ua_autotag.instrument(DEFAULT_UA, spans=recording, strict=strict)
    if products:
        ua_autotag.instrument(
            PRODUCT_UA, packages=[PRODUCT_PACKAGE], spans=recording, strict=strict
        )
    expected_ua = PRODUCT_UA if products else DEFAULT_UA
    if outcome in ("step-fails", "strict-error"):
        module, name = STEP[kind]
        failure = ConfigurationError("ours broke") if strict else RuntimeError("ours broke")

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise failure

        monkeypatch.setattr(f"{module}.{name}", broken)

    connect = _sync_connect if kind == "sync" else _async_connect
    if products:
        connect = _from_product(connect)
    caller = f"caller-{uuid.uuid4().hex[:8]}"
    dbname = "ua_autotag_no_such_db" if outcome == "client-error" else pg.DBNAME

    caplog.set_level(logging.DEBUG, logger="ua_autotag")
    received = error = None
    try:
        received = connect(dbname, caller)
    except Exception as exc:
        error = exc

    # what the caller got, and what the server received
    if outcome == "tagged":
        assert error is None
        assert received == merge_application_name(caller, expected_ua, "append")
    elif outcome == "client-error":
        client_errors = {"sync": "psycopg2", "async": "asyncpg"}
        assert error is not None and type(error).__module__.startswith(client_errors[kind])
        assert "ua_autotag_no_such_db" in str(error)
    elif outcome == "step-fails":
        assert error is None
        assert received == caller  # the call went ahead, untagged
    else:
        assert error is failure  # the configuration error itself, nothing reached the server
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    if outcome == "step-fails":
        assert len(warnings) == 1 and "could not tag" in warnings[0].getMessage()
    else:
        assert warnings == []

    # which path ran: a span exactly when recording, carrying the outcome
    made = [
        s
        for s in spans.get_finished_spans()
        if s.attributes.get("ua_autotag.integration") == INTEGRATION[kind]
    ]
    if not recording:
        assert made == []
    else:
        assert len(made) == 1
        span = made[0]
        failed = outcome in ("client-error", "strict-error")
        assert span.status.status_code.name == ("ERROR" if failed else "UNSET")
        if outcome == "tagged":
            assert span.attributes["user_agent.original"] == received
    # nothing of the call is left in force: no decision, no open span
    assert telemetry.current() is None
    assert attribution.current() is not None
    assert attribution.current().user_agent.text == DEFAULT_UA  # type: ignore[union-attr]


@pytest.mark.parametrize("case", ["nothing-after", "span", "products"])
def test_an_async_call_with_nothing_after_the_await_gets_the_clients_own_coroutine(
    spans: Any, case: str
) -> None:
    """Nothing to do after the await (no span, no decision for inner layers): tagged in
    the caller's call, and the coroutine is the client's own (no coroutine of ours
    around it); a span or products registered: our body, awaited."""
    from asyncpg import connect_utils

    ua_autotag.instrument(DEFAULT_UA, spans=case == "span")
    if case == "products":
        ua_autotag.instrument(PRODUCT_UA, packages=[PRODUCT_PACKAGE], spans=False)
    coro = connect_utils._connect(
        loop=None,
        connection_class=None,
        record_class=None,
        dsn="postgresql://127.0.0.1/test",
        server_settings={"application_name": "app"},
    )
    try:
        own = coro.cr_code is connect_utils._connect.__wrapped__.__code__
        sent = coro.cr_frame.f_locals["kwargs"]["server_settings"] if own else None
    finally:
        coro.close()  # never awaited: nothing connects
    assert own == (case == "nothing-after")
    if own:  # tagged before the coroutine was made
        assert sent == {"application_name": merge_application_name("app", DEFAULT_UA, "append")}
