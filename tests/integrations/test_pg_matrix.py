"""The PostgreSQL drivers' shared matrix: psycopg 3, psycopg2, asyncpg, pg8000, connectorx and
ADBC, one parametrized test.

For each driver, every case of its module (entry point x where the caller's value comes
from x user value, ``CASES``) in every mode: what ``pg_stat_activity`` shows and the one
connect span it produced, with the client imported before ``instrument()`` (in this
process) and after it (a fresh interpreter per driver, ``pgmatrix.run_fresh``). The
driver modules (``test_psycopg.py``...) hold how each driver opens a connection and the
tests that are theirs alone.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Callable

import pytest

import ua_autotag
from tests import pg
from tests.integrations import (
    test_adbc_postgresql,
    test_asyncpg,
    test_connectorx,
    test_pg8000,
    test_psycopg,
    test_psycopg2,
)
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

DRIVERS: dict[str, ModuleType] = {
    "psycopg": test_psycopg,
    "psycopg2": test_psycopg2,
    "asyncpg": test_asyncpg,
    "pg8000": test_pg8000,
    "connectorx": test_connectorx,
    "adbc_postgresql": test_adbc_postgresql,
}
#: modules that must not be imported before instrument() in the fresh interpreter
CLIENTS = {"psycopg": ("psycopg", "psycopg_pool"), "psycopg2": ("psycopg2",),
           "asyncpg": ("asyncpg",), "pg8000": ("pg8000",), "connectorx": ("connectorx",),
           "adbc_postgresql": ("adbc_driver_postgresql",)}
MATRIX = [(driver, *case) for driver, module in DRIVERS.items() for case in module.CASES]


def expected(driver: str, mode: str, source: str, kind: str) -> str:
    """What the driver must send: the user value from ``source``, unless it ignores it."""
    unread = source in getattr(DRIVERS[driver], "UNREAD_SOURCES", ())
    return expected_sent(mode, None if unread else USER_VALUES[kind])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("driver", "entry", "source", "kind"), MATRIX)
def test_matrix_client_imported_before(
    driver: str, entry: str, source: str, kind: str, mode: str, pg_dsn: str, pg_version: int,
    spans: Any,
) -> None:
    ua_autotag.instrument(UA, mode=mode)
    sent = expected(driver, mode, source, kind)
    assert DRIVERS[driver].run_case(entry, source, kind) == server_view(sent, pg_version)
    made = connect_spans(spans, driver)
    if not getattr(DRIVERS[driver], "SPANS", True):  # connectorx: connections inside a query
        assert made == []
        return
    # one span per connection whatever the entry point (psycopg's early-bound connect
    # runs no connect-level wrapper: its span comes from wait_conn, see the integration)
    assert len(made) == 1, [s.name for s in made]
    (span,) = made
    assert span.attributes["user_agent.original"] == sent
    assert span.attributes["server.address"] == pg.HOST
    assert span.attributes["server.port"] == pg.PORT
    assert span.attributes["db.system.name"] == "postgresql"
    assert span.name == f"connect {pg.HOST}:{pg.PORT}"
    assert span.kind.name == "CLIENT"


@pytest.fixture(scope="module")
def fresh_results(pg_dsn: str) -> Callable[[str], dict[str, str]]:
    """Per driver, the whole matrix run once in a fresh interpreter (on first use)."""
    done: dict[str, dict[str, str]] = {}

    def results(driver: str) -> dict[str, str]:
        if driver not in done:
            done[driver] = run_fresh(f"tests.integrations.test_{driver}", CLIENTS[driver])
        return done[driver]

    return results


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("driver", "entry", "source", "kind"), MATRIX)
def test_matrix_client_imported_after(
    driver: str, entry: str, source: str, kind: str, mode: str,
    fresh_results: Callable[[str], dict[str, str]], pg_version: int,
) -> None:
    sent = expected(driver, mode, source, kind)
    got = fresh_results(driver)[case_id(entry, source, kind, mode)]
    assert got == server_view(sent, pg_version)
