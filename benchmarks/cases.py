"""Per-integration wrapper cases: the real client path with only the network step cut.

Each case is a call that goes through the integration's real patch points, installed
by the real ``ua_autotag.instrument()`` (post-import hook, wrapt), with the one step
that would touch the network replaced by a stand-in of the same signature:

* psycopg:   ``Connection.connect`` end to end (``_get_connection_params``, conninfo
             attempts, ``make_conninfo``) on a subclass whose ``_connect_gen`` returns
             a connection object at once instead of talking libpq.
* psycopg2:  ``psycopg2.connect`` (``make_dsn``) with ``psycopg2._connect`` (the C
             function that opens the socket) pointed at a Python stand-in.
* databricks_sdk: the per-request read of ``_BaseClient._user_agent_base`` (what every
             SDK request sends), through our descriptor.
* databricks_sql: ``databricks.sql.client.Connection.__init__`` (the patch point)
             on a stand-in class of the same signature put in the connector's module.
* spark_connect: ``ChannelBuilder.userAgent`` (read for every request) and
             ``SparkConnectClient.__init__`` (session creation; gRPC channels connect
             lazily, so no I/O happens).
* pyodbc:    ``pyodbc.connect`` pointed at a stand-in before instrumentation.
* asyncpg:   ``asyncpg.connect`` (wrapped) awaiting ``connect_utils._connect`` (wrapped
             too) replaced by a stand-in, a batch per event-loop turn.
* jaydebeapi: ``jaydebeapi._jdbc_connect`` (the patch point) on a stand-in (no JVM).
* requests / httpx / urllib3 / aiohttp: the patched send/urlopen replaced by a
             stand-in that returns the User-Agent it got (Databricks host: tagged;
             requests also for another host, which must be left alone).
* pg8000:    ``CoreConnection.__init__`` (the patch point) on a stand-in.
* connectorx / ADBC: ``connectorx.read_sql`` / ``adbc_driver_postgresql.connect`` on a
             stand-in returning the URI it got (its application_name rewritten).

Patched and unpatched use the same callable; the runner switches the patches on and
off (``instrument`` / ``uninstrument``) between samples. Each case checks once that
the patched call really carries our value, so a broken case cannot time a no-op.
A case whose integration module does not exist yet is skipped with that reason.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Tuple

import ua_autotag
from harness import PG_DSN, UA, Output


@dataclass
class Case:
    bench: str
    integration: str
    fn: Callable[[], Any]
    check: Callable[[Any], bool]  # on the patched result: is our value there?
    weight: int = 1  # inner-loop divisor (the call is ~weight times a no-I/O call)
    note: Optional[str] = None
    cleanup: Optional[Callable[[], None]] = None
    #: after each sample, untimed (e.g. close what the sample opened)
    after: Optional[Callable[[], None]] = None
    #: issue 16 §3: added cost allowed, spans off (5 us per connect, 2 us per request)
    budget_us: float = 5.0
    #: operations per call of ``fn`` (asyncpg runs a batch per event-loop turn)
    ops: int = 1
    #: (class, attribute) of the patch point: a plain closure pass-through is put there
    #: as a context variant (what any wrapper at that point costs, before ours)
    point: Optional[Tuple[Any, str]] = None

    def on(self, spans: bool) -> Callable[[], None]:
        return lambda: ua_autotag.instrument(UA, integrations=[self.integration], spans=spans)

    def off(self) -> None:
        ua_autotag.uninstrument()


def _exists(name: str) -> bool:
    return importlib.util.find_spec(f"ua_autotag.integrations.{name}") is not None


def _psycopg() -> Case:
    import psycopg

    class _Stub:
        class pgconn:
            used_gssapi = False

    class NoNetConnection(psycopg.Connection):  # type: ignore[type-arg]
        """psycopg's own connect path; the libpq handshake replaced by an instant result."""

        @classmethod
        def _connect_gen(cls, conninfo: str = "", *, timeout: float = 0.0) -> Any:
            rv = _Stub()
            rv.__dict__["params"] = conninfo
            return rv
            yield  # a generator, as psycopg's is

    def call() -> Any:
        return NoNetConnection.connect(PG_DSN + " application_name=app")

    return Case(
        "psycopg Connection.connect (network cut)",
        "psycopg",
        call,
        lambda rv: UA in rv.params,
        weight=40,
        note="real psycopg connect path incl. _get_connection_params; libpq handshake stubbed",
    )


