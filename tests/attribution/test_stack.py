"""Issue 15 §2, the call-stack rule, with the real psycopg / psycopg2 against PostgreSQL.

Each product's code connects -> its value; product A calls into product B and B connects
-> B's; the customer's code connects -> the process default, or untouched without one; a
scope wins over everything; threads follow their own stack. Every test runs without and
with a process default (the ``default`` fixture), and every connection carries exactly
one value.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import ua_autotag
from tests.attribution.conftest import ACME, GLOBEX, SCOPED, exactly_one, untouched

DRIVERS = ["psycopg_name", "psycopg2_name"]


def connect(module: object, driver: str, dsn: str) -> str:
    return getattr(module, driver)(dsn)  # type: ignore[no-any-return]


@pytest.mark.parametrize("driver", DRIVERS)
def test_each_product_and_the_customer(world: SimpleNamespace, pg_dsn: str, driver: str) -> None:
    assert connect(world.acme, driver, pg_dsn) == ACME
    assert connect(world.globex, driver, pg_dsn) == GLOBEX
    assert connect(world.customer, driver, pg_dsn) == untouched(world.default)
    # interleaved again: nothing sticks from one call to the next
    assert connect(world.globex, driver, pg_dsn) == GLOBEX
    assert connect(world.acme, driver, pg_dsn) == ACME


@pytest.mark.parametrize("driver", DRIVERS)
def test_product_a_calls_into_product_b_and_b_connects(
    world: SimpleNamespace, pg_dsn: str, driver: str
) -> None:
    """The innermost registered frame decides: B's code opened it."""
    assert world.acme.call(getattr(world.globex, driver), pg_dsn) == GLOBEX
    assert world.globex.call(getattr(world.acme, driver), pg_dsn) == ACME
    # A -> B -> A: the innermost is A again
    assert world.acme.call(world.globex.call, getattr(world.acme, driver), pg_dsn) == ACME


@pytest.mark.parametrize("driver", DRIVERS)
def test_customer_code_called_by_a_product_is_that_products(
    world: SimpleNamespace, pg_dsn: str, driver: str
) -> None:
    """A product running the customer's callback: the product is the innermost registered frame."""
    assert world.acme.call(getattr(world.customer, driver), pg_dsn) == ACME
    # the customer calling a product: the product's
    assert world.customer.call(getattr(world.globex, driver), pg_dsn) == GLOBEX
    # customer -> A -> customer -> B: B
    assert world.customer.call(world.acme.call, world.customer.call,
                               getattr(world.globex, driver), pg_dsn) == GLOBEX


@pytest.mark.parametrize("driver", DRIVERS)
def test_scope_wins_over_everything(world: SimpleNamespace, pg_dsn: str, driver: str) -> None:
    with ua_autotag.user_agent(SCOPED):
        assert connect(world.acme, driver, pg_dsn) == SCOPED
        assert connect(world.globex, driver, pg_dsn) == SCOPED
        assert connect(world.customer, driver, pg_dsn) == SCOPED
        assert world.acme.call(getattr(world.globex, driver), pg_dsn) == SCOPED
    assert connect(world.acme, driver, pg_dsn) == ACME  # gone with the block


def test_scope_entered_inside_product_code_wins_there(world: SimpleNamespace, pg_dsn: str) -> None:
    def scoped_connect() -> str:
        with ua_autotag.user_agent(SCOPED):
            return world.globex.psycopg_name(pg_dsn)  # type: ignore[no-any-return]

    assert world.acme.call(scoped_connect) == SCOPED


def test_each_connection_carries_exactly_one_value(world: SimpleNamespace, pg_dsn: str) -> None:
    """Never a list of products, also when the caller set its own application_name."""
    exactly_one(world.acme.psycopg_name(pg_dsn), ACME)
    exactly_one(world.acme.call(world.globex.psycopg_name, pg_dsn), GLOBEX)
    exactly_one(world.customer.psycopg_name(pg_dsn), world.default)
    mine = world.globex.psycopg_name(pg_dsn, application_name="loader-job")
    assert mine == f"loader-job {GLOBEX}"  # the caller's own part kept, one product added
    exactly_one(mine, GLOBEX)
    exactly_one(world.acme.psycopg2_name(pg_dsn + " application_name=etl"), ACME)
    exactly_one(world.customer.psycopg2_name(pg_dsn + " application_name=etl"), world.default)


# ------------------------------------------------------------------------ threads


def test_thread_started_by_product_code_through_its_own_frame(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    """The thread's stack holds the product's frame (its ``target``): the product's."""
    assert world.acme.thread_call(world.acme.psycopg_name, pg_dsn) == ACME
    # the product's thread runs the customer's function: the product's frame is on it
    assert world.acme.thread_call(world.customer.psycopg_name, pg_dsn) == ACME
    # and B's code inside A's thread: B's
    assert world.acme.thread_call(world.globex.psycopg2_name, pg_dsn) == GLOBEX


def test_thread_whose_stack_has_no_product_frame_follows_its_own_stack(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    """A thread started by a product but running only customer code is the customer's:
    the stack rule looks at the connecting thread's own stack (not at who started it)."""
    customer = world.customer.psycopg_name_to
    assert world.acme.bare_thread(customer, pg_dsn) == untouched(world.default)
    assert world.customer.bare_thread(world.globex.psycopg_name_to, pg_dsn) == GLOBEX


def test_scope_does_not_cross_into_a_new_thread(world: SimpleNamespace, pg_dsn: str) -> None:
    """A scope is per thread (a contextvar): a thread started inside it follows its stack."""
    with ua_autotag.user_agent(SCOPED):
        assert world.customer.thread_call(world.acme.psycopg_name, pg_dsn) == ACME
        assert world.customer.thread_call(world.customer.psycopg_name, pg_dsn) == untouched(
            world.default
        )


def test_many_threads_at_once_each_get_their_own_product(
    world: SimpleNamespace, pg_dsn: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    jobs = [world.acme, world.globex, world.customer] * 6
    with ThreadPoolExecutor(max_workers=9) as pool:
        got = list(pool.map(lambda ops: ops.psycopg_name(pg_dsn), jobs))
    expected = [ACME, GLOBEX, untouched(world.default)] * 6
    assert got == expected
