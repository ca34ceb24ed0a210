"""PostgreSQL helpers for tests: the local server, and what it says a connection is called.

Tests that need the server use the ``pg_dsn`` fixture (tests/conftest.py). It fails
(never skips) when the server is unreachable: a missing server must turn CI red.
"""

from __future__ import annotations

import os

HOST = os.environ.get("UA_AUTOTAG_TEST_PGHOST", "127.0.0.1")
PORT = int(os.environ.get("UA_AUTOTAG_TEST_PGPORT", "5432"))
USER = os.environ.get("UA_AUTOTAG_TEST_PGUSER", "postgres")
DBNAME = os.environ.get("UA_AUTOTAG_TEST_PGDATABASE", "test")

DSN = f"host={HOST} port={PORT} user={USER} dbname={DBNAME}"
URI = f"postgresql://{USER}@{HOST}:{PORT}/{DBNAME}"

#: run on the connection under test: what the *server* recorded for it
APPLICATION_NAME_SQL = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"


def server_reachable() -> bool:
    import socket

    try:
        with socket.create_connection((HOST, PORT), timeout=2):
            return True
    except OSError:
        return False