def _psycopg2() -> Case:
    import psycopg2

    real = psycopg2._connect

    def _connect(dsn: str, connection_factory: Any = None, **kwargs: Any) -> str:
        return dsn

    psycopg2._connect = _connect  # before instrument(): our wrapper wraps the stand-in

    def cleanup() -> None:
        psycopg2._connect = real

    return Case(
        "psycopg2.connect (network cut)",
        "psycopg2",
        lambda: psycopg2.connect(PG_DSN + " application_name=app"),
        lambda dsn: UA in dsn,
        weight=10,
        note="real psycopg2.connect/make_dsn; the C _connect replaced by a stand-in",
        cleanup=cleanup,
    )


def _databricks_sdk() -> Case:
    from databricks.sdk._base_client import _BaseClient

    client = _BaseClient(user_agent_base="app/1 databricks-sdk-py/0.162.0 python/3.11.7")
    return Case(
        "databricks_sdk per-request User-Agent read",
        "databricks_sdk",
        lambda: client._user_agent_base,
        lambda value: UA in value,
        note="_BaseClient._user_agent_base as read by every request (no span per request)",
        budget_us=2.0,
    )


def _databricks_sql() -> Case:
    import databricks.sql.client as client

    real = client.Connection

    class Connection:
        """The connector's ``Connection`` signature; builds no HTTP client, opens no session.

        (The real constructor spends ~70 ms here building its HTTP client and TLS
        context before any request: that would bury a microsecond-scale wrapper.)
        """

        def __init__(
            self,
            server_hostname: str,
            http_path: str,
            access_token: Optional[str] = None,
            http_headers: Any = None,
            session_configuration: Any = None,
            catalog: Optional[str] = None,
            schema: Optional[str] = None,
            _use_arrow_native_complex_types: Optional[bool] = True,
            ignore_transactions: bool = True,
            query_tags: Any = None,
            **kwargs: Any,
        ) -> None:
            self.entry = kwargs.get("user_agent_entry")

    client.Connection = Connection  # type: ignore[misc]  # before instrument(): wrapped

    def cleanup() -> None:
        client.Connection = real  # type: ignore[misc]

    return Case(
        "databricks_sql Connection() user_agent_entry merge (network cut)",
        "databricks_sql",
        lambda: client.Connection(
            "127.0.0.1", "/sql/1.0/warehouses/x", access_token="dapi0", user_agent_entry="app"
        ),
        lambda conn: UA in (conn.entry or ""),
        weight=2,
        note="the real patch point (client.Connection.__init__) on a stand-in class of the "
        "same signature",
        cleanup=cleanup,
    )


def _spark_builder() -> Case:
    os.environ.pop("SPARK_CONNECT_USER_AGENT", None)
    from pyspark.sql.connect.client.core import DefaultChannelBuilder

    builder = DefaultChannelBuilder("sc://127.0.0.1:15002/;user_agent=app")
    return Case(
        "spark_connect ChannelBuilder.userAgent (per request)",
        "spark_connect",
        lambda: builder.userAgent,
        lambda value: UA in value,
        weight=2,
        note="the property every Spark Connect request reads for client_type",
        budget_us=2.0,
    )


def _spark_session() -> Case:
    from pyspark.sql.connect.client.core import SparkConnectClient

    opened: List[Any] = []

    def call() -> Any:
        client = SparkConnectClient("sc://127.0.0.1:15002/;user_agent=app")
        opened.append(client)
        return client

    def close_all() -> None:
        # the public close(), untimed. (Closing only client._channel, with our gRPC
        # interceptor in place, made the interpreter segfault at exit.)
        while opened:
            opened.pop().close()

    return Case(
        "spark_connect SparkConnectClient() session creation",
        "spark_connect",
        call,
        lambda client: UA in client._builder.userAgent,
        weight=200,
        note="real session-client construction (gRPC channel is lazy: no I/O); "
        "closed after each sample, untimed",
        after=close_all,
        point=(SparkConnectClient, "__init__"),
    )


