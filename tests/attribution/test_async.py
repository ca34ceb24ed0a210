"""Issue 15 §2 in asyncio: psycopg ``AsyncConnection`` and asyncpg against PostgreSQL.

Attribution is decided when the product's coroutine calls the client (its frame is on
the stack of the running task); a scope travels into tasks created inside it (contextvars
are copied into each task).
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, Callable

import pytest

import ua_autotag
from tests import pg
from tests.attribution.conftest import ACME, GLOBEX, SCOPED, exactly_one, untouched

DRIVERS = ["psycopg_async_name", "asyncpg_name"]


def target(driver: str, pg_dsn: str) -> str:
    return pg_dsn if driver.startswith("psycopg") else pg.URI


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.mark.parametrize("driver", DRIVERS)
def test_each_product_and_the_customer_async(
    world: SimpleNamespace, pg_dsn: str, driver: str
) -> None:
    dsn = target(driver, pg_dsn)

    async def main() -> list:
        return [
            await getattr(world.acme, driver)(dsn),
            await getattr(world.globex, driver)(dsn),
            await getattr(world.customer, driver)(dsn),
        ]

    got = run(main())
    assert got == [ACME, GLOBEX, untouched(world.default)]
    for value, expected in zip(got, [ACME, GLOBEX, world.default]):
        exactly_one(value, expected)


@pytest.mark.parametrize("driver", DRIVERS)
def test_concurrent_tasks_keep_their_own_product(
    world: SimpleNamespace, pg_dsn: str, driver: str
) -> None:
    """Tasks of several products interleave on one loop: each connect is its own code's."""
    dsn = target(driver, pg_dsn)
    modules = [world.acme, world.globex, world.customer] * 4

    async def main() -> list:
        return list(await asyncio.gather(*(getattr(m, driver)(dsn) for m in modules)))

    assert run(main()) == [ACME, GLOBEX, untouched(world.default)] * 4


@pytest.mark.parametrize("driver", DRIVERS)
def test_product_a_awaits_product_b(world: SimpleNamespace, pg_dsn: str, driver: str) -> None:
    dsn = target(driver, pg_dsn)

    async def main() -> list:
        # A's coroutine awaits B's connect (call() returns B's coroutine from A's frame,
        # the await runs in the caller's task: B's frame is the innermost registered one)
        return [
            await world.acme.call(getattr(world.globex, driver), dsn),
            await world.globex.call(getattr(world.customer, driver), dsn),
        ]

    got = run(main())
    assert got[0] == GLOBEX
    # the customer's coroutine was *created* in B's frame but runs when awaited from the
    # test's (customer) coroutine: the stack at connect time has no product frame
    assert got[1] == untouched(world.default)


@pytest.mark.parametrize("driver", DRIVERS)
def test_scope_wins_and_is_copied_into_tasks(
    world: SimpleNamespace, pg_dsn: str, driver: str
) -> None:
    dsn = target(driver, pg_dsn)

    async def main() -> list:
        with ua_autotag.user_agent(SCOPED):
            return list(
                await asyncio.gather(
                    getattr(world.acme, driver)(dsn),
                    getattr(world.globex, driver)(dsn),
                    getattr(world.customer, driver)(dsn),
                )
            )

    assert run(main()) == [SCOPED] * 3


def test_scope_in_one_task_does_not_leak_into_another(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    async def scoped(fn: Callable[..., Any]) -> str:
        with ua_autotag.user_agent(SCOPED):
            await asyncio.sleep(0.01)
            return await fn(pg.URI)  # type: ignore[no-any-return]

    async def plain(fn: Callable[..., Any]) -> str:
        await asyncio.sleep(0.005)
        return await fn(pg.URI)  # type: ignore[no-any-return]

    async def main() -> list:
        return list(
            await asyncio.gather(
                scoped(world.acme.asyncpg_name),
                plain(world.acme.asyncpg_name),
                plain(world.customer.asyncpg_name),
            )
        )

    assert run(main()) == [SCOPED, ACME, untouched(world.default)]
