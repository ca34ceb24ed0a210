"""Issue 24: never credit a product with the customer's work.

* Pooled connections belong to the pool's owner: a customer's engine / pool borrowed by a
  product fills as the customer's, and the same backend (same ``pg_backend_pid()``) keeps
  carrying the customer's value when the customer reuses it; a product's own pool stays
  the product's when the customer uses it.
* ``ua_autotag.customer_code()``: a product hands over to its user's callback (``with``,
  ``async with``, decorator of sync and async functions).
* ``python -m acme_dateng.tool`` and ``runpy`` runs attribute ``__main__`` frames to the
  module they run.

Every value is what PostgreSQL recorded (``pg_stat_activity``), with the real clients.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Tuple

import pytest

import ua_autotag
from tests import pg
from tests.attribution.conftest import ACME, GLOBEX, SCOPED, untouched

#: what the backend says it is called, and which backend it is
NAME_PID = "SELECT application_name, pid FROM pg_stat_activity WHERE pid = pg_backend_pid()"

#: a module of the product ``acme_dateng`` that hands over to its user's code
HOOKS = '''\
"""acme_dateng.hooks: runs its user's callbacks (an orchestrator's task runner)."""
import ua_autotag


def run_hook(fn, *args):
    with ua_autotag.customer_code():
        return _plumbing(fn, *args)


def _plumbing(fn, *args):
    """The product's own frames inside the hand-over: they do not make it the product's."""
    return fn(*args)


async def arun_hook(fn, *args):
    async with ua_autotag.customer_code():
        return await fn(*args)


@ua_autotag.customer_code()
def decorated(fn, *args):
    return fn(*args)


@ua_autotag.customer_code()
async def adecorated(fn, *args):
    return await fn(*args)


def hook_then_own(fn, dsn):
    """Hand over for the callback, then connect itself: its own connection is its own."""
    from acme_dateng import ops

    with ua_autotag.customer_code():
        inside = fn(dsn)
    return inside, ops.psycopg_name(dsn)
'''

#: run as ``python -m acme_dateng.tool DSN``: connects from its ``__main__`` frame
TOOL = """\
import sys

import psycopg

SQL = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"

if __name__ == "__main__":
    with psycopg.connect(sys.argv[1]) as conn:
        print(conn.execute(SQL).fetchone()[0])
"""


@pytest.fixture
def hooks(world: SimpleNamespace) -> Iterator[Any]:
    import importlib

    (world.dir / "acme_dateng" / "hooks.py").write_text(HOOKS)
    importlib.invalidate_caches()
    try:
        yield importlib.import_module("acme_dateng.hooks")
    finally:
        sys.modules.pop("acme_dateng.hooks", None)


def _name_pid(engine: Any) -> Tuple[str, int]:
    with engine.connect() as conn:
        row = conn.exec_driver_sql(NAME_PID).one()
        return row[0], row[1]


def _url(dialect: str) -> str:
    return pg.URI.replace("postgresql://", f"{dialect}://")


# ------------------------------------------------------------- borrowed pools


@pytest.mark.parametrize("dialect", ["postgresql+psycopg", "postgresql+psycopg2"])
def test_customer_engine_borrowed_by_a_product_stays_the_customers(
    world: SimpleNamespace, pg_dsn: str, dialect: str
) -> None:
    """``acme.use_engine(engine)``: the first physical connection is opened inside Acme's
    code; it goes back to the customer's pool and the customer's next query runs on the
    same backend. Neither may carry Acme's value."""
    engine = world.customer.make_engine(_url(dialect), pool_size=1, max_overflow=0)
    try:
        in_product = world.acme.call(_name_pid, engine)  # opened inside the product
        by_customer = _name_pid(engine)  # reused by the customer
        assert by_customer[1] == in_product[1]  # the same backend
        assert in_product[0] == by_customer[0] == untouched(world.default)
    finally:
        engine.dispose()


