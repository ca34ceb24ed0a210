"""connectorx (and polars' ``read_database_uri``, engine connectorx) against the real local
PostgreSQL.

connectorx opens its connections inside ``read_sql`` and closes them before it returns,
so the query reads its own row of ``pg_stat_activity`` (what the server recorded for the
very connection that ran it). The matrix (test_pg_matrix.py): entry point x the caller's
value in the URI's ``?application_name=`` (connectorx reads no environment: PGAPPNAME is
no caller value) x user value x mode, imported before and after instrument(). No connect
spans: the connections are internal to a call that also runs the query.
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any, Optional

import connectorx
import pytest

import ua_autotag
from tests import pg
from tests.integrations.pgmatrix import SECRET, UA, cases, run_with_value, secret_free
from ua_autotag.integrations import connectorx as integration

INTEGRATIONS = ("connectorx",)
ENTRIES = ("connectorx.read_sql", "polars.read_database_uri")
CASES = [*cases(ENTRIES, ("uri",)), ("connectorx.read_sql", "env", "short")]
UNREAD_SOURCES = ("env",)
SPANS = False

QUERY = pg.APPLICATION_NAME_SQL.replace("SELECT application_name", "SELECT application_name AS a")


def conn_args(source: str, value: Optional[str]) -> tuple[str, dict[str, Any]]:
    if value is None or source == "env":
        return pg.URI, {}
    return f"{pg.URI}?application_name={urllib.parse.quote(value)}", {}


def open_and_read(entry: str, uri: str, kwargs: dict[str, Any]) -> str:
    if entry == "polars.read_database_uri":
        import polars

        return str(polars.read_database_uri(QUERY, uri, engine="connectorx")["a"][0])
    return str(connectorx.read_sql(uri, QUERY, return_type="arrow")["a"][0].as_py())


def run_case(entry: str, source: str, kind: str) -> str:
    return run_with_value(conn_args, open_and_read, entry, source, kind)


def with_caller(name: str) -> str:
    """What the server shows for a URI naming ``name``, ours added: both, space-separated;
    before connectorx 0.4.6 (which sends a space as ``+``) the caller's name alone."""
    return f"{name} {UA}" if integration._spaces_intact() else name


def test_partitioned_read_tags_every_connection(pg_dsn: str) -> None:
    """Several connections (metadata, range, one per partition): each carries the value."""
    ua_autotag.instrument(UA)
    query = ("SELECT n, (SELECT application_name FROM pg_stat_activity "
             "WHERE pid = pg_backend_pid()) AS a FROM generate_series(1, 40) AS n")
    table = connectorx.read_sql(f"{pg.URI}?application_name=etl", query, return_type="arrow",
                                partition_on="n", partition_num=3)
    assert table.num_rows == 40
    assert set(table["a"].to_pylist()) == {with_caller("etl")}


def test_other_parameters_and_credentials_kept(pg_dsn: str, spans: Any) -> None:
    """The URI's other parameters and its password pass through untouched; the password
    reaches no span (there is none) and no error we raise."""
    ua_autotag.instrument(UA)
    uri = (f"postgresql://{pg.USER}:{SECRET}@{pg.HOST}:{pg.PORT}/{pg.DBNAME}"
           "?sslmode=disable&application_name=a%2Bb")
    table = connectorx.read_sql(uri, "SELECT current_setting('application_name') AS a, "
                                     "current_setting('search_path') AS s", return_type="arrow")
    assert table["a"][0].as_py() == with_caller("a+b")
    assert spans.get_finished_spans() == () and secret_free(spans.get_finished_spans()) == []


def test_federated_dict_and_other_backends() -> None:
    """A federated query's dict: its PostgreSQL URIs tagged, other backends untouched
    (the tagging step itself: a federated run needs connectorx's Java rewriter)."""
    from ua_autotag.integrations.connectorx import _tag_conn
    from ua_autotag.spec import Tag
    from ua_autotag.value import UserAgent

    tag = Tag(UserAgent.parse(UA), UA, ua_autotag.instrument(UA))
    args, _ = _tag_conn(tag, None, ({"db1": pg.URI, "db2": "mysql://u@h/db"}, "q"), {})
    assert args[0] == {"db1": f"{pg.URI}?application_name={urllib.parse.quote(UA, safe='')}",
                       "db2": "mysql://u@h/db"}
    args, kwargs = _tag_conn(tag, None, (), {"conn": "sqlite:///tmp/x.db", "query": "q"})
    assert kwargs == {"conn": "sqlite:///tmp/x.db", "query": "q"}


def test_errors_propagate_unchanged(pg_dsn: str) -> None:
    """A failing query (a refused connection makes connectorx's pool retry for 30 s)."""
    errors = []
    for instrumented in (False, True):
        if instrumented:
            ua_autotag.instrument(UA)
        with pytest.raises(BaseException) as info:
            connectorx.read_sql(pg.URI, "SELECT * FROM no_such_table_ua", return_type="arrow")
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]
    assert "no_such_table_ua" in errors[0][1]


def test_release_that_turns_spaces_into_plus_keeps_the_callers_name(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Before connectorx 0.4.6 a space in the URI's application_name arrives as ``+`` (the
    matrix runs 0.3.3, where the tests above see it): a caller's name and ours cannot both
    arrive, so the URI is left as written, with one warning; our value alone (no name in
    the URI) is still sent. Here the installed release is taken for an old one, and the
    server says what arrived."""
    monkeypatch.setattr(integration, "_spaces_intact", lambda: False)
    monkeypatch.setattr(integration, "_warned", [])
    ua_autotag.instrument(UA)
    caplog.set_level(logging.WARNING, logger="ua_autotag")
    named = f"{pg.URI}?application_name=etl"
    arrived = [open_and_read("connectorx.read_sql", uri, {}) for uri in (named, named, pg.URI)]
    assert arrived == ["etl", "etl", UA]
    (record,) = caplog.records  # once
    assert "'+'" in record.getMessage() and "0.4.6" in record.getMessage()
    assert pg.URI not in record.getMessage()
    ua_autotag.instrument(UA, mode="replace")
    assert open_and_read("connectorx.read_sql", named, {}) == UA  # ours alone: no space
