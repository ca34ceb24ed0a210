"""``ua-autotag audit-sql``: the partner guide's query, with the LIKE pattern escaped right.

The escaping is checked by a real SQL engine: the local PostgreSQL evaluates the very
``LIKE ... ESCAPE '!'`` the command prints (same LIKE semantics as Databricks SQL for
``%``, ``_`` and an explicit escape character).
"""

from __future__ import annotations

import re

import pytest

from tests.cli.conftest import UA, clean_env, cli, one_line_error
from ua_autotag.cli.audit_sql import audit_sql, like_pattern, sql_string

LIKE = re.compile(r"LIKE (E?'(?:[^'\\]|\\.)*') ESCAPE '!'")


def test_prints_the_audit_query_for_the_configured_value() -> None:
    proc = cli("audit-sql", "--days", "7", env=clean_env(UA_AUTOTAG_USER_AGENT=UA))
    assert proc.returncode == 0, proc.stderr
    sql = proc.stdout
    assert "FROM system.access.audit" in sql
    assert "event_time > current_timestamp() - INTERVAL 7 days" in sql
    assert "lower(user_agent) LIKE '%acmepartner!_datengproduct/3.5%' ESCAPE '!'" in sql
    assert "lower(user_agent) LIKE '%acmepartner!_datengproduct%' ESCAPE '!'" in sql
    assert "Query History" in sql and "Source" in sql


def test_options_and_errors() -> None:
    proc = cli("audit-sql", "--isv", "AcmePartner", "--product", "DatEngProduct")
    assert proc.returncode == 0
    assert "INTERVAL 2 days" in proc.stdout  # the guide's default window
    assert "no User-Agent" in one_line_error(cli("audit-sql"))
    assert "--days" in one_line_error(cli("audit-sql", "--user-agent", UA, "--days", "-1"))
    assert "--user-agent" in one_line_error(cli("audit-sql", "--user-agent", "x y"))


def _pg_like(pg_dsn: str, subject: str, literal: str) -> bool:
    import psycopg
    from psycopg import sql

    # E'' reads backslash escapes like a Databricks SQL string literal does
    literal = "E" + literal if "\\" in literal else literal
    query = sql.SQL("SELECT lower({}) LIKE ").format(sql.Literal(subject)) + sql.SQL(
        literal + " ESCAPE '!'"
    )
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return bool(row[0])


@pytest.mark.parametrize(
    ("subject", "matches"),
    [
        (UA, True),
        (f"unknown/0.0.0 databricks-sdk-py/0.162.0 {UA}", True),
        (f"PyDatabricksSqlConnector/4.9.0 (sqlalchemy + {UA})", True),
        ("AcmePartnerXDatEngProduct/3.5", False),  # '_' must not be a wildcard
        ("AcmePartner_DatEngProduct/305", False),  # '.' is literal in LIKE
        ("AcmePartner_DatEngProduct/4.0", False),
    ],
)
def test_printed_pattern_matches_exactly_in_a_real_engine(
    pg_dsn: str, subject: str, matches: bool
) -> None:
    sql = audit_sql(UA, 2)
    exact = LIKE.findall(sql)[0]
    assert _pg_like(pg_dsn, subject, exact) is matches


def test_hostile_text_is_escaped_for_literal_and_like(pg_dsn: str) -> None:
    """Quotes, backslashes, % _ and the escape char itself (never in a valid UA, still safe)."""
    hostile = "a'b%c_d!e\\f"
    literal = sql_string(like_pattern(hostile.lower()))
    assert literal == "'%a\\'b!%c!_d!!e\\\\f%'"
    assert _pg_like(pg_dsn, "xx" + hostile + "yy", literal)
    assert not _pg_like(pg_dsn, "a'bXc_d!e\\f", literal)
    assert not _pg_like(pg_dsn, "a'b%cXd!e\\f", literal)
