"""psycopg2 against the real local PostgreSQL: what the server records as application_name.

The matrix (in test_pg_matrix.py, shared by the three drivers): entry point
(psycopg2.connect, ``from psycopg2 import connect`` bound early, ``connection_factory``,
SimpleConnectionPool, ThreadedConnectionPool) x source of the caller's value (dsn string,
URI, keywords, PGAPPNAME) x user value x mode, with psycopg2 imported before instrument()
(in-process) and after it (fresh interpreter).
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any, Optional

import psycopg2
import psycopg2.extensions
import psycopg2.pool
import pytest
from psycopg2 import connect as early_connect  # bound when this module is imported

import ua_autotag
from tests import pg
from tests.integrations.pgmatrix import (
    OTHER,
    SECRET,
    UA,
    cases,
    check_failed_span_clean,
    connect_spans,
    pgappname_env,
    run_with_value,
)

INTEGRATIONS = ("psycopg2",)
ENTRIES = ("psycopg2.connect", "early_connect", "connection_factory", "SimpleConnectionPool",
           "ThreadedConnectionPool")
SOURCES = ("dsn", "uri", "kwargs", "env")
CASES = cases(ENTRIES, SOURCES)


class MyConnection(psycopg2.extensions.connection):
    """A ``connection_factory`` of the kind applications use."""


def conn_args(source: str, value: Optional[str]) -> tuple[str, dict[str, Any]]:
    if value is None or source == "env":
        return pg.DSN, {}
    if source == "dsn":
        return psycopg2.extensions.make_dsn(pg.DSN, application_name=value), {}
    if source == "uri":
        return f"{pg.URI}?application_name={urllib.parse.quote(value)}", {}
    return pg.DSN, {"application_name": value}


def read(conn: Any) -> str:
    with conn.cursor() as cur:
        cur.execute(pg.APPLICATION_NAME_SQL)
        return str(cur.fetchone()[0])


def open_and_read(entry: str, dsn: str, kwargs: dict[str, Any]) -> str:
    if entry.endswith("Pool"):
        pool = getattr(psycopg2.pool, entry)(1, 1, dsn, **kwargs)
        try:
            conn = pool.getconn()
            value = read(conn)
            pool.putconn(conn)
            return value
        finally:
            pool.closeall()
    if entry == "connection_factory":
        conn = psycopg2.connect(dsn, connection_factory=MyConnection, **kwargs)
        assert isinstance(conn, MyConnection)
    else:
        fn = psycopg2.connect if entry == "psycopg2.connect" else early_connect
        conn = fn(dsn, **kwargs)
    try:
        return read(conn)
    finally:
        conn.close()


def run_case(entry: str, source: str, kind: str) -> str:
    return run_with_value(conn_args, open_and_read, entry, source, kind)


@pytest.mark.parametrize(
    ("dsn_extra", "kwargs", "env", "expected"),
    [
        ("application_name=dsn", {"application_name": "kw"}, "envapp", f"kw {UA}"),
        ("application_name=dsn", {}, "envapp", f"dsn {UA}"),
        ("", {}, "envapp", f"envapp {UA}"),
        ("fallback_application_name=fb", {}, None, f"fb {UA}"),
        ("application_name=''", {}, "envapp", UA),
        ("", {}, f"envapp {UA}", f"envapp {UA}"),
        # quoting: a value with spaces and quotes survives make_dsn
        (r"application_name='it\'s my app'", {}, None, f"it's my app {UA}"),
    ],
)
def test_precedence_and_quoting(
    dsn_extra: str, kwargs: dict[str, Any], env: Optional[str], expected: str, pg_dsn: str
) -> None:
    ua_autotag.instrument(UA)
    with pgappname_env(env):
        assert open_and_read("psycopg2.connect", f"{pg.DSN} {dsn_extra}", kwargs) == expected


def test_dsn_passed_by_keyword(pg_dsn: str) -> None:
    ua_autotag.instrument(UA)
    conn = psycopg2.connect(dsn=pg.DSN, application_name="kw")
    try:
        assert read(conn) == f"kw {UA}"
    finally:
        conn.close()


def test_keep_leaves_the_dsn_untouched(pg_dsn: str) -> None:
    """keep with a caller value: the DSN reaches libpq exactly as the caller wrote it."""
    ua_autotag.instrument(UA, mode="keep")
    dsn = f"{pg.URI}?application_name=mine"
    conn = psycopg2.connect(dsn)
    try:
        assert conn.dsn == dsn  # not re-serialised by make_dsn
        assert read(conn) == "mine"
    finally:
        conn.close()


def test_scoped_override_per_thread(pg_dsn: str) -> None:
    import threading

    ua_autotag.instrument(UA)
    results: dict[str, str] = {}

    def worker(value: str) -> None:
        with ua_autotag.user_agent(value):
            results[value] = open_and_read("psycopg2.connect", pg.DSN, {})

    threads = [threading.Thread(target=worker, args=(f"Isv{i}_P/{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {v: v for v in results} and len(results) == 6
    with ua_autotag.user_agent(OTHER):
        assert open_and_read("psycopg2.connect", pg.DSN, {"application_name": "a"}) == (
            f"a {OTHER}"
        )
    assert open_and_read("psycopg2.connect", pg.DSN, {}) == UA


@pytest.mark.parametrize("shape", ["dsn", "uri", "kwargs"])
def test_no_secret_in_spans_or_logs(
    shape: str, pg_dsn: str, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ua_autotag.instrument(UA)
    dsn, kwargs = {
        "dsn": (f"{pg.DSN} password={SECRET}", {}),
        "uri": (f"postgresql://{pg.USER}:{SECRET}@{pg.HOST}:{pg.PORT}/{pg.DBNAME}", {}),
        "kwargs": (pg.DSN, {"password": SECRET}),
    }[shape]
    with caplog.at_level(logging.DEBUG, logger="ua_autotag"):
        assert open_and_read("psycopg2.connect", dsn, kwargs) == UA
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(dsn.replace(str(pg.PORT), "1"), connect_timeout=2, **kwargs)
    check_failed_span_clean(spans, "psycopg2", caplog.text)


def test_failed_connect_reraises_the_original_exception(pg_dsn: str, spans: Any) -> None:
    bad = pg.DSN.replace(str(pg.PORT), "1")
    with pytest.raises(psycopg2.OperationalError) as plain:
        psycopg2.connect(bad, connect_timeout=2)
    ua_autotag.instrument(UA)
    with pytest.raises(psycopg2.OperationalError) as tagged:
        psycopg2.connect(bad, connect_timeout=2)
    assert type(tagged.value) is type(plain.value)
    assert str(tagged.value) == str(plain.value)
    (span,) = connect_spans(spans, "psycopg2")
    assert span.status.status_code.name == "ERROR"


def test_uninstrument_restores_the_original_by_identity(pg_dsn: str) -> None:
    original = vars(psycopg2)["_connect"]
    ua_autotag.instrument(UA)
    assert vars(psycopg2)["_connect"] is not original
    assert ua_autotag.status()["psycopg2"].state == "patched"
    ua_autotag.uninstrument()
    assert vars(psycopg2)["_connect"] is original
    assert open_and_read("psycopg2.connect", pg.DSN, {}) == ""
