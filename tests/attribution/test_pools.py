"""Issue 15 §3, pinning: pools and engines created by a product's code connect as that
product, whoever uses them and on whatever thread (their own worker threads included).

psycopg_pool ``ConnectionPool`` / ``AsyncConnectionPool`` (connections opened by the pool's
workers), ``psycopg2.pool.ThreadedConnectionPool``, ``asyncpg.create_pool`` and SQLAlchemy
engines (postgresql+psycopg / +psycopg2, async +asyncpg / +psycopg, after ``dispose()``).
A pool or engine the customer created fills as the customer's, whoever triggers the fill
(issue 24: test_borrowed.py shows the same backend carrying it afterwards).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, Callable, List

import pytest

import ua_autotag
from tests import pg
from tests.attribution.conftest import ACME, GLOBEX, SCOPED, exactly_one, untouched

SQL = pg.APPLICATION_NAME_SQL


def on_threads(fn: Callable[[], Any], n: int) -> List[Any]:
    """Run ``fn`` on ``n`` customer threads at once (each holds its connection a moment)."""
    with ThreadPoolExecutor(max_workers=n) as executor:
        return list(executor.map(lambda _: fn(), range(n)))


# ------------------------------------------------------------------ psycopg_pool


def test_psycopg_pool_made_by_product_workers_connect_as_it(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    import threading

    barrier = threading.Barrier(4, timeout=30)

    def use(pool: Any) -> Callable[[], str]:
        def customer_work() -> str:  # the customer's code, on the customer's threads
            with pool.connection(timeout=30) as conn:
                barrier.wait()  # all 4 held at once: the pool had to grow (worker threads)
                return conn.execute(SQL).fetchone()[0]  # type: ignore[no-any-return]

        return customer_work

    acme_pool = world.acme.make_pool(pg_dsn, min_size=1, max_size=4, open=True)
    try:
        assert on_threads(use(acme_pool), 4) == [ACME] * 4
    finally:
        acme_pool.close()
    barrier.reset()
    globex_pool = world.globex.make_pool(pg_dsn, min_size=1, max_size=4, open=False)
    try:
        globex_pool.open(wait=True)  # opened by the customer: still the creator's
        assert on_threads(use(globex_pool), 4) == [GLOBEX] * 4
    finally:
        globex_pool.close()
    barrier.reset()
    customer_pool = world.customer.make_pool(pg_dsn, min_size=1, max_size=4, open=True)
    try:  # created by nobody's product: the workers' stacks have no product frame
        assert on_threads(use(customer_pool), 4) == [untouched(world.default)] * 4
    finally:
        customer_pool.close()


def test_psycopg_async_pool_made_by_product(world: SimpleNamespace, pg_dsn: str) -> None:
    async def main() -> List[str]:
        pool = world.acme.make_async_pool(pg_dsn, min_size=1, max_size=3)
        await pool.open(wait=True)
        try:
            async def one() -> str:
                async with pool.connection(timeout=30) as conn:
                    await asyncio.sleep(0.05)  # held together: the pool grows
                    cur = await conn.execute(SQL)
                    return (await cur.fetchone())[0]  # type: ignore[no-any-return]

            return list(await asyncio.gather(one(), one(), one()))
        finally:
            await pool.close()

    got = asyncio.run(main())
    assert got == [ACME] * 3
    for value in got:
        exactly_one(value, ACME)


# ------------------------------------------------------------------ psycopg2.pool


def test_psycopg2_threaded_pool_made_by_product(world: SimpleNamespace, pg_dsn: str) -> None:
    pool = world.globex.make_threaded_pool(pg_dsn, minconn=1, maxconn=6)
    held: List[Any] = []
    try:
        def customer_work() -> str:
            conn = pool.getconn()  # opens a new connection on this customer thread
            held.append(conn)
            cur = conn.cursor()
            cur.execute(SQL)
            return cur.fetchone()[0]  # type: ignore[no-any-return]

        assert on_threads(customer_work, 4) == [GLOBEX] * 4
        # the scope wins over the pin (this connection is opened inside it)
        with ua_autotag.user_agent(SCOPED):
            assert customer_work() == SCOPED
    finally:
        for conn in held:
            pool.putconn(conn)
        pool.closeall()


def test_psycopg2_pool_made_by_customer_stays_the_customers(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    pool = world.customer.make_threaded_pool(pg_dsn, minconn=0, maxconn=4)
    try:
        def fetch() -> str:
            conn = pool.getconn()
            try:
                cur = conn.cursor()
                cur.execute(SQL)
                return cur.fetchone()[0]  # type: ignore[no-any-return]
            finally:
                pool.putconn(conn, close=True)

        assert fetch() == untouched(world.default)
        # opened from A's code, but the pool is the customer's: never A's value
        assert world.acme.call(fetch) == untouched(world.default)
    finally:
        pool.closeall()


# ------------------------------------------------------------------ asyncpg pool




def test_asyncpg_pool_made_by_product_awaited_by_customer(world: SimpleNamespace) -> None:
    async def main() -> List[str]:
        pool = world.acme.make_asyncpg_pool(pg.URI, min_size=1, max_size=3)
        await pool  # initialised (first connection opened) by the customer's code
        try:
            async def one() -> str:
                async with pool.acquire() as conn:
                    await asyncio.sleep(0.05)
                    return await conn.fetchval(SQL)  # type: ignore[no-any-return]

            return list(await asyncio.gather(one(), one(), one()))
        finally:
            await pool.close()

    assert asyncio.run(main()) == [ACME] * 3


def test_asyncpg_pool_made_by_customer(world: SimpleNamespace, pg_dsn: str) -> None:
    async def main() -> str:
        pool = world.customer.make_asyncpg_pool(pg.URI, min_size=0, max_size=2)
        await pool
        try:
            async with pool.acquire() as conn:
                return await conn.fetchval(SQL)  # type: ignore[no-any-return]
        finally:
            await pool.close()

    assert asyncio.run(main()) == untouched(world.default)


# ------------------------------------------------------------------ SQLAlchemy


def _engine_name(engine: Any) -> str:
    with engine.connect() as conn:
        return conn.exec_driver_sql(SQL).scalar()  # type: ignore[no-any-return]


@pytest.mark.parametrize("dialect", ["postgresql+psycopg", "postgresql+psycopg2"])
def test_engine_made_by_product_used_by_customer_threads_and_after_dispose(
    world: SimpleNamespace, pg_dsn: str, dialect: str
) -> None:
    import threading

    url = pg.URI.replace("postgresql://", f"{dialect}://")
    engine = world.acme.make_engine(url, pool_size=2, max_overflow=2)
    barrier = threading.Barrier(3, timeout=30)

    def customer_work() -> str:
        with engine.connect() as conn:
            barrier.wait()  # three connections at once
            return conn.exec_driver_sql(SQL).scalar()  # type: ignore[no-any-return]

    try:
        assert on_threads(customer_work, 3) == [ACME] * 3
        engine.dispose()  # by the customer: the new pool is still the engine's product's
        barrier.reset()
        assert on_threads(customer_work, 3) == [ACME] * 3
        engine.dispose()
        with ua_autotag.user_agent(SCOPED):  # a new connection inside a scope: the scope's
            assert _engine_name(engine) == SCOPED
        engine.dispose()
        # B's code checking out of A's engine: the engine's pin wins over the stack
        assert world.globex.call(_engine_name, engine) == ACME
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", ["postgresql+psycopg", "postgresql+psycopg2"])
def test_engine_made_by_customer_stays_the_customers(
    world: SimpleNamespace, pg_dsn: str, dialect: str
) -> None:
    url = pg.URI.replace("postgresql://", f"{dialect}://")
    engine = world.customer.make_engine(url, poolclass=_null_pool())
    try:
        assert _engine_name(engine) == untouched(world.default)
        assert world.globex.call(_engine_name, engine) == untouched(world.default)
        assert world.acme.call(_engine_name, engine) == untouched(world.default)
    finally:
        engine.dispose()


def _null_pool() -> Any:
    from sqlalchemy.pool import NullPool

    return NullPool  # a new connection per checkout: still the engine's owner's


@pytest.mark.parametrize("dialect", ["postgresql+asyncpg", "postgresql+psycopg"])
def test_async_engine_made_by_product(world: SimpleNamespace, dialect: str) -> None:
    url = pg.URI.replace("postgresql://", f"{dialect}://")

    async def name(engine: Any) -> str:
        async with engine.connect() as conn:
            await asyncio.sleep(0.05)
            return (await conn.exec_driver_sql(SQL)).scalar()  # type: ignore[no-any-return]

    async def main() -> List[str]:
        engine = world.globex.make_async_engine(url, pool_size=2, max_overflow=1)
        try:
            first = list(await asyncio.gather(name(engine), name(engine), name(engine)))
            await engine.dispose()  # the customer disposes: the pin survives
            second = list(await asyncio.gather(name(engine), name(engine)))
            await engine.dispose()
            with ua_autotag.user_agent(SCOPED):
                scoped = await name(engine)
            return first + second + [scoped]
        finally:
            await engine.dispose()

    got = asyncio.run(main())
    assert got == [GLOBEX] * 5 + [SCOPED]
    for value in got:
        assert len(value.split()) == 1  # one value, never two products


def test_async_engine_made_by_customer(world: SimpleNamespace) -> None:
    url = pg.URI.replace("postgresql://", "postgresql+asyncpg://")

    async def name(engine: Any) -> str:
        async with engine.connect() as conn:
            return (await conn.exec_driver_sql(SQL)).scalar()  # type: ignore[no-any-return]

    async def main() -> List[str]:
        engine = world.customer.make_async_engine(url, poolclass=_null_pool())
        try:
            return [await name(engine), await world.acme.acall(name, engine)]
        finally:
            await engine.dispose()

    assert asyncio.run(main()) == [untouched(world.default)] * 2