def test_customer_psycopg_pool_borrowed_by_a_product_stays_the_customers(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    import psycopg_pool

    pool = psycopg_pool.ConnectionPool(pg_dsn, min_size=1, max_size=1, open=False)

    def name_pid() -> Tuple[str, int]:
        with pool.connection() as conn:
            row = conn.execute(NAME_PID).fetchone()
            assert row is not None
            return row[0], row[1]

    try:
        world.acme.call(pool.open, wait=True)  # the product opens (fills) it
        in_product = world.acme.call(name_pid)
        by_customer = name_pid()
        assert by_customer[1] == in_product[1]
        assert in_product[0] == by_customer[0] == untouched(world.default)
    finally:
        pool.close()


def test_customer_asyncpg_pool_borrowed_by_a_product_stays_the_customers(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    import asyncpg

    async def name_pid(pool: Any) -> Tuple[str, int]:
        async with pool.acquire() as conn:
            row = await conn.fetchrow(NAME_PID)
            return row[0], row[1]

    async def main() -> Tuple[Tuple[str, int], Tuple[str, int]]:
        pool = await asyncpg.create_pool(pg.URI, min_size=0, max_size=1)  # the customer's
        try:
            in_product = await world.acme.acall(name_pid, pool)  # first connect: in Acme
            return in_product, await name_pid(pool)
        finally:
            await pool.close()

    in_product, by_customer = asyncio.run(main())
    assert by_customer[1] == in_product[1]
    assert in_product[0] == by_customer[0] == untouched(world.default)


@pytest.mark.parametrize("dialect", ["postgresql+psycopg", "postgresql+asyncpg"])
def test_products_own_pool_used_by_the_customer_stays_the_products(
    world: SimpleNamespace, pg_dsn: str, dialect: str
) -> None:
    """The customer filling a product's pool: the product's value, on the same backend."""
    if dialect.endswith("asyncpg"):

        async def main() -> Tuple[Tuple[str, int], Tuple[str, int]]:
            engine = world.acme.make_async_engine(_url(dialect), pool_size=1, max_overflow=0)

            async def name_pid() -> Tuple[str, int]:
                async with engine.connect() as conn:
                    row = (await conn.exec_driver_sql(NAME_PID)).one()
                    return row[0], row[1]

            try:
                return await name_pid(), await name_pid()  # both from the customer's code
            finally:
                await engine.dispose()

        first, second = asyncio.run(main())
    else:
        engine = world.acme.make_engine(_url(dialect), pool_size=1, max_overflow=0)
        try:
            first = _name_pid(engine)  # filled by the customer
            second = world.globex.call(_name_pid, engine)  # reused from another product
        finally:
            engine.dispose()
    assert first[1] == second[1]
    assert first[0] == second[0] == ACME


# ------------------------------------------------------------- customer_code()


def test_customer_code_hands_a_callback_over(
    world: SimpleNamespace, hooks: Any, pg_dsn: str
) -> None:
    callback = world.customer.psycopg_name
    # without the hand-over, the product is the innermost registered frame: its value
    assert world.acme.call(callback, pg_dsn) == ACME
    assert hooks.run_hook(callback, pg_dsn) == untouched(world.default)
    assert hooks.decorated(callback, pg_dsn) == untouched(world.default)
    # the customer's callback calling another product: that product's
    assert hooks.run_hook(world.customer.call, world.globex.psycopg_name, pg_dsn) == GLOBEX
    # and the product connecting itself once the callback is done: its own again
    assert hooks.hook_then_own(callback, pg_dsn) == (untouched(world.default), ACME)
    # a scope still wins inside the hand-over
    with ua_autotag.user_agent(SCOPED):
        assert hooks.run_hook(callback, pg_dsn) == SCOPED


def test_customer_code_keeps_what_is_pinned_to_the_product(
    world: SimpleNamespace, hooks: Any, pg_dsn: str
) -> None:
    from sqlalchemy.pool import NullPool

    engine = world.acme.make_engine(_url("postgresql+psycopg"), poolclass=NullPool)
    try:  # the product's engine, used by the callback: still the product's
        assert hooks.run_hook(_name_pid, engine)[0] == ACME
        # an engine the callback creates inside the hand-over is the customer's
        made = hooks.run_hook(world.customer.make_engine, _url("postgresql+psycopg"))
        try:
            assert world.acme.call(_name_pid, made)[0] == untouched(world.default)
        finally:
            made.dispose()
    finally:
        engine.dispose()


def test_customer_code_async_and_as_decorator(
    world: SimpleNamespace, hooks: Any, pg_dsn: str
) -> None:
    async def main() -> list:
        product = await world.acme.acall(world.customer.asyncpg_name, pg.URI)
        handed = await hooks.arun_hook(world.customer.asyncpg_name, pg.URI)
        decorated = await hooks.adecorated(world.customer.psycopg_async_name, pg_dsn)

        async def fan_out(uri: str) -> list:  # tasks started inside the hand-over
            return list(await asyncio.gather(*(world.customer.asyncpg_name(uri) for _ in "ab")))

        tasks = await hooks.arun_hook(fan_out, pg.URI)
        return [product, handed, decorated, *tasks]

    product, *customer = asyncio.run(main())
    assert product == ACME
    assert customer == [untouched(world.default)] * 4


# ------------------------------------------------------------- python -m


def _python(code_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UA_AUTOTAG_") and k not in ("PGAPPNAME", "PYTHONPATH")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code_dir), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_python_dash_m_of_a_product_module_is_the_products(world_dir: Path, pg_dsn: str) -> None:
    (world_dir / "acme_dateng" / "tool.py").write_text(TOOL)
    proc = _python(world_dir, "-m", "acme_dateng.tool", pg_dsn)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ACME
    code = (
        "import runpy, sys; sys.argv = ['tool', sys.argv[1]]; "
        "runpy.run_module('acme_dateng.tool', run_name='__main__', alter_sys=True)"
    )
    proc = _python(world_dir, "-c", code, pg_dsn)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ACME
    # the same file run by path is no module of the package: the customer's code
    (world_dir / "acme_dateng" / "tool_by_path.py").write_text(
        TOOL.replace("import psycopg", "import acme_dateng, psycopg")
    )
    proc = _python(world_dir, str(world_dir / "acme_dateng" / "tool_by_path.py"), pg_dsn)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
    # the customer's own script run with -m stays untagged
    (world_dir / "customer_tool.py").write_text(
        TOOL.replace("import psycopg", "import acme_dateng, psycopg")
    )
    proc = _python(world_dir, "-m", "customer_tool", pg_dsn)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
