"""Databricks Connect: real ``DatabricksSession`` sessions against a real local gRPC peer.

databricks-connect ships its own ``pyspark`` and cannot share an environment with
``pyspark-client``: these tests run in their own virtualenv (``nox -s dbconnect``).

Databricks Connect's own channel builder (every SDK-configured session: ``.remote(host=,
token=, cluster_id= | serverless=)``, ``.serverless()``, ``.sdkConfig()``,
``.profile()``) only speaks TLS to the workspace host, so the peer serves TLS with a
throw-away certificate that gRPC trusts through ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``,
and the workspace host is ``https://127.0.0.1:PORT``. The Databricks SDK's host
metadata probe (plain HTTPS) cannot be answered by a gRPC port: profiles carry
``retry_timeout_seconds = 1`` so it gives up in a second, as it is designed to.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterator, List, Set

import pytest

pytest.importorskip(
    "databricks.connect",
    reason="databricks-connect replaces pyspark in an environment: run `nox -s dbconnect`",
)

import ua_autotag
from tests.conftest import UA
from ua_autotag.verify.spark_peer import SparkConnectPeer

OTHER = "Other_Product/2.0"
TOKEN = "dapi0123456789abcdef0123456789abcdef"  # planted: must never reach a span
CLUSTER = "0123-456789-abcdefgh"


def _sdk_version() -> str:
    from importlib import metadata

    return metadata.version("databricks-sdk")


def _dbconnect_major() -> int:
    from importlib import metadata

    return int(metadata.version("databricks-connect").split(".")[0])


def _markers() -> str:
    """Databricks Connect's own tokens after the app's part of an SDK-configured session."""
    return f"databricks-session databricks-sdk/{_sdk_version()}"


@pytest.fixture(scope="module")
def tls_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkConnectPeer]:
    with SparkConnectPeer(tls=True) as server:
        assert server.ca_file is not None
        # read by gRPC when it loads its default roots (the first TLS channel)
        os.environ["GRPC_DEFAULT_SSL_ROOTS_FILE_PATH"] = server.ca_file
        yield server


@pytest.fixture(scope="module")
def plain_peer() -> Iterator[SparkConnectPeer]:
    with SparkConnectPeer() as server:
        yield server


@pytest.fixture
def db(
    tls_peer: SparkConnectPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SparkConnectPeer]:
    """The TLS peer, emptied, with a ``.databrickscfg`` pointing at it; sessions stopped after."""
    for var in list(os.environ):
        if var.startswith("DATABRICKS_") or var in ("SPARK_REMOTE", "SPARK_CONNECT_USER_AGENT"):
            monkeypatch.delenv(var)
    cfg = tmp_path / "databrickscfg"
    common = f"host = {tls_peer.https_url}\ntoken = {TOKEN}\nretry_timeout_seconds = 1\n"
    cfg.write_text(
        f"[cluster]\n{common}cluster_id = {CLUSTER}\n\n"
        f"[serverless]\n{common}serverless_compute_id = auto\n\n"
        f"[bare]\n{common}\n"
    )
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    # a stopped session's last ReleaseExecute may still be on its way: ignore them
    _STALE.update(c.session_id for c in tls_peer.requests)
    tls_peer.clear()
    yield tls_peer
    for session in _SESSIONS:
        session.stop()
    _SESSIONS.clear()


_SESSIONS: List[Any] = []
_STALE: Set[str] = set()  # session ids of earlier tests


def _fresh(peer: SparkConnectPeer) -> List[Any]:
    return [c for c in peer.requests if c.session_id not in _STALE]


def _config(peer: SparkConnectPeer, **kwargs: Any) -> Any:
    from databricks.sdk.core import Config

    return Config(host=peer.https_url, token=TOKEN, retry_timeout_seconds=1, **kwargs)


def _create(builder: Any) -> Any:
    """``builder.create()``: a new session (Databricks Connect 16+); 15.4 has only
    ``getOrCreate()`` (sessions are stopped after each test, so it makes a new one)."""
    create = getattr(builder, "create", None)
    return create() if create is not None else builder.getOrCreate()


def _keep(spark: Any) -> Any:
    _SESSIONS.append(spark)
    return spark


def _act(spark: Any) -> None:
    assert [row.id for row in spark.range(2).collect()] == [0, 1]


def user_parts(peer: SparkConnectPeer) -> List[str]:
    """The user part (before ``dbconnect/<v>``) of every request the peer received."""
    agents = [c.client_type for c in _fresh(peer)]
    assert agents, "no request reached the peer"
    assert "ExecutePlan" in {c.method for c in _fresh(peer)}
    parts = []
    for agent in agents:
        user, sep, _ = agent.partition(" dbconnect/")
        assert sep, f"not a Databricks Connect user agent: {agent!r}"
        parts.append(user)
    return parts


def assert_user_part(peer: SparkConnectPeer, expected: str) -> None:
    parts = user_parts(peer)
    assert set(parts) == {expected}, parts
    for agent in user_parts(peer):
        assert agent.split().count(UA) == (1 if UA in expected.split() else 0)


# ------------------------------------------------------------------ baseline


def test_peer_sees_databricks_connect_default_when_not_instrumented(db: SparkConnectPeer) -> None:
    from databricks.connect import DatabricksSession

    builder = DatabricksSession.builder.sdkConfig(_config(db, cluster_id=CLUSTER))
    _act(_keep(_create(builder.validateSession(False))))
    assert_user_part(db, _markers())
    # it really is Databricks Connect's channel builder: cluster header and PAT travel
    call = _fresh(db)[0]
    assert call.metadata.get("x-databricks-cluster-id") == CLUSTER
    assert call.metadata.get("authorization") == f"Bearer {TOKEN}"


# ------------------------------------------------------------------ API shapes x modes


@pytest.mark.parametrize(
    "mode, app, expected",
    [
        ("append", None, UA),
        ("append", "myapp/1", f"myapp/1 {UA}"),
        ("replace", "myapp/1", UA),
        ("keep", "myapp/1", "myapp/1"),
        ("keep", None, UA),
    ],
)
def test_sdk_config_with_and_without_user_agent(
    db: SparkConnectPeer, mode: str, app: Any, expected: str
) -> None:
    from databricks.connect import DatabricksSession

    ua_autotag.instrument(UA, mode=mode)
    builder = DatabricksSession.builder.sdkConfig(_config(db, cluster_id=CLUSTER))
    if app is not None:
        builder = builder.userAgent(app)
    _act(_keep(_create(builder.validateSession(False))))
    assert_user_part(db, f"{expected} {_markers()}")


def test_remote_with_host_token_cluster_id(db: SparkConnectPeer) -> None:
    from databricks.connect import DatabricksSession

    ua_autotag.instrument(UA)
    builder = DatabricksSession.builder.remote(
        host=db.https_url, token=TOKEN, cluster_id=CLUSTER, user_agent="remoteapp/1"
    ).profile("bare")  # only for retry_timeout_seconds: host and token are the arguments
    _act(_keep(_create(builder.validateSession(False))))
    assert_user_part(db, f"remoteapp/1 {UA} {_markers()}")
    assert _fresh(db)[0].metadata.get("x-databricks-cluster-id") == CLUSTER


def test_remote_serverless_including_the_validation_request(db: SparkConnectPeer) -> None:
    """Serverless validation sends AnalyzePlan(spark_version) inside getOrCreate(): tagged too."""
    from databricks.connect import DatabricksSession

    ua_autotag.instrument(UA)
    builder = DatabricksSession.builder.remote(host=db.https_url, token=TOKEN, serverless=True)
    _act(_keep(builder.profile("bare").getOrCreate()))
    if _dbconnect_major() >= 16:  # 15.4 validates no serverless session
        assert "AnalyzePlan" in {c.method for c in _fresh(db)}
    assert_user_part(db, f"{UA} {_markers()}")
    assert "x-databricks-session-id" in _fresh(db)[0].metadata


def test_serverless_builder_method_with_profile(db: SparkConnectPeer) -> None:
    from databricks.connect import DatabricksSession

    ua_autotag.instrument(UA)
    builder = DatabricksSession.builder.serverless().profile("bare").userAgent("srv/2")
    _act(_keep(_create(builder)))
    assert_user_part(db, f"srv/2 {UA} {_markers()}")


def test_profile_and_default_config(db: SparkConnectPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    from databricks.connect import DatabricksSession

    ua_autotag.instrument(UA)
    _act(_keep(_create(DatabricksSession.builder.profile("cluster").validateSession(False))))
    assert_user_part(db, f"{UA} {_markers()}")
    db.clear()
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "serverless")  # the default Config()
    _act(_keep(_create(DatabricksSession.builder)))
    assert_user_part(db, f"{UA} {_markers()}")


def test_spark_connect_user_agent_env(
    db: SparkConnectPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from databricks.connect import DatabricksSession

    monkeypatch.setenv("SPARK_CONNECT_USER_AGENT", "envapp/3")
    ua_autotag.instrument(UA)
    _act(_keep(_create(DatabricksSession.builder.profile("serverless"))))
    assert_user_part(db, f"envapp/3 {UA} {_markers()}")


def test_connection_string(plain_peer: SparkConnectPeer, db: SparkConnectPeer) -> None:
    """``.remote("sc://...")`` is a plain Spark Connect session: the spark_connect getter."""
    from databricks.connect import DatabricksSession

    ua_autotag.instrument(UA)
    _STALE.update(c.session_id for c in plain_peer.requests)
    plain_peer.clear()
    url = f"{plain_peer.url}/;user_agent=connstr%2F4"
    _act(_keep(_create(DatabricksSession.builder.remote(url))))
    assert_user_part(plain_peer, f"connstr/4 {UA}")


def test_connection_string_replace(
    plain_peer: SparkConnectPeer, db: SparkConnectPeer
) -> None:
    from databricks.connect import DatabricksSession

    ua_autotag.instrument(UA, mode="replace")
    _STALE.update(c.session_id for c in plain_peer.requests)
    plain_peer.clear()
    _act(_keep(_create(DatabricksSession.builder.remote(f"{plain_peer.url}/;user_agent=x%2F1"))))
    assert_user_part(plain_peer, UA)


# ------------------------------------------------------------------ lifecycle, scope, spans


def test_scoped_override_pinned_at_session_creation(db: SparkConnectPeer) -> None:
    from databricks.connect import DatabricksSession

    ua_autotag.instrument(UA)
    with ua_autotag.user_agent(OTHER):
        scoped = _keep(_create(DatabricksSession.builder.profile("serverless")))
    _act(scoped)
    assert_user_part(db, f"{OTHER} {_markers()}")


def test_uninstrument_leaves_new_sessions_untagged(db: SparkConnectPeer) -> None:
    from databricks.connect import DatabricksSession
    from databricks.connect.auth import DatabricksChannelBuilder

    original = DatabricksChannelBuilder.__dict__["__init__"]
    ua_autotag.instrument(UA)
    assert ua_autotag.status()["databricks_connect"].state == "patched"
    assert ua_autotag.status()["databricks_connect"].version == _dbconnect_version()
    ua_autotag.uninstrument()
    assert DatabricksChannelBuilder.__dict__["__init__"] is original
    _act(_keep(_create(DatabricksSession.builder.profile("serverless"))))
    assert_user_part(db, _markers())


def test_one_span_per_session_without_secrets(db: SparkConnectPeer, spans: Any) -> None:
    from databricks.connect import DatabricksSession
    from opentelemetry.trace import SpanKind

    ua_autotag.instrument(UA)
    spark = _keep(_create(DatabricksSession.builder.profile("cluster").validateSession(False)))
    _act(spark)
    _act(spark)
    (span,) = spans.get_finished_spans()
    assert span.kind is SpanKind.CLIENT
    attrs = dict(span.attributes)
    assert attrs["db.system.name"] == "spark"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == db.port
    assert {c.client_type for c in _fresh(db)} == {attrs["user_agent.original"]}
    for value in attrs.values():
        assert TOKEN not in str(value)
        assert "dapi" not in str(value)


CHILD = textwrap.dedent(
    """
    import sys
    import ua_autotag
    ua_autotag.instrument({ua!r})
    assert "pyspark" not in sys.modules and "databricks.connect" not in sys.modules
    from databricks.connect import DatabricksSession
    builder = DatabricksSession.builder.profile("serverless").userAgent("child/1")
    spark = builder.create() if hasattr(builder, "create") else builder.getOrCreate()
    assert [r.id for r in spark.range(1).collect()] == [0]
    spark.stop()
    """
)


def test_imported_after_instrument_in_fresh_interpreter(
    db: SparkConnectPeer, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"  # a file: pyspark exits at import under ``python -c``
    script.write_text(CHILD.format(ua=UA))
    env = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    result = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                            text=True, timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert_user_part(db, f"child/1 {UA} {_markers()}")


def _dbconnect_version() -> str:
    from importlib import metadata

    return metadata.version("databricks-connect")
