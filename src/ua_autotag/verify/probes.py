"""One probe per client: instrument, connect for real to a local peer, report what arrived.

Each probe runs in a subprocess of its own (``python -m ua_autotag.verify.probes
NAME`` with its job as JSON on stdin), because a client library, once imported and
patched, cannot be un-imported: a fresh interpreter per probe is the only way to
prove each integration alone. The probe instruments with only its own integration
enabled (so the row proves that integration, not a neighbour that happens to tag
the same request), opens a real connection, and prints one result line
(:data:`MARKER` + JSON): what the peer received, and ua_autotag's status for it.

Clients are imported inside the probe functions only.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, Callable, Dict, List, Optional

__all__ = ["MARKER", "PROBES", "main", "parse_dsn"]

MARKER = "UA_AUTOTAG_VERIFY_RESULT "

Job = Dict[str, Any]
Result = Dict[str, Any]


class Skip(Exception):
    """The probe cannot run here (a prerequisite is missing); the message says which."""


# --------------------------------------------------------------------------- HTTP


def _http_peer() -> Any:
    from .http_peer import HeaderRecorder

    return HeaderRecorder()


def _last(values: List[str]) -> Optional[str]:
    values = [v for v in values if v]
    return values[-1] if values else None


def probe_databricks_sdk(job: Job) -> Result:
    from databricks.sdk import WorkspaceClient

    path = "/api/2.0/preview/scim/v2/Me"
    with _http_peer() as peer:
        peer.route("GET", path, (200, {"id": "1", "userName": "verify@example.invalid"}))
        WorkspaceClient(host=peer.url, token="x").current_user.me()
        return {"received": _last(peer.user_agents(path)), "where": f"User-Agent of GET {path}"}


def _sql_connect_args(url: str) -> Dict[str, Any]:
    # Thrift over plain HTTP to the local peer; its 404 fails the connect at once
    # (not retried), after the request with the header has arrived.
    return {
        "_connection_uri": f"{url}/x",
        "enable_telemetry": False,
        "_retry_stop_after_attempts_count": 1,
    }


def probe_databricks_sql(job: Job) -> Result:
    from databricks import sql

    with _http_peer() as peer:
        with contextlib.suppress(Exception):  # expected: the peer answers 404 to OpenSession
            sql.connect(
                server_hostname="127.0.0.1",
                http_path="/x",
                access_token="t",
                **_sql_connect_args(peer.url),
            )
        return {"received": _last(peer.user_agents("/x")), "where": "User-Agent of POST /x"}


def probe_databricks_sqlalchemy(job: Job) -> Result:
    from sqlalchemy import create_engine

    with _http_peer() as peer:
        engine = create_engine(
            "databricks://token:t@127.0.0.1?http_path=/x", connect_args=_sql_connect_args(peer.url)
        )
        try:
            engine.connect().close()
        except Exception:  # expected: 404
            pass
        finally:
            engine.dispose()
        return {
            "received": _last(peer.user_agents("/x")),
            "where": "User-Agent of POST /x (via SQLAlchemy)",
        }


_REST_PATH = "/api/2.1/unity-catalog/catalogs"


def probe_requests(job: Job) -> Result:
    import requests

    with _http_peer() as peer:
        requests.get(peer.url + _REST_PATH, timeout=10)
        return {
            "received": _last(peer.user_agents(_REST_PATH)),
            "where": f"User-Agent of GET {_REST_PATH}",
        }


def probe_httpx(job: Job) -> Result:
    import httpx

    with _http_peer() as peer:
        with httpx.Client(timeout=10) as client:
            client.get(peer.url + _REST_PATH)
        return {
            "received": _last(peer.user_agents(_REST_PATH)),
            "where": f"User-Agent of GET {_REST_PATH}",
        }


def probe_urllib3(job: Job) -> Result:
    import urllib3

    with _http_peer() as peer:
        urllib3.PoolManager().request("GET", peer.url + _REST_PATH, timeout=10.0)
        return {
            "received": _last(peer.user_agents(_REST_PATH)),
            "where": f"User-Agent of GET {_REST_PATH}",
        }


def probe_aiohttp(job: Job) -> Result:
    import asyncio

    import aiohttp

    async def get(url: str) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession() as session, session.get(url, timeout=timeout) as r:
            await r.read()

    with _http_peer() as peer:
        asyncio.run(get(peer.url + _REST_PATH))
        return {
            "received": _last(peer.user_agents(_REST_PATH)),
            "where": f"User-Agent of GET {_REST_PATH}",
        }


# --------------------------------------------------------------------------- Spark Connect


def _run_spark(builder: Any, peer: Any, transport: str) -> Result:
    """One query through the session ``builder`` makes, and the client type ``peer`` saw."""
    spark = builder.getOrCreate()
    try:
        spark.range(1).collect()
    finally:
        with contextlib.suppress(Exception):
            spark.stop()
    received = _last(peer.user_agents("ExecutePlan")) or _last(peer.user_agents())
    return {"received": received, "where": f"client_type of ExecutePlan ({transport})"}


def probe_spark_connect(job: Job) -> Result:
    try:
        from .spark_peer import SparkConnectPeer
    except ImportError as exc:
        raise Skip(f"peer unavailable ({exc})") from None
    from pyspark.sql import SparkSession

    with SparkConnectPeer() as peer:
        return _run_spark(SparkSession.builder.remote(peer.url), peer, "gRPC")


def probe_databricks_connect(job: Job) -> Result:
    """``DatabricksSession`` against a local TLS gRPC peer (Databricks Connect speaks TLS
    only): gRPC trusts the peer's throw-away certificate through
    ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``, read at this process's first TLS channel."""
    try:
        from .spark_peer import SparkConnectPeer
    except ImportError as exc:
        raise Skip(f"peer unavailable ({exc})") from None
    from databricks.connect import DatabricksSession
    from databricks.sdk.core import Config

    for var in [v for v in os.environ if v.startswith("DATABRICKS_")]:
        del os.environ[var]  # a real workspace's settings must not be used here
    os.environ["DATABRICKS_CONFIG_FILE"] = os.devnull
    try:
        peer = SparkConnectPeer(tls=True).start()
    except Exception as exc:  # no openssl for the throw-away certificate
        raise Skip(f"TLS peer unavailable ({type(exc).__name__}: {exc})") from None
    try:
        assert peer.ca_file is not None
        os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = peer.ca_file
        config = Config(
            host=peer.https_url, token="x", cluster_id="0123-456789-verify", retry_timeout_seconds=1
        )
        builder = DatabricksSession.builder.sdkConfig(config)
        if hasattr(builder, "validateSession"):  # no cluster REST look-up: the peer is gRPC
            builder = builder.validateSession(False)
        return _run_spark(builder, peer, "gRPC over TLS")
    finally:
        peer.stop()


