"""PGAPPNAME for libpq programs started as subprocesses (psql), proven with the real psql.

``carriers.pgappname`` computes the value the launcher exports; ``carriers.
libpq_application_name`` is the libpq precedence the Python drivers share.
"""

from __future__ import annotations

import os
import subprocess
from typing import Optional

import pytest

from tests import pg
from tests.integrations.pgmatrix import LONG, LONG_APPENDED, UA
from ua_autotag.merge.libpq import libpq_application_name, pgappname


@pytest.mark.parametrize(
    ("existing", "mode", "fallback", "expected"),
    [
        (None, "append", None, UA),
        (None, "append", "psql", f"psql {UA}"),
        ("etl", "append", "psql", f"etl {UA}"),  # PGAPPNAME beats the program's fallback
        ("etl", "keep", None, "etl"),
        (None, "keep", "psql", "psql"),
        ("etl", "replace", "psql", UA),
        (f"etl {UA}", "append", None, f"etl {UA}"),  # exported twice: still once
        (LONG, "append", None, LONG_APPENDED),
        ("", "append", None, UA),
    ],
)
def test_pgappname(
    existing: Optional[str], mode: str, fallback: Optional[str], expected: str
) -> None:
    assert pgappname(existing, UA, mode, fallback=fallback) == expected


@pytest.mark.parametrize(
    ("params", "env", "expected"),
    [
        ({"application_name": "kw", "fallback_application_name": "fb"}, "env", "kw"),
        ({"application_name": ""}, "env", ""),  # explicit empty hides PGAPPNAME
        ({"fallback_application_name": "fb"}, "env", "env"),
        ({"fallback_application_name": "fb"}, None, "fb"),
        ({}, None, None),
    ],
)
def test_libpq_precedence(params: dict, env: Optional[str], expected: Optional[str]) -> None:
    environ = {} if env is None else {"PGAPPNAME": env}
    assert libpq_application_name(params, environ) == expected


def psql(conninfo: str, pgappname_value: Optional[str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PGAPPNAME"}
    if pgappname_value is not None:
        env["PGAPPNAME"] = pgappname_value
    out = subprocess.run(
        ["psql", conninfo, "-XtAc", pg.APPLICATION_NAME_SQL],
        env=env, capture_output=True, text=True, check=True, timeout=30,
    )
    return out.stdout.strip()


def test_psql_without_us_reports_its_fallback(pg_dsn: str) -> None:
    assert psql(pg.DSN, None) == "psql"


@pytest.mark.parametrize(
    ("existing", "mode", "expected"),
    [
        (None, "append", f"psql {UA}"),
        ("etl", "append", f"etl {UA}"),
        ("etl", "keep", "etl"),
        ("etl", "replace", UA),
        (LONG, "append", LONG_APPENDED),
    ],
)
def test_psql_reports_the_exported_value(
    existing: Optional[str], mode: str, expected: str, pg_dsn: str
) -> None:
    assert psql(pg.DSN, pgappname(existing, UA, mode, fallback="psql")) == expected


def test_psql_command_line_application_name_wins(pg_dsn: str) -> None:
    """Precedence: a conninfo/URI application_name beats any PGAPPNAME we export."""
    exported = pgappname(None, UA, "append", fallback="psql")
    assert psql(f"{pg.DSN} application_name=cli", exported) == "cli"
    assert psql(f"{pg.URI}?application_name=cli", exported) == "cli"
