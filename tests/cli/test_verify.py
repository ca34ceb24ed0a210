"""``ua-autotag verify``: real probes against real local peers, judged from what arrived."""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

from tests.cli.conftest import UA, clean_env, cli, one_line_error
from ua_autotag.verify.runner import ROWS, carries

FAST = "psycopg,databricks_sdk"


def _rows(proc) -> dict:  # type: ignore[no-untyped-def]
    data = json.loads(proc.stdout)
    return {r["label"]: r for r in data["results"]}


def test_verify_all_installed_integrations_pass(pg_dsn: str) -> None:
    """The acceptance run: every installed client carries the tag to its peer."""
    proc = cli("verify", "--user-agent", UA, "--json")
    data = json.loads(proc.stdout)
    failed = {r["label"]: (r["verdict"], r["detail"]) for r in data["results"] if not r["passed"]}
    assert proc.returncode == 0, failed
    assert data["ok"] is True
    for row in data["results"]:
        if row["verdict"] == "ok":
            assert carries(row["received"], UA), row


def test_verify_ok_rows_show_what_the_peer_received(pg_dsn: str) -> None:
    proc = cli("verify", "--user-agent", UA, "--json", "--only", FAST)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = _rows(proc)
    assert set(rows) == {"psycopg", "databricks_sdk"}
    assert rows["psycopg"]["received"] == UA  # pg_stat_activity.application_name
    assert rows["psycopg"]["carrier"] == "application_name"
    sdk = rows["databricks_sdk"]["received"]
    assert UA in sdk.split() and "databricks-sdk-py/" in sdk  # the real SDK header
    assert all(r["verdict"] == "ok" and r["client"] and r["version"] for r in rows.values())


def test_verify_fails_with_a_clear_row_when_an_integration_is_disabled(pg_dsn: str) -> None:
    env = clean_env(UA_AUTOTAG_DISABLED_INTEGRATIONS="psycopg")
    proc = cli("verify", "--user-agent", UA, "--only", FAST, env=env)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    row = next(line for line in lines if line.startswith("psycopg "))
    assert row.rstrip().endswith("missing")
    assert "disabled by UA_AUTOTAG_DISABLED_INTEGRATIONS" in " ".join(proc.stdout.split())
    assert next(line for line in lines if line.startswith("databricks_sdk ")).rstrip().endswith(
        " ok")
    assert "FAILED (missing: psycopg)" in proc.stdout

    data = json.loads(cli("verify", "--user-agent", UA, "--json", "--only", FAST,
                          env=env).stdout)
    psycopg = next(r for r in data["results"] if r["label"] == "psycopg")
    assert psycopg["verdict"] == "missing" and psycopg["passed"] is False
    assert psycopg["received"] != UA  # the server saw the connection, untagged
    assert data["ok"] is False


def test_verify_uses_the_environment_value(pg_dsn: str) -> None:
    proc = cli("verify", "--only", "psycopg", env=clean_env(UA_AUTOTAG_USER_AGENT=UA))
    assert proc.returncode == 0, proc.stdout
    assert f"verifying {UA} (from env UA_AUTOTAG_USER_AGENT)" in proc.stdout


def test_verify_without_a_value_uses_the_demo_value_and_says_so(pg_dsn: str) -> None:
    proc = cli("verify", "--only", "psycopg")
    assert proc.returncode == 0, proc.stdout
    assert "demo value UaAutotagDemo_Verify/0.0" in proc.stdout
    assert "UaAutotagDemo_Verify/0.0" in next(
        line for line in proc.stdout.splitlines() if line.startswith("psycopg "))


PG_ROWS = ("psycopg", "psycopg2", "asyncpg")


def _unreachable_dsn() -> str:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"host=127.0.0.1 port={port} user=postgres password=s3cret dbname=x"


def test_verify_unreachable_postgres_is_not_reached_and_fails() -> None:
    """A server the user named with --pg-dsn that cannot be reached: every PostgreSQL row is
    "not reached" (never "missing": nothing connected), with the full reason, and the run
    fails although other rows pass."""
    dsn = _unreachable_dsn()
    only = ",".join((*PG_ROWS, "databricks_sdk"))
    proc = cli("verify", "--user-agent", UA, "--json", "--only", only, "--pg-dsn", dsn)
    assert proc.returncode == 1
    rows = _rows(proc)
    for name in PG_ROWS:
        assert rows[name]["verdict"] == "not reached", rows[name]
        assert rows[name]["passed"] is False and rows[name]["reached"] is False
        assert rows[name]["detail"].startswith("PostgreSQL at --pg-dsn: 127.0.0.1:"), rows[name]
    # libpq's reason in full, never cut mid-word
    assert rows["psycopg"]["detail"].endswith("accepting TCP/IP connections?"), rows["psycopg"]
    assert rows["databricks_sdk"]["verdict"] == "ok" and rows["databricks_sdk"]["reached"]
    assert "s3cret" not in proc.stdout + proc.stderr

    proc = cli("verify", "--user-agent", UA, "--only", only, "--pg-dsn", dsn)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    for name in PG_ROWS:
        row = next(line for line in lines if line.startswith(name + " "))
        assert row.rstrip().endswith("not reached"), row
    assert "skipped" not in proc.stdout and "missing" not in proc.stdout
    summary = lines[-1]
    assert summary.startswith("FAILED (not reached: psycopg, psycopg2, asyncpg)"), summary
    # the reason is wrapped onto indented lines, every word of it there
    text = " ".join(" ".join(proc.stdout.split()).split("-> ")[1:])
    assert "Is the server running on that host and accepting TCP/IP connections?" in text
    assert "s3cret" not in proc.stdout + proc.stderr