# --------------------------------------------------------------------------- PostgreSQL

_APP_SQL = "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"


def _pg_try(job: Job, connect: Callable[[str], Optional[str]]) -> Result:
    """Try each candidate DSN; the first that connects gives the result."""
    errors = []
    for dsn in job["pg_dsns"]:
        try:
            received = connect(dsn)
        except Exception as exc:
            from ua_autotag.cli.common import one_line

            reason = one_line(f"{type(exc).__name__}: {exc}")
            errors.append(f"{_describe_dsn(dsn)}: {reason}")
            continue
        return {
            "received": received,
            "where": "pg_stat_activity.application_name",
            "target": _describe_dsn(dsn),
        }
    # never reached: not the same as reached without the value (the runner fails the run
    # for it only when the user named the server with --pg-dsn)
    where = "PostgreSQL at --pg-dsn" if job.get("pg_explicit") else "no PostgreSQL (give --pg-dsn)"
    return {"unreached": f"{where}: " + "; ".join(errors)}


def _describe_dsn(dsn: str) -> str:
    """Host/port/db of ``dsn`` for the report: never the password or the full DSN."""
    params = parse_dsn(dsn)
    if not params:
        return "libpq environment defaults"
    host = params.get("host") or "local socket"
    return f"{host}:{params.get('port', '5432')}/{params.get('dbname', params.get('user', ''))}"


def parse_dsn(dsn: str) -> Dict[str, str]:
    """libpq conninfo or URI -> dict, with whichever parser is installed."""
    if not dsn:
        return {}
    try:
        from psycopg.conninfo import conninfo_to_dict

        return {k: str(v) for k, v in conninfo_to_dict(dsn).items()}
    except ImportError:
        pass
    try:
        from psycopg2.extensions import parse_dsn as parse_with_psycopg2

        return dict(parse_with_psycopg2(dsn))
    except ImportError:
        pass
    import shlex

    return dict(part.split("=", 1) for part in shlex.split(dsn) if "=" in part)


def _pg_uri(dsn: str) -> str:
    """``dsn`` as a ``postgresql://`` URI (connectorx reads nothing else)."""
    if dsn.startswith(("postgres://", "postgresql://")):
        return dsn
    from urllib.parse import quote

    params = parse_dsn(dsn)
    user = quote(params.get("user") or os.environ.get("PGUSER") or "postgres", safe="")
    password = params.get("password")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    host = params.get("host") or os.environ.get("PGHOST") or "127.0.0.1"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = quote(params.get("dbname") or params.get("user") or "postgres", safe="")
    if host.startswith("/"):
        return f"postgresql://{auth}@/{dbname}?host={quote(host, safe='')}&port={port}"
    return f"postgresql://{auth}@{host}:{port}/{dbname}"


