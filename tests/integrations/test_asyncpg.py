"""asyncpg against the real local PostgreSQL: what the server records as application_name.

The matrix (in test_pg_matrix.py, shared by the three drivers): entry point
(asyncpg.connect, ``from asyncpg import connect`` bound early, create_pool) x source of the
caller's value (``server_settings``, URI query, PGAPPNAME) x user value x mode, with asyncpg
imported before instrument() (in-process) and after it (fresh interpreter). asyncpg itself
ignores PGAPPNAME, so a value there is no caller value: the server sees ours alone, as it
would have seen nothing.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from typing import Any, Optional

import asyncpg
import pytest
from asyncpg import connect as early_connect  # bound when this module is imported

import ua_autotag
from tests import pg
from tests.integrations.pgmatrix import (
    OTHER,
    SECRET,
    UA,
    cases,
    check_failed_span_clean,
    connect_spans,
    run_with_value,
)

INTEGRATIONS = ("asyncpg",)
ENTRIES = ("asyncpg.connect", "early_connect", "create_pool")
SOURCES = ("server_settings", "uri", "env")
CASES = cases(ENTRIES, SOURCES)
#: asyncpg ignores PGAPPNAME: a value there is no caller value (ours is sent alone)
UNREAD_SOURCES = ("env",)


def conn_args(source: str, value: Optional[str]) -> tuple[str, dict[str, Any]]:
    if value is None or source == "env":
        return pg.URI, {}
    if source == "uri":
        return f"{pg.URI}?application_name={urllib.parse.quote(value)}", {}
    return pg.URI, {"server_settings": {"application_name": value, "search_path": "public"}}


async def read(conn: Any) -> str:
    return str(await conn.fetchval(pg.APPLICATION_NAME_SQL))


async def open_and_read(entry: str, dsn: str, kwargs: dict[str, Any]) -> str:
    if entry == "create_pool":
        async with asyncpg.create_pool(dsn, min_size=1, max_size=1, **kwargs) as pool, \
                pool.acquire() as conn:
            return await read(conn)
    fn = asyncpg.connect if entry == "asyncpg.connect" else early_connect
    conn = await fn(dsn, **kwargs)
    try:
        return await read(conn)
    finally:
        await conn.close()


def run_case(entry: str, source: str, kind: str) -> str:
    return run_with_value(conn_args, open_and_read, entry, source, kind)


def test_server_settings_beat_the_uri_and_other_settings_survive(pg_dsn: str) -> None:
    ua_autotag.instrument(UA)
    settings = {"application_name": "ss", "search_path": "pg_catalog"}

    async def run() -> tuple[str, str]:
        conn = await asyncpg.connect(f"{pg.URI}?application_name=uri", server_settings=settings)
        try:
            return await read(conn), str(await conn.fetchval("SHOW search_path"))
        finally:
            await conn.close()

    assert asyncio.run(run()) == (f"ss {UA}", "pg_catalog")
    assert settings == {"application_name": "ss", "search_path": "pg_catalog"}  # not mutated


def test_keyword_host_and_port(pg_dsn: str, spans: Any) -> None:
    ua_autotag.instrument(UA)

    async def run() -> str:
        conn = await asyncpg.connect(host=pg.HOST, port=pg.PORT, user=pg.USER,
                                     database=pg.DBNAME)
        try:
            return await read(conn)
        finally:
            await conn.close()

    assert asyncio.run(run()) == UA
    (span,) = connect_spans(spans, "asyncpg")
    assert (span.attributes["server.address"], span.attributes["server.port"]) == (
        pg.HOST, pg.PORT)


def test_pool_built_before_instrument(pg_dsn: str, spans: Any) -> None:
    """A Pool binds ``connection.connect`` when built; its connections are still tagged."""

    async def run() -> list[str]:
        pool = asyncpg.create_pool(pg.URI, min_size=2, max_size=2)  # not connected yet
        ua_autotag.instrument(UA)
        async with pool, pool.acquire() as a, pool.acquire() as b:
            return [await read(a), await read(b)]

    assert asyncio.run(run()) == [UA, UA]
    assert len(connect_spans(spans, "asyncpg")) == 2  # one per physical connection


def test_scoped_override_per_task(pg_dsn: str) -> None:
    ua_autotag.instrument(UA)

    async def one(value: Optional[str]) -> str:
        if value is None:
            return await open_and_read("asyncpg.connect", pg.URI, {})
        with ua_autotag.user_agent(value):
            return await open_and_read("asyncpg.connect", pg.URI, {})

    async def main() -> list[str]:
        return list(await asyncio.gather(one(OTHER), one(None), one("Isv2_P/2")))

    assert asyncio.run(main()) == [OTHER, UA, "Isv2_P/2"]


@pytest.mark.parametrize("shape", ["uri", "kwargs"])
def test_no_secret_in_spans_or_logs(
    shape: str, pg_dsn: str, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ua_autotag.instrument(UA)
    dsn, kwargs = {
        "uri": (f"postgresql://{pg.USER}:{SECRET}@{pg.HOST}:{pg.PORT}/{pg.DBNAME}", {}),
        "kwargs": (pg.URI, {"password": SECRET}),
    }[shape]

    async def run() -> str:
        value = await open_and_read("asyncpg.connect", dsn, kwargs)
        with pytest.raises(OSError):
            await asyncpg.connect(dsn.replace(str(pg.PORT), "1"), timeout=2, **kwargs)
        return value

    with caplog.at_level(logging.DEBUG, logger="ua_autotag"):
        assert asyncio.run(run()) == UA
    check_failed_span_clean(spans, "asyncpg", caplog.text)


def test_failed_connect_reraises_the_original_exception(pg_dsn: str, spans: Any) -> None:
    bad = pg.URI.replace(str(pg.PORT), "1")

    async def attempt() -> BaseException:
        try:
            await asyncpg.connect(bad, timeout=2)
        except BaseException as exc:
            return exc
        raise AssertionError("connected to port 1?")

    plain = asyncio.run(attempt())
    ua_autotag.instrument(UA)
    tagged = asyncio.run(attempt())
    assert type(tagged) is type(plain)
    assert str(tagged) == str(plain)
    (span,) = connect_spans(spans, "asyncpg")
    assert span.status.status_code.name == "ERROR"


def test_uninstrument_restores_the_originals_by_identity(pg_dsn: str) -> None:
    import asyncpg.connect_utils
    import asyncpg.connection

    before = (vars(asyncpg.connect_utils)["_connect"], vars(asyncpg.connection)["connect"])
    ua_autotag.instrument(UA)
    during = (vars(asyncpg.connect_utils)["_connect"], vars(asyncpg.connection)["connect"])
    # the public connect() is a fallback layer: left unwrapped while _connect is there
    assert during[0] is not before[0] and during[1] is before[1]
    ua_autotag.uninstrument()
    after = (vars(asyncpg.connect_utils)["_connect"], vars(asyncpg.connection)["connect"])
    assert after[0] is before[0] and after[1] is before[1]
    assert asyncio.run(open_and_read("asyncpg.connect", pg.URI, {})) == ""