def _spark_session_cut() -> Case:
    from types import SimpleNamespace

    from pyspark.sql.connect.client.core import (
        ChannelBuilder,
        DefaultChannelBuilder,
        SparkConnectClient,
    )

    real = SparkConnectClient.__dict__["__init__"]

    def __init__(self: Any, connection: Any, user_id: Any = None,
                 channel_options: Any = None, *args: Any, **kwargs: Any) -> None:
        """The parts of the construction our after-hook reads: the channel builder (the
        connection string parsed) and the artifact manager's stub."""
        self._builder = (connection if isinstance(connection, ChannelBuilder)
                         else DefaultChannelBuilder(connection, channel_options))
        self._artifact_manager = SimpleNamespace(_stub=object())

    SparkConnectClient.__init__ = __init__  # before instrument(): our wrapper wraps it

    def cleanup() -> None:
        SparkConnectClient.__init__ = real

    return Case(
        "spark_connect SparkConnectClient() session creation (construction cut)",
        "spark_connect",
        lambda: SparkConnectClient("sc://127.0.0.1:15002/;user_agent=app"),
        lambda client: UA in client._builder.userAgent,
        weight=10,
        note="the real patch point (SparkConnectClient.__init__) around a stand-in that "
        "parses the connection string and holds an artifact stub; gRPC channel, policies, "
        "artifact manager and the rest of pyspark's construction cut",
        cleanup=cleanup,
    )


def _pyodbc() -> Case:
    import pyodbc

    real = pyodbc.connect

    def connect(connstring: str = "", autocommit: bool = False, timeout: int = 0,
                **kwargs: Any) -> str:
        return connstring

    pyodbc.connect = connect  # before instrument(): our wrapper wraps the stand-in

    def cleanup() -> None:
        pyodbc.connect = real

    return Case(
        "pyodbc.connect connection-string merge (network cut)",
        "pyodbc",
        lambda: connect_call(pyodbc),
        lambda value: UA in str(value),
        weight=4,
        note="Databricks ODBC connection string; the driver manager call replaced",
        cleanup=cleanup,
    )


def connect_call(pyodbc: Any) -> Any:
    return pyodbc.connect(
        "Driver=Simba Spark ODBC Driver;Host=adb-1.2.azuredatabricks.net;Port=443;"
        "HTTPPath=/sql/1.0/warehouses/x;AuthMech=3;UID=token;PWD=dapi0"
    )


def _replace(owner: Any, attr: str, standin: Any) -> Callable[[], None]:
    """Put ``standin`` at ``owner.attr`` (before instrument(), so it is what we wrap)."""
    real = owner.__dict__[attr]
    setattr(owner, attr, standin)
    return lambda: setattr(owner, attr, real)


DATABRICKS_URL = "https://adb-1234567890123456.7.azuredatabricks.net/api/2.1/unity-catalog/catalogs"
OTHER_URL = "https://example.com/api/items"


def _requests(url: str, tagged: bool) -> Case:
    import requests
    from requests.adapters import HTTPAdapter

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        return request.headers.get("User-Agent")

    cleanup = _replace(HTTPAdapter, "send", send)
    adapter = HTTPAdapter()
    prepared = requests.Request("GET", url, headers={"User-Agent": "app/1"}).prepare()
    where = "Databricks host: tagged" if tagged else "other host: left alone"
    return Case(
        f"requests HTTPAdapter.send ({where}, network cut)",
        "requests",
        lambda: adapter.send(prepared, timeout=5),
        (lambda ua: UA in ua) if tagged else (lambda ua: ua == "app/1"),
        weight=3,
        note="the real patch point on a stand-in send(); the request is prepared once",
        budget_us=2.0,
        cleanup=cleanup,
    )


def _requests_databricks() -> Case:
    return _requests(DATABRICKS_URL, True)


def _requests_other() -> Case:
    return _requests(OTHER_URL, False)


def _httpx() -> Case:
    import httpx

    def send(self: Any, request: Any) -> Any:
        return request.headers.get("User-Agent")

    cleanup = _replace(httpx.Client, "_send_single_request", send)
    client = httpx.Client()
    request = client.build_request("GET", DATABRICKS_URL, headers={"User-Agent": "app/1"})
    return Case(
        "httpx Client._send_single_request (Databricks host, network cut)",
        "httpx",
        lambda: client._send_single_request(request),
        lambda ua: UA in ua,
        weight=3,
        note="the real patch point on a stand-in; the request is built once",
        budget_us=2.0,
        cleanup=cleanup,
    )