def probe_pg8000(job: Job) -> Result:
    import pg8000.dbapi

    def connect(dsn: str) -> Optional[str]:
        params = parse_dsn(_pg_uri(dsn))
        kwargs: Dict[str, Any] = {"user": params.get("user") or "postgres", "timeout": 5}
        host = params.get("host") or "127.0.0.1"
        if host.startswith("/"):
            kwargs["unix_sock"] = f"{host}/.s.PGSQL.{params.get('port') or 5432}"
        else:
            kwargs["host"], kwargs["port"] = host, int(params.get("port") or 5432)
        for key, arg in (("dbname", "database"), ("password", "password")):
            if params.get(key):
                kwargs[arg] = params[key]
        conn = pg8000.dbapi.connect(**kwargs)
        try:
            cur = conn.cursor()
            cur.execute(_APP_SQL)
            row = cur.fetchone()
            return None if row is None else str(row[0])
        finally:
            conn.close()

    return _pg_try(job, connect)


def probe_connectorx(job: Job) -> Result:
    import connectorx

    def connect(dsn: str) -> Optional[str]:
        # the connection is closed when read_sql returns: the query reads its own row
        table = connectorx.read_sql(_pg_uri(dsn), _APP_SQL, return_type="arrow")
        return str(table.column(0)[0].as_py())

    return _pg_try(job, connect)


def probe_adbc_postgresql(job: Job) -> Result:
    import adbc_driver_postgresql.dbapi

    def connect(dsn: str) -> Optional[str]:
        with adbc_driver_postgresql.dbapi.connect(_pg_uri(dsn)) as conn, conn.cursor() as cur:
            cur.execute(_APP_SQL)
            row = cur.fetchone()
            return None if row is None else str(row[0])

    return _pg_try(job, connect)


def probe_psycopg(job: Job) -> Result:
    import psycopg

    def connect(dsn: str) -> Optional[str]:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            row = conn.execute(_APP_SQL).fetchone()
            return None if row is None else row[0]

    return _pg_try(job, connect)


def probe_psycopg2(job: Job) -> Result:
    import psycopg2

    def connect(dsn: str) -> Optional[str]:
        conn = psycopg2.connect(dsn, connect_timeout=5)
        try:
            with conn.cursor() as cur:
                cur.execute(_APP_SQL)
                row = cur.fetchone()
                return None if row is None else row[0]
        finally:
            conn.close()

    return _pg_try(job, connect)


def probe_asyncpg(job: Job) -> Result:
    import asyncio

    import asyncpg

    def connect(dsn: str) -> Optional[str]:
        async def go() -> Optional[str]:
            if dsn.startswith(("postgres://", "postgresql://")):
                conn = await asyncpg.connect(dsn, timeout=5)
            else:
                params = parse_dsn(dsn)
                kwargs: Dict[str, Any] = {"timeout": 5}
                for key, arg in (
                    ("host", "host"),
                    ("port", "port"),
                    ("user", "user"),
                    ("dbname", "database"),
                    ("password", "password"),
                ):
                    if params.get(key):
                        kwargs[arg] = int(params[key]) if key == "port" else params[key]
                if "host" not in kwargs:  # libpq's default: the local socket
                    kwargs["host"] = "/var/run/postgresql"
                conn = await asyncpg.connect(**kwargs)
            try:
                value = await conn.fetchval(_APP_SQL)
                return None if value is None else str(value)
            finally:
                await conn.close()

        return asyncio.run(go())

    return _pg_try(job, connect)


# --------------------------------------------------------------------------- ODBC

#: the name the SQLite ODBC driver is registered under: the Databricks driver's
ODBC_DRIVER_NAME = "Simba Spark ODBC Driver"

_SQLITE_ODBC = (
    "/usr/lib/x86_64-linux-gnu/odbc/libsqlite3odbc.so",
    "/usr/lib/aarch64-linux-gnu/odbc/libsqlite3odbc.so",
    "/usr/lib/odbc/libsqlite3odbc.so",
    "/usr/lib64/libsqlite3odbc.so",
    "/usr/local/lib/libsqlite3odbc.so",
    "/opt/homebrew/lib/libsqlite3odbc.dylib",
    "/usr/local/lib/libsqlite3odbc.dylib",
)


def sqlite_odbc_driver() -> Optional[str]:
    """Path of the SQLite3 ODBC driver library (Debian/Ubuntu: libsqliteodbc), if any."""
    import glob

    for pattern in (*_SQLITE_ODBC, "/usr/lib/*/odbc/libsqlite3odbc.so"):
        for path in glob.glob(pattern):
            if os.path.exists(path):
                return path
    return None


