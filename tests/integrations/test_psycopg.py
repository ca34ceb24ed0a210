"""psycopg 3 against the real local PostgreSQL: what the server records as application_name.

The matrix (in test_pg_matrix.py, shared by the three drivers): entry point
(psycopg.connect, ``from psycopg import connect`` bound early, Connection.connect,
AsyncConnection.connect, ConnectionPool, AsyncConnectionPool) x where the caller's value
comes from (conninfo, URI, keywords, PGAPPNAME) x user value (none / short / long / non-
ASCII) x mode, with psycopg imported before instrument() (in-process) and after it (a fresh
interpreter, ``test_matrix_client_imported_after``).
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any, Optional

import psycopg
import psycopg_pool
import pytest
from packaging.version import Version
from psycopg import connect as early_connect  # bound when this module is imported
from psycopg.conninfo import make_conninfo

import ua_autotag
from tests import pg
from tests.integrations.pgmatrix import (
    LONG,
    LONG_APPENDED,
    OTHER,
    SECRET,
    UA,
    cases,
    check_failed_span_clean,
    connect_spans,
    pgappname_env,
    run_with_value,
)

INTEGRATIONS = ("psycopg",)
ENTRIES = (
    "psycopg.connect", "early_connect", "Connection.connect", "AsyncConnection.connect",
    "ConnectionPool", "AsyncConnectionPool",
)
SOURCES = ("conninfo", "uri", "kwargs", "env")
CASES = cases(ENTRIES, SOURCES)
#: psycopg 3.2 tries each host itself and added cancel_safe() (the matrix runs 3.1 too)
PSYCOPG_32 = Version(psycopg.__version__) >= Version("3.2")


def conn_args(source: str, value: Optional[str]) -> tuple[str, dict[str, Any]]:
    """(conninfo, keywords) that give ``value`` through ``source`` (env: see run_case)."""
    if value is None or source == "env":
        return pg.DSN, {}
    if source == "conninfo":
        return make_conninfo(pg.DSN, application_name=value), {}
    if source == "uri":
        return f"{pg.URI}?application_name={urllib.parse.quote(value)}", {}
    return pg.DSN, {"application_name": value}


def read_sync(conn: Any) -> str:
    row = conn.execute(pg.APPLICATION_NAME_SQL).fetchone()
    return str(row[0])


async def read_async(conn: Any) -> str:
    cur = await conn.execute(pg.APPLICATION_NAME_SQL)
    row = await cur.fetchone()
    return str(row[0])


def open_and_read(entry: str, conninfo: str, kwargs: dict[str, Any]) -> str:
    """Open one connection through ``entry`` and return what the server calls it."""
    if entry in ("psycopg.connect", "early_connect", "Connection.connect"):
        fn = {"psycopg.connect": psycopg.connect, "early_connect": early_connect,
              "Connection.connect": psycopg.Connection.connect}[entry]
        with fn(conninfo, **kwargs) as conn:
            return read_sync(conn)
    if entry == "ConnectionPool":
        with psycopg_pool.ConnectionPool(
            conninfo, kwargs=kwargs, min_size=1, max_size=1, open=False
        ) as pool, pool.connection() as conn:
            return read_sync(conn)

    async def run() -> str:
        if entry == "AsyncConnection.connect":
            async with await psycopg.AsyncConnection.connect(conninfo, **kwargs) as conn:
                return await read_async(conn)
        async with psycopg_pool.AsyncConnectionPool(
            conninfo, kwargs=kwargs, min_size=1, max_size=1, open=False
        ) as pool, pool.connection() as conn:
            return await read_async(conn)

    return asyncio.run(run())


def run_case(entry: str, source: str, kind: str) -> str:
    return run_with_value(conn_args, open_and_read, entry, source, kind)


# ------------------------------------------------------------------ precedence (libpq's)


@pytest.mark.parametrize(
    ("conninfo_extra", "kwargs", "env", "expected"),
    [
        # keyword > conninfo > PGAPPNAME > fallback_application_name
        ("application_name=ci", {"application_name": "kw"}, "envapp", f"kw {UA}"),
        ("application_name=ci", {}, "envapp", f"ci {UA}"),
        ("", {"fallback_application_name": "fb"}, "envapp", f"envapp {UA}"),
        ("fallback_application_name=fb", {}, None, f"fb {UA}"),
        # an explicit empty value hides PGAPPNAME (libpq sends ""): nothing to keep
        ("application_name=''", {}, "envapp", UA),
        # a keyword None is dropped by psycopg: PGAPPNAME is the caller's value again
        ("", {"application_name": None}, "envapp", f"envapp {UA}"),
        # our value already there (e.g. exported by the launcher): never twice
        ("", {}, f"envapp {UA}", f"envapp {UA}"),
        (f"application_name='{UA}'", {}, None, UA),
    ],
)
def test_precedence_append(
    conninfo_extra: str, kwargs: dict[str, Any], env: Optional[str], expected: str, pg_dsn: str
) -> None:
    ua_autotag.instrument(UA)
    with pgappname_env(env), psycopg.connect(f"{pg.DSN} {conninfo_extra}", **kwargs) as conn:
        assert read_sync(conn) == expected


@pytest.mark.parametrize(("mode", "expected"), [("keep", "envapp"), ("replace", UA)])
def test_pgappname_is_the_callers_value_for_keep_and_replace(
    mode: str, expected: str, pg_dsn: str
) -> None:
    ua_autotag.instrument(UA, mode=mode)
    with pgappname_env("envapp"), psycopg.connect(pg.DSN) as conn:
        assert read_sync(conn) == expected


def test_long_value_is_cut_on_our_side_with_a_debug_log(
    pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    ua_autotag.instrument(UA)
    with caplog.at_level(logging.DEBUG, logger="ua_autotag"), psycopg.connect(
        pg.DSN, application_name=LONG
    ) as conn:
        assert read_sync(conn) == LONG_APPENDED
    assert "application_name cut to fit 63 bytes" in caplog.text


def test_uninstrumented_passes_through(pg_dsn: str) -> None:
    with psycopg.connect(pg.DSN, application_name="plain") as conn:
        assert read_sync(conn) == "plain"
    ua_autotag.instrument(UA)
    ua_autotag.uninstrument()
    with psycopg.connect(pg.DSN) as conn:
        assert read_sync(conn) == ""


# ----------------------------------------------------------------------- scoped value


def test_scoped_override_applies_per_connection(pg_dsn: str) -> None:
    ua_autotag.instrument(UA)
    with ua_autotag.user_agent(OTHER), psycopg.connect(pg.DSN, application_name="a") as conn:
        assert read_sync(conn) == f"a {OTHER}"
    with psycopg.connect(pg.DSN, application_name="a") as conn:
        assert read_sync(conn) == f"a {UA}"


def test_scoped_override_per_asyncio_task(pg_dsn: str) -> None:
    ua_autotag.instrument(UA)

    async def one(value: Optional[str]) -> str:
        if value is None:
            async with await psycopg.AsyncConnection.connect(pg.DSN) as conn:
                return await read_async(conn)
        with ua_autotag.user_agent(value):
            async with await psycopg.AsyncConnection.connect(pg.DSN) as conn:
                await asyncio.sleep(0.01)  # interleave the tasks
                return await read_async(conn)

    async def main() -> list[str]:
        return list(await asyncio.gather(one("Isv1_P/1"), one(None), one("Isv2_P/2")))

    assert asyncio.run(main()) == ["Isv1_P/1", UA, "Isv2_P/2"]


def test_scope_reaches_an_async_pool_opened_inside_it(pg_dsn: str) -> None:
    """Pool workers are tasks created at open(): they carry the scope of that moment.

    (psycopg_pool's *sync* pool connects from worker threads, which start with an empty
    context: those connections carry the process-wide value; see the README.)
    """
    ua_autotag.instrument(UA)

    async def run() -> str:
        with ua_autotag.user_agent(OTHER):
            async with psycopg_pool.AsyncConnectionPool(
                pg.DSN, min_size=1, max_size=1, open=False
            ) as pool, pool.connection() as conn:
                return await read_async(conn)

    assert asyncio.run(run()) == OTHER


# ------------------------------------------------------------- failures and secrets


@pytest.mark.parametrize("shape", ["conninfo", "uri", "kwargs"])
def test_no_secret_in_spans_or_logs(
    shape: str, pg_dsn: str, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ua_autotag.instrument(UA)
    good = {
        "conninfo": (f"{pg.DSN} password={SECRET}", {}),
        "uri": (f"postgresql://{pg.USER}:{SECRET}@{pg.HOST}:{pg.PORT}/{pg.DBNAME}", {}),
        "kwargs": (pg.DSN, {"password": SECRET}),
    }[shape]
    with caplog.at_level(logging.DEBUG, logger="ua_autotag"):
        with psycopg.connect(good[0], **good[1]) as conn:  # trust auth: password unused
            assert read_sync(conn) == UA
        bad_conninfo = good[0].replace(str(pg.PORT), "1")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(bad_conninfo, connect_timeout=2, **good[1])
    made = check_failed_span_clean(spans, "psycopg", caplog.text)
    assert made[1].attributes["error.type"] == "OperationalError"


def test_failed_connect_reraises_the_original_exception(pg_dsn: str, spans: Any) -> None:
    bad = pg.DSN.replace(str(pg.PORT), "1")
    with pytest.raises(psycopg.OperationalError) as plain:
        psycopg.connect(bad, connect_timeout=2)
    ua_autotag.instrument(UA)
    with pytest.raises(psycopg.OperationalError) as tagged:
        psycopg.connect(bad, connect_timeout=2)
    assert type(tagged.value) is type(plain.value)
    assert str(tagged.value) == str(plain.value)
    (span,) = connect_spans(spans, "psycopg")
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["user_agent.original"] == UA

    async def run() -> None:
        await psycopg.AsyncConnection.connect(bad, connect_timeout=2)

    with pytest.raises(psycopg.OperationalError):
        asyncio.run(run())
    assert len(connect_spans(spans, "psycopg")) == 2


def test_early_bound_connect_spans_each_attempt_and_not_cancels(
    pg_dsn: str, spans: Any
) -> None:
    ua_autotag.instrument(UA)
    multi = f"host={pg.HOST},{pg.HOST} port=1,{pg.PORT} user={pg.USER} dbname={pg.DBNAME}"
    with early_connect(multi, application_name="mh") as conn:  # port 1 refused, then ok
        assert read_sync(conn) == f"mh {UA}"
        if PSYCOPG_32:  # 3.1 has no cancel_safe()
            assert psycopg.capabilities.has_cancel_safe()  # so cancel_safe() uses wait_conn
            conn.cancel_safe()  # goes through wait_conn too: no span
    made = connect_spans(spans, "psycopg")
    # psycopg >= 3.2 tries the hosts itself, one wait_conn (and span) each; 3.1 leaves
    # the hosts to libpq inside a single wait_conn
    expected = ["ERROR", "UNSET"] if PSYCOPG_32 else ["UNSET"]
    assert [s.status.status_code.name for s in made] == expected
    assert all(s.attributes["user_agent.original"] == f"mh {UA}" for s in made)
    spans.clear()
    with psycopg.connect(multi, application_name="mh") as conn:  # wrapped: one span
        assert read_sync(conn) == f"mh {UA}"
    (span,) = connect_spans(spans, "psycopg")
    assert span.status.status_code.name == "UNSET"

    # a failed early-bound connect leaves nothing that a later connect would pick up
    spans.clear()
    with pytest.raises(psycopg.OperationalError):
        early_connect(pg.DSN.replace(str(pg.PORT), "1"), connect_timeout=2)
    with psycopg.connect(pg.DSN, application_name="later") as conn:
        assert read_sync(conn) == f"later {UA}"
    first, second = connect_spans(spans, "psycopg")
    assert (first.attributes["server.port"], second.attributes["server.port"]) == (1, pg.PORT)
    assert second.attributes["user_agent.original"] == f"later {UA}"


def test_spans_off_still_tags(pg_dsn: str, spans: Any) -> None:
    ua_autotag.instrument(UA, spans=False)
    with psycopg.connect(pg.DSN) as conn:
        assert read_sync(conn) == UA
    assert connect_spans(spans, "psycopg") == []


# ------------------------------------------------------------------------ uninstrument


def _originals() -> dict[str, Any]:
    return {
        "psycopg.connect": vars(psycopg)["connect"],
        "Connection.connect": vars(psycopg.Connection)["connect"],
        "AsyncConnection.connect": vars(psycopg.AsyncConnection)["connect"],
        "Connection._get_connection_params": vars(psycopg.Connection)["_get_connection_params"],
        "AsyncConnection._get_connection_params":
            vars(psycopg.AsyncConnection)["_get_connection_params"],
        "waiting.wait_conn": vars(psycopg.waiting)["wait_conn"],
        "waiting.wait_conn_async": vars(psycopg.waiting)["wait_conn_async"],
    }


def test_uninstrument_restores_originals_by_identity(pg_dsn: str) -> None:
    before = _originals()
    ua_autotag.instrument(UA)
    patched = _originals()
    assert all(patched[k] is not before[k] for k in before), "every target is wrapped"
    ua_autotag.uninstrument()
    after = _originals()
    assert all(after[k] is before[k] for k in before)
    with psycopg.connect(pg.DSN) as conn:
        assert read_sync(conn) == ""


def test_fallback_without_get_connection_params(pg_dsn: str) -> None:
    """The connect-level rewrite used if a psycopg drops the private hook."""
    from ua_autotag.integrations import psycopg as integration
    from ua_autotag.spec import Tag

    settings = ua_autotag.instrument(UA)
    ua_autotag.uninstrument()

    class NoHook:  # what the wrapper sees as ``instance`` on such a psycopg
        pass

    tag = Tag(settings.user_agent, UA, settings)
    args, kwargs = integration._before_connect(
        tag, NoHook, (f"{pg.DSN} application_name=mine",),
        {"autocommit": True, "sslmode": "disable"},
    )
    assert kwargs == {"autocommit": True}
    with psycopg.connect(*args, **kwargs) as conn:
        assert read_sync(conn) == f"mine {UA}"
        assert conn.autocommit
        assert conn.info.get_parameters()["sslmode"] == "disable"