def test_verify_that_reaches_nothing_says_so_and_fails() -> None:
    """No PostgreSQL where verify looks by default: not reached is no failure of the row,
    but a run that reached no peer at all proved nothing and must not pass."""
    port = _unreachable_dsn().split("port=")[1].split()[0]
    env = clean_env(PGHOST="127.0.0.1", PGPORT=port)
    proc = cli("verify", "--user-agent", UA, "--json", "--only", "psycopg,psycopg2", env=env)
    data = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert data["ok"] is False and data["reached"] == 0
    assert {r["verdict"] for r in data["results"]} == {"not reached"}
    assert all(r["passed"] for r in data["results"])  # no failure of the rows themselves
    proc = cli("verify", "--user-agent", UA, "--only", "psycopg,psycopg2", env=env)
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1].startswith("NOT PROVEN: no client reached its peer")
    assert "ok:" not in proc.stdout

    # one row reached and passed: the run passes, the unreached row listed as not proven
    proc = cli("verify", "--user-agent", UA, "--only", "psycopg,databricks_sdk", env=env)
    assert proc.returncode == 0, proc.stdout
    assert "not reached, so not proven: psycopg" in proc.stdout.splitlines()[-1]


def test_verify_bad_value_is_a_one_line_error() -> None:
    proc = cli("verify", "--user-agent", "not a value")
    assert "whitespace" in one_line_error(proc)
    assert proc.returncode == 2
    assert "unknown integrations: nope" in one_line_error(cli("verify", "--only", "nope"))
    too_long = "AcmePartner_" + "D" * 60 + "/3.5"  # over application_name's 63 bytes
    assert "63-byte" in one_line_error(cli("verify", "--user-agent", too_long))


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        (f"unknown/0.0.0 databricks-sdk-py/0.1 {UA}", True),
        (f"PyDatabricksSqlConnector/4.9.0 (sqlalchemy + {UA})", True),
        (f"{UA} spark/4.2.0 os/linux", True),
        (f"legacy {UA}", True),
        (UA + "5", False),  # .../3.55 is another version
        ("AcmePartner_DatEngProduct", False),
        (None, False),
        ("", False),
    ],
)
def test_carries_matches_whole_tokens(received: str, expected: bool) -> None:
    assert carries(received, UA) is expected


def test_every_catalog_integration_and_runtime_has_a_row() -> None:
    from ua_autotag.catalog import CATALOG, RUNTIMES

    assert {r.integration for r in ROWS} == set(CATALOG) | set(RUNTIMES)
    for row in ROWS:  # one source: the catalog
        if row.integration in CATALOG and not row.own_distributions:
            assert row.distributions == CATALOG[row.integration].distributions
        if row.integration in CATALOG:
            assert row.carrier == (CATALOG[row.integration].carrier or "-")


def test_verify_node_and_java_rows(pg_dsn: str) -> None:
    """The launcher's runtime hooks, proven by a real JVM (pgjdbc) / node where present;
    absent runtimes or clients are skipped with the reason, and do not fail the run."""
    proc = cli("verify", "--user-agent", UA, "--json", "--only", "node,java",
               "--pg-dsn", pg_dsn)
    rows = _rows(proc)
    assert set(rows) == {"node", "java"}
    assert proc.returncode == 0, rows
    for row in rows.values():
        assert row["passed"] is True
        if row["verdict"] == "ok":
            assert carries(row["received"], UA), row
        else:
            assert row["verdict"].startswith("skipped: ") and row["detail"], row
    if shutil.which("java") and os.path.exists("/usr/share/java/postgresql.jar"):
        assert rows["java"]["verdict"] == "ok", rows["java"]
        assert rows["java"]["carrier"] == "application_name"


def test_verify_disabled_runtime_hook_is_missing() -> None:
    env = clean_env(UA_AUTOTAG_DISABLED_INTEGRATIONS="java")
    proc = cli("verify", "--user-agent", UA, "--json", "--only", "java", env=env)
    row = _rows(proc)["java"]
    if not shutil.which("java"):
        pytest.skip("no java here")
    assert proc.returncode == 1
    assert row["verdict"] == "missing" and "adds no java hook" in row["detail"]
