"""SQLAlchemy over each PostgreSQL driver, against the real local server.

SQLAlchemy has no patch of its own: every dialect reaches its driver's connect, which
is patched (``psycopg.connect`` / ``AsyncConnection.connect`` + ``_get_connection_params``,
``psycopg2._connect``, ``asyncpg.connect_utils._connect``). So engines built before
instrument() are tagged too, ``connect_args`` and the URL query are the caller's value,
and every physical connection carries our value exactly once, with exactly one span.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any, Optional

import pytest
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import ua_autotag
from tests import pg
from tests.integrations.pgmatrix import (
    MODES,
    UA,
    USER_VALUES,
    case_id,
    connect_spans,
    expected_sent,
    run_fresh,
    server_view,
)

INTEGRATIONS: tuple[str, ...] = ()  # the drivers are imported by create_engine, later
#: dialect -> (driver integration, async engine?, URL query supported by the driver?)
DIALECTS = {
    "psycopg": ("psycopg", False, True),
    "psycopg2": ("psycopg2", False, True),
    "psycopg_async": ("psycopg", True, True),
    # asyncpg.connect() takes no application_name keyword: SQLAlchemy passes URL query
    # keys as keywords, so an ?application_name= URL fails without us too
    "asyncpg": ("asyncpg", True, False),
    "pg8000": ("pg8000", False, True),
}
#: the psycopg 3 dialects came with SQLAlchemy 2.0; the version matrix runs 1.4 too
SQLALCHEMY_2 = int(sqlalchemy.__version__.split(".")[0]) >= 2
if not SQLALCHEMY_2:
    DIALECTS = {name: spec for name, spec in DIALECTS.items() if spec[0] != "psycopg"}
DRIVER_NAME = {"psycopg": "psycopg", "psycopg2": "psycopg2", "psycopg_async": "psycopg",
               "asyncpg": "asyncpg", "pg8000": "pg8000"}
CASES = [
    (dialect, source, kind)
    for dialect, (_, _, query_ok) in DIALECTS.items()
    for source, kind in [("connect_args", "none")] + [
        (s, k) for s in ("connect_args", "url_query") for k in USER_VALUES if k != "none"
    ]
    if source != "url_query" or query_ok
]


def make_engine(dialect: str, source: str, value: Optional[str], **kw: Any) -> Any:
    url = f"postgresql+{DRIVER_NAME[dialect]}://{pg.USER}@{pg.HOST}:{pg.PORT}/{pg.DBNAME}"
    connect_args: dict[str, Any] = {}
    if value is not None and source == "url_query":
        url += f"?application_name={urllib.parse.quote(value)}"
    elif value is not None and dialect == "asyncpg":
        connect_args["server_settings"] = {"application_name": value}
    elif value is not None:
        connect_args["application_name"] = value
    kw.setdefault("poolclass", NullPool)
    if DIALECTS[dialect][1]:
        return create_async_engine(url, connect_args=connect_args, **kw)
    return sqlalchemy.create_engine(url, connect_args=connect_args, **kw)


def read_all(engine: Any, times: int = 1) -> list[str]:
    """Open ``times`` connections one after the other; what the server called each."""
    query = sqlalchemy.text(pg.APPLICATION_NAME_SQL)
    if not isinstance(engine, sqlalchemy.engine.Engine):

        async def run() -> list[str]:
            out = []
            for _ in range(times):
                async with engine.connect() as conn:
                    out.append(str((await conn.execute(query)).scalar()))
            await engine.dispose()
            return out

        return asyncio.run(run())
    out = []
    for _ in range(times):
        with engine.connect() as conn:
            out.append(str(conn.execute(query).scalar()))
    engine.dispose()
    return out


def run_case(dialect: str, source: str, kind: str) -> str:
    (value,) = read_all(make_engine(dialect, source, USER_VALUES[kind]))
    return value


def run_matrix(mode: str) -> dict[str, str]:
    return {case_id(*case, mode): run_case(*case) for case in CASES}


@pytest.mark.parametrize("engine_built", ["before_instrument", "after_instrument"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("dialect", "source", "kind"), CASES)
def test_one_tag_and_one_span_per_connection(
    dialect: str, source: str, kind: str, mode: str, engine_built: str, pg_dsn: str,
    pg_version: int, spans: Any,
) -> None:
    if engine_built == "before_instrument":
        engine = make_engine(dialect, source, USER_VALUES[kind])
        ua_autotag.instrument(UA, mode=mode)
    else:
        ua_autotag.instrument(UA, mode=mode)
        engine = make_engine(dialect, source, USER_VALUES[kind])
    sent = expected_sent(mode, USER_VALUES[kind])
    values = read_all(engine, times=2)  # NullPool: two physical connections
    assert values == [server_view(sent, pg_version)] * 2
    assert all(v.count(UA) == (0 if mode == "keep" and kind != "none" else 1) for v in values)
    driver = DIALECTS[dialect][0]
    made = connect_spans(spans, driver)
    assert len(made) == 2, [s.name for s in made]
    assert len(spans.get_finished_spans()) == 2  # no second layer made its own span
    assert all(s.attributes["user_agent.original"] == sent for s in made)
    assert all(s.attributes["server.address"] == pg.HOST for s in made)


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_pooled_engine_one_span_per_physical_connection(
    dialect: str, pg_dsn: str, spans: Any
) -> None:
    ua_autotag.instrument(UA)
    engine = make_engine(dialect, "connect_args", "pooled", poolclass=sqlalchemy.pool.QueuePool
                         if not DIALECTS[dialect][1] else sqlalchemy.pool.AsyncAdaptedQueuePool)
    assert read_all(engine, times=3) == [f"pooled {UA}"] * 3  # one connection, reused
    assert len(spans.get_finished_spans()) == 1


@pytest.mark.parametrize("dialect", ["psycopg", "psycopg2"] if SQLALCHEMY_2 else ["psycopg2"])
def test_creator_function(dialect: str, pg_dsn: str, spans: Any) -> None:
    """``create_engine(creator=...)`` bypasses the dialect's connect: still the driver's."""
    ua_autotag.instrument(UA)
    if dialect == "psycopg":
        import psycopg

        def creator() -> Any:
            return psycopg.connect(pg.DSN, application_name="made")
    else:
        import psycopg2

        def creator() -> Any:
            return psycopg2.connect(pg.DSN, application_name="made")

    engine = sqlalchemy.create_engine(f"postgresql+{dialect}://", creator=creator,
                                      poolclass=NullPool)
    assert read_all(engine) == [f"made {UA}"]
    assert len(spans.get_finished_spans()) == 1


@pytest.fixture(scope="module")
def fresh_results(pg_dsn: str) -> dict[str, str]:
    return run_fresh(
        "tests.integrations.test_sqlalchemy_postgres",
        ("sqlalchemy", "psycopg", "psycopg2", "asyncpg", "pg8000"),
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("dialect", "source", "kind"), CASES)
def test_sqlalchemy_and_drivers_imported_after(
    dialect: str, source: str, kind: str, mode: str, fresh_results: dict[str, str],
    pg_version: int,
) -> None:
    sent = expected_sent(mode, USER_VALUES[kind])
    assert fresh_results[case_id(dialect, source, kind, mode)] == server_view(sent, pg_version)
