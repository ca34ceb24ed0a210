"""ADBC PostgreSQL (``adbc_driver_postgresql.dbapi.connect``, polars ``read_database_uri``
with engine adbc, pandas over an ADBC connection) against the real local PostgreSQL.

The matrix (test_pg_matrix.py): entry point x source of the caller's value (the URI's
``?application_name=``, a ``key=value`` conninfo, PGAPPNAME - the driver is libpq, which
reads it) x user value x mode, imported before and after instrument(); one connect span
per connection.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any, Optional

import adbc_driver_postgresql
import adbc_driver_postgresql.dbapi
import pytest

import ua_autotag
from tests import pg
from tests.integrations.pgmatrix import (
    SECRET,
    UA,
    cases,
    check_failed_span_clean,
    connect_spans,
    pgappname_env,
    run_with_value,
)

INTEGRATIONS = ("adbc_postgresql",)
ENTRIES = ("dbapi.connect", "polars.read_database_uri")
#: every value through the URI; conninfo and PGAPPNAME once each; polars (it picks the
#: driver from the URI's scheme: no conninfo there) once (an ADBC connect opens two
#: connections, ~0.17 s here, so the matrix stays small)
CASES = [
    *cases(("dbapi.connect",), ("uri",)),
    ("dbapi.connect", "conninfo", "nonascii"),
    ("dbapi.connect", "env", "short"),
    ("polars.read_database_uri", "uri", "long"),
]


def _conninfo_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conn_args(source: str, value: Optional[str]) -> tuple[str, dict[str, Any]]:
    if value is None or source == "env":
        return pg.URI, {}
    if source == "conninfo":
        return f"{pg.DSN} application_name={_conninfo_quote(value)}", {}
    return f"{pg.URI}?application_name={urllib.parse.quote(value)}", {}


def open_and_read(entry: str, uri: str, kwargs: dict[str, Any]) -> str:
    if entry == "polars.read_database_uri":
        import polars

        return str(polars.read_database_uri(pg.APPLICATION_NAME_SQL, uri, engine="adbc")[0, 0])
    with adbc_driver_postgresql.dbapi.connect(uri) as conn, conn.cursor() as cur:
        cur.execute(pg.APPLICATION_NAME_SQL)
        return str(cur.fetchone()[0])


def run_case(entry: str, source: str, kind: str) -> str:
    return run_with_value(conn_args, open_and_read, entry, source, kind)


def test_pandas_over_an_adbc_connection(pg_dsn: str, spans: Any) -> None:
    import pandas

    ua_autotag.instrument(UA)
    with adbc_driver_postgresql.dbapi.connect(f"{pg.URI}?application_name=etl") as conn:
        frame = pandas.read_sql(pg.APPLICATION_NAME_SQL, conn)
    assert frame.iloc[0, 0] == f"etl {UA}"
    (span,) = connect_spans(spans, "adbc_postgresql")
    assert span.attributes["user_agent.original"] == f"etl {UA}"
    assert span.attributes["server.address"] == pg.HOST
    assert span.attributes["server.port"] == pg.PORT


def test_launcher_pgappname_is_not_the_callers_value(pg_dsn: str) -> None:
    """Under ``ua-autotag run`` PGAPPNAME holds the launcher's value: the caller's own is
    the one it replaced, and ours is not doubled."""
    from ua_autotag.merge import exported

    env: dict[str, str] = {"PGAPPNAME": "mine"}
    exported(env, "PGAPPNAME", f"mine {UA}")
    ua_autotag.instrument("Other_X/1")
    with pgappname_env(env["PGAPPNAME"]), pytest.MonkeyPatch.context() as mp:
        for key in ("UA_AUTOTAG_ORIGINAL_PGAPPNAME", "UA_AUTOTAG_EXPORTED_PGAPPNAME"):
            mp.setenv(key, env[key])
        assert open_and_read("dbapi.connect", pg.URI, {}) == "mine Other_X/1"


@pytest.mark.parametrize("shape", ["uri", "conninfo"])
def test_no_secret_in_spans_or_logs(
    shape: str, pg_dsn: str, spans: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = {"uri": f"postgresql://{pg.USER}:{SECRET}@{pg.HOST}:{pg.PORT}/{pg.DBNAME}",
            "conninfo": f"{pg.DSN} password={SECRET}"}[shape]
    ua_autotag.instrument(UA)
    with caplog.at_level(logging.DEBUG, logger="ua_autotag"):
        assert open_and_read("dbapi.connect", good, {}) == UA
        with pytest.raises(adbc_driver_postgresql.dbapi.Error):
            adbc_driver_postgresql.dbapi.connect(good.replace(str(pg.PORT), "1"))
    check_failed_span_clean(spans, "adbc_postgresql", caplog.text)


def test_failed_connect_reraises_the_original_exception(pg_dsn: str) -> None:
    bad = pg.URI.replace(str(pg.PORT), "1")
    errors = []
    for instrumented in (False, True):
        if instrumented:
            ua_autotag.instrument(UA)
        with pytest.raises(Exception) as info:
            adbc_driver_postgresql.dbapi.connect(bad)
        errors.append(type(info.value))
    assert errors[0] is errors[1]
