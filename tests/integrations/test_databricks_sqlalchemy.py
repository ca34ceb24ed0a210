"""SQLAlchemy ``databricks`` dialect (databricks-sqlalchemy) over the real connector.

The dialect's ``do_connect`` listener turns the entry into ``"sqlalchemy + <entry>"``
before the connector's ``Connection.__init__`` - where ua_autotag merges - sees it.
Engines talk Thrift over plain HTTP (or SEA) to the local peer, which answers 404.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib import metadata
from typing import Any, Dict

import pytest
from packaging.version import Version

import ua_autotag
from ua_autotag.verify.http_peer import HeaderRecorder

UA = "AcmePartner_DatEngProduct/3.5"
SQL = ["databricks_sql"]
TOKEN = "dapi0123456789abcdef0123456789ab"
URL = f"databricks://token:{TOKEN}@127.0.0.1?http_path=/x"

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

# The version matrix runs older dialects too. Before 2.0.10 the dialect marks only
# ``_user_agent_entry``: a caller's ``user_agent_entry`` goes to the connector (which reads
# it first) unmarked. 1.x (the dialect for SQLAlchemy 1.4) marks a missing entry as a bare
# "sqlalchemy", written back into the engine's connect parameters, so every later connect
# of the same engine adds the marker again ("sqlalchemy + sqlalchemy").
DIALECT = Version(metadata.version("databricks-sqlalchemy"))
MARKS_ENTRY = DIALECT.release >= (2, 0, 10)
DIALECT_1 = DIALECT.major < 2
#: connector 4.0.x: no SEA backend, and a 404 on OpenSession is retried for a minute
CONNECTOR_4_0 = Version(metadata.version("databricks-sql-connector")).release < (4, 1)


@pytest.fixture
def http_peer(http_peer: HeaderRecorder) -> HeaderRecorder:
    """The shared peer; answering 501 (never retried) for a 4.0 connector."""
    if CONNECTOR_4_0:
        http_peer.default = (501, {"error_code": "NOT_IMPLEMENTED"})
    return http_peer


def header(entry: str) -> str:
    from databricks.sql import __version__

    text = f"PyDatabricksSqlConnector/{__version__} ({entry})"
    try:
        from databricks.sql.common.agent import detect
    except ImportError:  # connectors before agent detection (the version matrix runs 4.0)
        return text
    agent = detect()
    return f"{text} agent/{agent}" if agent else text


def thrift_args(peer: HeaderRecorder, **extra: Any) -> Dict[str, Any]:
    return {"_connection_uri": peer.url + "/x", "enable_telemetry": False,
            "_retry_stop_after_attempts_count": 1, **extra}


def engine(peer: HeaderRecorder, **connect_args: Any) -> Any:
    import sqlalchemy

    return sqlalchemy.create_engine(URL, connect_args=thrift_args(peer, **connect_args))


def connect_fails(eng: Any) -> None:
    import sqlalchemy

    with pytest.raises(sqlalchemy.exc.DBAPIError):
        eng.connect()


def test_engine_created_before_instrument(http_peer: HeaderRecorder) -> None:
    eng = engine(http_peer)
    connect_fails(eng)
    own = "sqlalchemy" if DIALECT_1 else "sqlalchemy + "
    assert http_peer.user_agents("/x") == [header(own)]  # the dialect's own
    ua_autotag.instrument(UA, integrations=SQL)
    http_peer.clear()
    connect_fails(eng)
    marker = "sqlalchemy + sqlalchemy" if DIALECT_1 else "sqlalchemy +"
    assert http_peer.user_agents("/x") == [header(f"{marker} {UA}")]


def test_engine_created_after_instrument(http_peer: HeaderRecorder) -> None:
    ua_autotag.instrument(UA, integrations=SQL)
    connect_fails(engine(http_peer))
    assert http_peer.user_agents("/x") == [header(f"sqlalchemy + {UA}")]


@pytest.mark.parametrize(
    ("mode", "connect_args", "expected"),
    [
        ("append", {"user_agent_entry": "MyApp/1.0"}, f"sqlalchemy + MyApp/1.0 {UA}"),
        ("replace", {"user_agent_entry": "MyApp/1.0"}, f"sqlalchemy + {UA}"),
        ("keep", {"user_agent_entry": "MyApp/1.0"}, "sqlalchemy + MyApp/1.0"),
        ("keep", {}, f"sqlalchemy + {UA}"),  # the bare marker is no caller value
        ("append", {"_user_agent_entry": "Legacy/0.9"}, f"sqlalchemy + Legacy/0.9 {UA}"),
        ("append", {"user_agent_entry": f"MyApp/1.0 {UA}"}, f"sqlalchemy + MyApp/1.0 {UA}"),
    ],
)
def test_modes_with_a_caller_entry(
    http_peer: HeaderRecorder, mode: str, connect_args: Dict[str, str], expected: str
) -> None:
    ua_autotag.instrument(UA, integrations=SQL, mode=mode)
    connect_fails(engine(http_peer, **connect_args))
    if not MARKS_ENTRY and "user_agent_entry" in connect_args:
        expected = expected.replace("sqlalchemy + ", "", 1)  # the dialect marks it not
    assert http_peer.user_agents("/x") == [header(expected)]


@pytest.mark.skipif(CONNECTOR_4_0, reason="this connector has no SEA backend (4.1+)")
def test_sea_through_the_dialect(http_peer: HeaderRecorder) -> None:
    import sqlalchemy

    ua_autotag.instrument(UA, integrations=SQL)
    eng = sqlalchemy.create_engine(URL, connect_args={
        "http_path": "/sql/1.0/warehouses/abc", "server_hostname": "http://127.0.0.1",
        "_port": http_peer.port, "use_sea": True,
        "enable_telemetry": False, "_retry_stop_after_attempts_count": 1,
        "user_agent_entry": "MyApp/1.0",
    })
    connect_fails(eng)
    marker = "sqlalchemy + " if MARKS_ENTRY else ""
    assert http_peer.user_agents("/api/2.0/sql/sessions") == [
        header(f"{marker}MyApp/1.0 {UA}")
    ]


def test_one_span_per_connection(http_peer: HeaderRecorder, spans: Any) -> None:
    ua_autotag.instrument(UA, integrations=SQL)
    eng = engine(http_peer)
    connect_fails(eng)
    connect_fails(eng)
    finished = [s for s in spans.get_finished_spans()
                if s.attributes.get("ua_autotag.integration") == "databricks_sql"]
    assert len(finished) == 2  # two connection attempts, two spans, no layer doubled
    markers = ["sqlalchemy +", "sqlalchemy + sqlalchemy" if DIALECT_1 else "sqlalchemy +"]
    for span, marker in zip(finished, markers):
        assert span.attributes["user_agent.original"] == header(f"{marker} {UA}")
        assert span.attributes["server.port"] == http_peer.port
        text = json.dumps(dict(span.attributes)) + json.dumps(
            [dict(e.attributes) for e in span.events])
        assert TOKEN not in text


def test_dialect_imported_after_instrument_in_a_fresh_interpreter(http_peer: HeaderRecorder
                                                                  ) -> None:
    code = f"""
        import json, sys
        import ua_autotag
        ua_autotag.instrument({UA!r}, integrations=["databricks_sql"])
        assert "databricks.sql" not in sys.modules and "sqlalchemy" not in sys.modules
        import sqlalchemy
        eng = sqlalchemy.create_engine({URL!r}, connect_args={thrift_args(http_peer)!r})
        try:
            eng.connect()
        except sqlalchemy.exc.DBAPIError:
            pass
        print(json.dumps(ua_autotag.status()["databricks_sql"].state))
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == "patched"
    assert http_peer.user_agents("/x") == [header(f"sqlalchemy + {UA}")]