def _urllib3() -> Case:
    import urllib3

    def urlopen(self: Any, method: str, url: str, body: Any = None, headers: Any = None,
                *args: Any, **kwargs: Any) -> Any:
        return (headers or {}).get("User-Agent")

    cleanup = _replace(urllib3.connectionpool.HTTPConnectionPool, "urlopen", urlopen)
    pool = urllib3.HTTPSConnectionPool("adb-1234567890123456.7.azuredatabricks.net", 443)
    headers = {"User-Agent": "app/1"}
    return Case(
        "urllib3 HTTPConnectionPool.urlopen (Databricks host, network cut)",
        "urllib3",
        lambda: pool.urlopen("GET", "/api/2.1/unity-catalog/catalogs", headers=headers),
        lambda ua: UA in ua,
        weight=3,
        note="the real patch point on a stand-in urlopen()",
        budget_us=2.0,
        cleanup=cleanup,
    )


ASYNCPG_BATCH = 20


def _asyncpg() -> Case:
    import asyncio

    import asyncpg
    import asyncpg.connect_utils as connect_utils

    async def _connect(*, loop: Any, connection_class: Any, record_class: Any,
                       **kwargs: Any) -> Any:
        return kwargs.get("server_settings")

    cleanup = _replace(connect_utils, "_connect", _connect)  # before instrument(): wrapped
    loop = asyncio.new_event_loop()
    dsn = "postgresql://postgres@127.0.0.1:5432/test"

    async def batch() -> Any:
        result = None
        for _ in range(ASYNCPG_BATCH):
            result = await asyncpg.connect(dsn, server_settings={"application_name": "app"})
        return result

    def call() -> Any:
        return loop.run_until_complete(batch())

    def close() -> None:
        cleanup()
        loop.close()

    return Case(
        "asyncpg.connect (network cut)",
        "asyncpg",
        call,
        lambda settings: UA in (settings or {}).get("application_name", ""),
        weight=2 * ASYNCPG_BATCH,
        ops=ASYNCPG_BATCH,
        note=f"real asyncpg.connect -> connect_utils._connect (both wrapped), the latter "
        f"replaced by a stand-in; {ASYNCPG_BATCH} connects per event-loop turn",
        cleanup=close,
    )


def _jaydebeapi() -> Case:
    import jaydebeapi

    def _jdbc_connect(jclassname: str, url: str, driver_args: Any, jars: Any,
                      libs: Any) -> Any:
        return url

    cleanup = _replace(jaydebeapi, "_jdbc_connect", _jdbc_connect)  # before instrument()
    url = ("jdbc:databricks://adb-1.2.azuredatabricks.net:443/default;transportMode=http;"
           "ssl=1;AuthMech=3;httpPath=/sql/1.0/warehouses/x;UserAgentEntry=app")
    props = {"UID": "token", "PWD": "dapi0"}
    return Case(
        "jaydebeapi._jdbc_connect JDBC URL merge (network cut)",
        "jaydebeapi",
        lambda: jaydebeapi._jdbc_connect("com.databricks.client.jdbc.Driver", url, props,
                                         None, None),
        lambda sent: UA in sent,
        note="the real patch point (the module global connect() calls) on a stand-in; "
        "no JVM",
        cleanup=cleanup,
    )


def _aiohttp() -> Case:
    import asyncio

    from aiohttp.client_reqrep import ClientRequest
    from yarl import URL

    async def send(self: Any, conn: Any) -> Any:
        return self.headers.get("User-Agent")

    cleanup = _replace(ClientRequest, "send", send)
    loop = asyncio.new_event_loop()
    request = ClientRequest("GET", URL(DATABRICKS_URL), headers={"User-Agent": "app/1"},
                            loop=loop)

    async def batch() -> Any:
        result = None
        for _ in range(ASYNCPG_BATCH):
            request.headers["User-Agent"] = "app/1"  # each hop is a fresh request
            result = await request.send(None)
        return result

    def close() -> None:
        cleanup()
        loop.close()

    return Case(
        "aiohttp ClientRequest.send (Databricks host, network cut)",
        "aiohttp",
        lambda: loop.run_until_complete(batch()),
        lambda ua: UA in ua,
        weight=2 * ASYNCPG_BATCH,
        ops=ASYNCPG_BATCH,
        note=f"the real patch point on a stand-in send(); {ASYNCPG_BATCH} requests per "
        "event-loop turn",
        budget_us=2.0,
        cleanup=close,
    )


