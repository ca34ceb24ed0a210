"""pg8000 against the real local PostgreSQL: what the server records as application_name.

The matrix (in test_pg_matrix.py, shared with the other drivers): entry point
(``pg8000.dbapi.connect``, ``pg8000.native.Connection``; ``pg8000.connect`` below) x source of the
caller's value (the ``application_name`` keyword, PGAPPNAME) x user value x mode, imported
before instrument() (in-process) and after it (fresh interpreter). pg8000 reads no
environment, so a PGAPPNAME is no caller value: ours is sent alone. SQLAlchemy
``postgresql+pg8000`` runs in test_sqlalchemy_postgres.py.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import pg8000
import pg8000.dbapi
import pg8000.native
import pytest

import ua_autotag
from tests import pg
from tests.integrations.pgmatrix import (
    LONG_APPENDED,
    SECRET,
    UA,
    cases,
    check_failed_span_clean,
    run_with_value,
)

INTEGRATIONS = ("pg8000",)
ENTRIES = ("pg8000.dbapi.connect", "pg8000.native.Connection")
#: every value through the keyword for both entries; PGAPPNAME once (a pg8000 connect
#: takes ~0.13 s here, so the matrix stays small)
CASES = [*cases(ENTRIES, ("keyword",)), ("pg8000.dbapi.connect", "env", "short")]
#: pg8000 ignores PGAPPNAME: a value there is no caller value (ours is sent alone)
UNREAD_SOURCES = ("env",)

BASE = {"user": pg.USER, "host": pg.HOST, "port": pg.PORT, "database": pg.DBNAME}


def conn_args(source: str, value: Optional[str]) -> tuple[str, dict[str, Any]]:
    if value is None or source == "env":
        return "", dict(BASE)
    return "", {**BASE, "application_name": value}


def open_and_read(entry: str, dsn: str, kwargs: dict[str, Any]) -> str:
    if entry == "pg8000.native.Connection":
        native = pg8000.native.Connection(**kwargs)
        try:
            return str(native.run(pg.APPLICATION_NAME_SQL)[0][0])
        finally:
            native.close()
    conn = (pg8000.connect if entry == "pg8000.connect" else pg8000.dbapi.connect)(**kwargs)
    try:
        cur = conn.cursor()
        cur.execute(pg.APPLICATION_NAME_SQL)
        return str(cur.fetchone()[0])
    finally:
        conn.close()


def run_case(entry: str, source: str, kind: str) -> str:
    return run_with_value(conn_args, open_and_read, entry, source, kind)


def test_positional_arguments_and_the_63_byte_rule(pg_dsn: str) -> None:
    """All of CoreConnection's arguments up to application_name given positionally."""
    ua_autotag.instrument(UA)
    long = "".join(f"{i:02d}-" for i in range(24))
    conn = pg8000.dbapi.Connection(pg.USER, pg.HOST, pg.DBNAME, pg.PORT, None, None, None,
                                   None, 10, True, long)
    try:
        cur = conn.cursor()
        cur.execute(pg.APPLICATION_NAME_SQL)
        assert cur.fetchone()[0] == LONG_APPENDED
    finally:
        conn.close()


def test_no_secret_in_spans_or_logs(
    pg_dsn: str, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ua_autotag.instrument(UA)
    with caplog.at_level(logging.DEBUG, logger="ua_autotag"):
        assert open_and_read("pg8000.connect", "", {**BASE, "password": SECRET}) == UA
        with pytest.raises(pg8000.InterfaceError):
            pg8000.connect(**{**BASE, "port": 1, "password": SECRET, "timeout": 2})
    made = check_failed_span_clean(spans, "pg8000", caplog.text)
    assert made[0].attributes["user_agent.original"] == UA


def test_failed_connect_reraises_the_original_exception(pg_dsn: str) -> None:
    def attempt() -> BaseException:
        try:
            pg8000.native.Connection(**{**BASE, "port": 1, "timeout": 2})
        except BaseException as exc:
            return exc
        raise AssertionError("connected to port 1?")

    plain = attempt()
    ua_autotag.instrument(UA)
    tagged = attempt()
    assert type(tagged) is type(plain) and str(tagged) == str(plain)


def test_application_name_in_startup_params_is_pg8000s_error(pg_dsn: str) -> None:
    import inspect

    from pg8000.core import CoreConnection

    if "startup_params" not in inspect.signature(CoreConnection.__init__).parameters:
        pytest.skip("startup_params came in pg8000 1.30")
    ua_autotag.instrument(UA)
    with pytest.raises(pg8000.InterfaceError, match="startup_params"):
        pg8000.connect(**BASE, startup_params={"application_name": "x"})


def test_uninstrument_restores_the_original(pg_dsn: str) -> None:
    from pg8000.core import CoreConnection

    before = vars(CoreConnection)["__init__"]
    ua_autotag.instrument(UA)
    assert vars(CoreConnection)["__init__"] is not before
    ua_autotag.uninstrument()
    assert vars(CoreConnection)["__init__"] is before
    assert open_and_read("pg8000.connect", "", dict(BASE)) == ""
