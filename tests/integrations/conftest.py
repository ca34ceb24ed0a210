"""Fixtures for the PostgreSQL integration tests (psycopg, psycopg2, asyncpg, SQLAlchemy)."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture(scope="session")
def pg_version(pg_dsn: str) -> int:
    """``server_version_num`` of the test server (it decides how non-ASCII is shown)."""
    out = subprocess.run(
        ["psql", pg_dsn, "-tAc", "SHOW server_version_num"],
        capture_output=True, text=True, check=True, timeout=30,
    )
    return int(out.stdout.strip())