def _pg8000() -> Case:
    from pg8000.core import CoreConnection

    class Probe(CoreConnection):  # type: ignore[misc]
        pass

    def init(self: Any, user: str, host: str = "localhost", database: Any = None,
             port: int = 5432, password: Any = None, source_address: Any = None,
             unix_sock: Any = None, ssl_context: Any = None, timeout: Any = None,
             tcp_keepalive: bool = True, application_name: Any = None, **kwargs: Any) -> None:
        self.sent = application_name

    cleanup = _replace(CoreConnection, "__init__", init)  # before instrument(): wrapped

    def call() -> Any:
        return Probe("postgres", host="127.0.0.1", database="test", application_name="app").sent

    return Case(
        "pg8000 CoreConnection.__init__ (network cut)",
        "pg8000",
        call,
        lambda sent: UA in (sent or ""),
        weight=2,
        note="the real patch point (every pg8000 connection runs it) on a stand-in",
        cleanup=cleanup,
    )


def _connectorx() -> Case:
    import connectorx

    def read_sql(conn: Any, query: Any, **kwargs: Any) -> Any:
        return conn

    cleanup = _replace(connectorx, "read_sql", read_sql)
    uri = "postgresql://postgres:pw@127.0.0.1:5432/test?sslmode=disable&application_name=app"
    return Case(
        "connectorx.read_sql URI merge (network cut)",
        "connectorx",
        lambda: connectorx.read_sql(uri, "SELECT 1", return_type="arrow"),
        lambda sent: "AcmePartner" in sent,
        weight=3,
        note="the real patch point on a stand-in; the application_name in the URI rewritten",
        cleanup=cleanup,
    )


def _adbc_postgresql() -> Case:
    import adbc_driver_postgresql

    def connect(uri: str, db_kwargs: Any = None) -> Any:
        return uri

    cleanup = _replace(adbc_driver_postgresql, "connect", connect)
    uri = "postgresql://postgres:pw@127.0.0.1:5432/test?application_name=app"
    return Case(
        "adbc_driver_postgresql.connect URI merge (network cut)",
        "adbc_postgresql",
        lambda: adbc_driver_postgresql.connect(uri),
        lambda sent: "AcmePartner" in sent,
        weight=3,
        note="the real patch point (dbapi.connect calls it) on a stand-in",
        cleanup=cleanup,
    )


BUILDERS = {
    "psycopg": [_psycopg],
    "psycopg2": [_psycopg2],
    "databricks_sdk": [_databricks_sdk],
    "databricks_sql": [_databricks_sql],
    "spark_connect": [_spark_builder, _spark_session, _spark_session_cut],
    "pyodbc": [_pyodbc],
    "asyncpg": [_asyncpg],
    "jaydebeapi": [_jaydebeapi],
    "requests": [_requests_databricks, _requests_other],
    "httpx": [_httpx],
    "urllib3": [_urllib3],
    "aiohttp": [_aiohttp],
    "pg8000": [_pg8000],
    "connectorx": [_connectorx],
    "adbc_postgresql": [_adbc_postgresql],
}


def collect(out: Output, group: str) -> Iterator[Case]:
    """Build each case whose integration exists; check it tags; yield it; clean up."""
    for name, builders in BUILDERS.items():
        for build in builders:
            bench = f"{name} ({build.__name__.strip('_')})"
            if not _exists(name):
                out.skip(group, bench, f"src/ua_autotag/integrations/{name}.py not written yet")
                continue
            case: Optional[Case] = None
            try:
                case = build()
                ua_autotag.uninstrument()
                case.on(True)()
                state = ua_autotag.status()[name]
                if state.state != "patched":
                    raise RuntimeError(f"integration state {state.state}: {state.reason}")
                result = case.fn()
                if case.after is not None:
                    case.after()
                if not case.check(result):
                    raise RuntimeError(f"patched call did not carry our value: {result!r:.200}")
                ua_autotag.uninstrument()
                yield case
            except Exception as exc:
                ua_autotag.uninstrument()
                out.skip(group, bench, f"case could not run: {type(exc).__name__}: {exc}"[:300])
            finally:
                if case is not None and case.cleanup is not None:
                    case.cleanup()


__all__: List[str] = ["BUILDERS", "Case", "collect"]