def probe_pyodbc(job: Job) -> Result:
    """pyodbc through unixODBC: the trace shows the connection string the driver got."""
    import re

    workdir = job["workdir"]
    trace = os.path.join(workdir, "odbc.trace")
    # ODBCSYSINI (the folder of our odbcinst.ini, tracing on) was set by the runner
    # before this interpreter started: unixODBC reads it when it loads.
    import pyodbc

    conn = pyodbc.connect(
        # short: unixODBC's trace cuts strings at 128 characters (cwd is ``workdir``)
        f"Driver={{{ODBC_DRIVER_NAME}}};Database=v.db",
        autocommit=True,
    )
    conn.close()
    try:
        with open(trace, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise Skip("unixODBC wrote no trace (is ODBCSYSINI honoured?)") from None
    # the connection string as SQLDriverConnect received it (output lines are cut short)
    strings = re.findall(r"Str In = \[(.*)\]\[length = \d+", text)
    if not strings:
        raise Skip("the unixODBC trace shows no SQLDriverConnect")
    entries = re.findall(
        r"UserAgentEntry=(\{(?:[^}]|\}\})*\}|[^;]*)", strings[-1], flags=re.IGNORECASE
    )
    received = entries[-1].strip("{}") if entries else None
    if strings[-1].endswith("...") and received is not None and received.endswith("..."):
        raise Skip(
            "unixODBC's trace cuts the connection string at 128 characters: this "
            "value is too long to read back"
        )
    return {
        "received": received,
        "where": "UserAgentEntry in the connection string the "
        "driver manager received (unixODBC trace)",
    }


def odbc_setup(workdir: str) -> Optional[str]:
    """Write ``odbcinst.ini`` (SQLite driver under a Databricks name, tracing on).

    Returns the folder for ``ODBCSYSINI``, or None if there is no SQLite ODBC driver.
    """
    driver = sqlite_odbc_driver()
    if driver is None:
        return None
    with open(os.path.join(workdir, "odbcinst.ini"), "w", encoding="utf-8") as handle:
        handle.write(
            "[ODBC]\nTrace=Yes\n"
            f"TraceFile={os.path.join(workdir, 'odbc.trace')}\n\n"
            f"[{ODBC_DRIVER_NAME}]\nDescription=SQLite3 standing in for the Databricks "
            f"driver (ua-autotag verify)\nDriver={driver}\n"
        )
    with open(os.path.join(workdir, "odbc.ini"), "w", encoding="utf-8") as handle:
        handle.write("")
    return workdir


#: probe name -> function; the runner's table says which integration each proves
PROBES: Dict[str, Callable[[Job], Result]] = {
    "databricks_sdk": probe_databricks_sdk,
    "databricks_sql": probe_databricks_sql,
    "databricks_sqlalchemy": probe_databricks_sqlalchemy,
    "requests": probe_requests,
    "httpx": probe_httpx,
    "urllib3": probe_urllib3,
    "aiohttp": probe_aiohttp,
    "spark_connect": probe_spark_connect,
    "databricks_connect": probe_databricks_connect,
    "psycopg": probe_psycopg,
    "psycopg2": probe_psycopg2,
    "asyncpg": probe_asyncpg,
    "pg8000": probe_pg8000,
    "connectorx": probe_connectorx,
    "adbc_postgresql": probe_adbc_postgresql,
    "pyodbc": probe_pyodbc,
}


def _status_of(integration: str) -> Dict[str, Any]:
    try:
        import ua_autotag

        row = ua_autotag.status()[integration]
        return {"state": row.state, "reason": row.reason, "version": row.version}
    except Exception as exc:
        return {"state": "unknown", "reason": f"{type(exc).__name__}: {exc}"}


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m ua_autotag.verify.probes PROBE`` with the job as JSON on stdin."""
    import logging

    argv = sys.argv[1:] if argv is None else argv
    name = argv[0]
    job: Job = json.loads(sys.stdin.read() or "{}")
    integration = job["integration"]
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    result: Result
    try:
        import ua_autotag

        ua_autotag.instrument(
            job["user_agent"],
            integrations=[integration],
            rest_hosts=["127.0.0.1"],
            spans=False,
        )
        result = PROBES[name](job)
        result["status"] = _status_of(integration)
    except Skip as exc:
        result = {"skip": str(exc)}
    except Exception as exc:
        from ua_autotag.cli.common import one_line

        result = {
            "error": one_line(f"{type(exc).__name__}: {exc}"),
            "status": _status_of(integration),
        }
    sys.stdout.write("\n" + MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
