"""Spark Connect: real pyspark sessions against a real gRPC Spark Connect peer.

Every test creates real sessions (``sc://127.0.0.1:PORT``), runs a real action
(``spark.range(n).collect()``, ``spark.conf``) and asserts the ``client_type`` the
server received on every request, per API shape, import order and mode.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Optional, Set

import pytest
from pyspark.sql.connect.client import core
from pyspark.sql.connect.session import SparkSession

import ua_autotag
from tests.conftest import UA
from ua_autotag.verify.spark_peer import SparkConnectPeer

OTHER = "Other_Product/2.0"
#: what the client appends after the user part: "spark/<v> os/.. python/..", with
#: "dbconnect/<v>" first in Databricks Connect's bundled pyspark
SUFFIX = re.compile(r" (?:dbconnect|spark)/")


@pytest.fixture(scope="module")
def peer() -> Iterator[SparkConnectPeer]:
    with SparkConnectPeer() as server:
        yield server


@pytest.fixture
def sc(peer: SparkConnectPeer, monkeypatch: pytest.MonkeyPatch) -> Iterator[SparkConnectPeer]:
    """The peer, emptied; no Spark Connect environment; every session stopped after."""
    monkeypatch.delenv("SPARK_CONNECT_USER_AGENT", raising=False)
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    # a stopped session's last ReleaseExecute may still be on its way: ignore them
    _STALE.update(c.session_id for c in peer.requests)
    peer.clear()
    yield peer
    for session in list(_SESSIONS):
        session.stop()
    _SESSIONS.clear()


_SESSIONS: List[Any] = []
_STALE: Set[str] = set()  # session ids of earlier tests


def _session(builder: Any, get_or_create: bool = False) -> Any:
    spark = builder.getOrCreate() if get_or_create else builder.create()
    _SESSIONS.append(spark)
    return spark


def _act(spark: Any) -> None:
    """A real action: Config, ExecutePlan, ReleaseExecute reach the peer."""
    assert [row.id for row in spark.range(2).collect()] == [0, 1]
    spark.conf.set("spark.ua_autotag.test", "1")
    assert spark.conf.get("spark.ua_autotag.test") == "1"


def _user_parts(peer: SparkConnectPeer, methods: Optional[Iterable[str]] = None) -> List[str]:
    agents = [
        c.client_type
        for c in peer.requests
        if c.session_id not in _STALE and (methods is None or c.method in methods)
    ]
    assert agents, "no request reached the peer"
    assert "ExecutePlan" in {c.method for c in peer.requests if c.session_id not in _STALE}
    parts = []
    for agent in agents:
        found = SUFFIX.search(agent)
        assert found, f"not a Spark Connect user agent: {agent!r}"
        parts.append(agent[: found.start()])
    return parts


def assert_user_part(
    peer: SparkConnectPeer, expected: str, methods: Optional[Iterable[str]] = None
) -> None:
    """Every request of the session (or of RPCs ``methods``) carried ``expected``."""
    parts = _user_parts(peer, methods)
    assert set(parts) == {expected}, parts
    for agent in _user_parts(peer, methods):
        assert agent.split().count(UA) == (1 if UA in expected.split() else 0)


# ------------------------------------------------------------------ baseline


def test_peer_sees_pyspark_default_when_not_instrumented(sc: SparkConnectPeer) -> None:
    _act(_session(SparkSession.builder.remote(sc.url)))
    assert_user_part(sc, "_SPARK_CONNECT_PYTHON")
    assert ua_autotag.status()["spark_connect"].state == "disabled"


# ------------------------------------------------------------------ API shapes x modes


@pytest.mark.parametrize(
    "mode, expected",
    [("append", UA), ("replace", UA), ("keep", UA)],
)
def test_remote_url_without_user_agent(sc: SparkConnectPeer, mode: str, expected: str) -> None:
    """pyspark's placeholder ``_SPARK_CONNECT_PYTHON`` is no caller's value: ours replaces it."""
    ua_autotag.instrument(UA, mode=mode)
    _act(_session(SparkSession.builder.remote(sc.url)))
    assert_user_part(sc, expected)


@pytest.mark.parametrize(
    "mode, expected",
    [("append", f"myapp/1 {UA}"), ("replace", UA), ("keep", "myapp/1")],
)
def test_user_agent_in_connection_string(sc: SparkConnectPeer, mode: str, expected: str) -> None:
    ua_autotag.instrument(UA, mode=mode)
    _act(_session(SparkSession.builder.remote(f"{sc.url}/;user_agent=myapp%2F1")))
    assert_user_part(sc, expected)


@pytest.mark.parametrize(
    "mode, expected",
    [("append", f"envapp/2 {UA}"), ("replace", UA), ("keep", "envapp/2")],
)
def test_spark_connect_user_agent_env(
    sc: SparkConnectPeer, monkeypatch: pytest.MonkeyPatch, mode: str, expected: str
) -> None:
    monkeypatch.setenv("SPARK_CONNECT_USER_AGENT", "envapp/2")
    ua_autotag.instrument(UA, mode=mode)
    _act(_session(SparkSession.builder.remote(sc.url)))
    assert_user_part(sc, expected)


POSIT = "posit-workbench/2024.12.1 rstudio/2024.12.1+563"


@pytest.mark.parametrize(
    "mode, expected",
    [("append", f"{POSIT} {UA}"), ("replace", UA), ("keep", POSIT)],
)
def test_inherited_posit_user_agent_is_the_applications_own(
    sc: SparkConnectPeer, monkeypatch: pytest.MonkeyPatch, mode: str, expected: str
) -> None:
    """Posit Workbench / RStudio export SPARK_CONNECT_USER_AGENT for their own
    attribution: an inherited value (not one our launcher wrote) is the application's
    own, kept whole with ours after it (per mode)."""
    monkeypatch.setenv("SPARK_CONNECT_USER_AGENT", POSIT)
    ua_autotag.instrument(UA, mode=mode)
    _act(_session(SparkSession.builder.remote(sc.url)))
    assert_user_part(sc, expected)


def test_posit_value_under_the_launcher_stays_the_applications(
    sc: SparkConnectPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``ua-autotag run`` the child inherits Posit's value merged with ours (for
    non-Python clients); its Python clients merge with Posit's own, not with that."""
    from ua_autotag.merge import exported

    env = {"SPARK_CONNECT_USER_AGENT": POSIT}
    exported(env, "SPARK_CONNECT_USER_AGENT", f"{POSIT} {UA}")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    ua_autotag.instrument("Other_Product/2")
    _act(_session(SparkSession.builder.remote(sc.url)))
    assert_user_part(sc, f"{POSIT} Other_Product/2")


def test_connection_string_beats_env_and_both_stay_single(
    sc: SparkConnectPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARK_CONNECT_USER_AGENT", "envapp/2")
    ua_autotag.instrument(UA)
    _act(_session(SparkSession.builder.remote(f"{sc.url}/;user_agent=my%20app%2F1")))
    assert_user_part(sc, f"my app/1 {UA}")


def test_ours_already_in_callers_value_is_not_repeated(sc: SparkConnectPeer) -> None:
    ua_autotag.instrument(UA)
    quoted = UA.replace("/", "%2F")
    _act(_session(SparkSession.builder.remote(f"{sc.url}/;user_agent=app%2F1%20{quoted}")))
    assert_user_part(sc, f"app/1 {UA}")


def test_spark_remote_env(sc: SparkConnectPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyspark.sql import SparkSession as PublicSparkSession

    monkeypatch.setenv("SPARK_REMOTE", f"{sc.url}/;user_agent=remoteapp%2F3")
    ua_autotag.instrument(UA)
    spark = _session(PublicSparkSession.builder, get_or_create=True)
    _act(spark)
    assert_user_part(sc, f"remoteapp/3 {UA}")


class _InsecureBuilder(core.ChannelBuilder):
    """A custom ChannelBuilder, as an application or a platform writes one."""

    def __init__(self, target: str, **params: str) -> None:
        super().__init__(params=dict(params))
        self._target = target

    def toChannel(self) -> Any:
        return self._insecure_channel(self._target)

    @property
    def host(self) -> str:
        return self._target.rsplit(":", 1)[0]


class _TunedDefaultBuilder(core.DefaultChannelBuilder):
    """A DefaultChannelBuilder subclass adding a channel option."""

    def __init__(self, url: str) -> None:
        super().__init__(url, channelOptions=[("grpc.enable_retries", 0)])


@pytest.mark.parametrize(
    "mode, expected",
    [("append", f"tool/3 {UA}"), ("replace", UA), ("keep", "tool/3")],
)
def test_custom_channel_builder_with_params(sc: SparkConnectPeer, mode: str, expected: str) -> None:
    ua_autotag.instrument(UA, mode=mode)
    builder = _InsecureBuilder(f"127.0.0.1:{sc.port}", user_agent="tool/3")
    _act(_session(SparkSession.builder.channelBuilder(builder)))
    assert_user_part(sc, expected)


def test_custom_channel_builder_without_user_agent(sc: SparkConnectPeer) -> None:
    ua_autotag.instrument(UA)
    _act(_session(SparkSession.builder.channelBuilder(_InsecureBuilder(f"127.0.0.1:{sc.port}"))))
    assert_user_part(sc, UA)


def test_default_channel_builder_subclass(sc: SparkConnectPeer) -> None:
    ua_autotag.instrument(UA)
    builder = _TunedDefaultBuilder(f"{sc.url}/;user_agent=tuned%2F4")
    _act(_session(SparkSession.builder.channelBuilder(builder)))
    assert_user_part(sc, f"tuned/4 {UA}")


class _PrefixingBuilder(_InsecureBuilder):
    """A builder overriding ``userAgent`` itself, on top of pyspark's value."""

    @property
    def userAgent(self) -> str:
        return "platform/9 " + super().userAgent


def test_channel_builder_overriding_user_agent_through_super(sc: SparkConnectPeer) -> None:
    """An override that reads ``super().userAgent`` is tagged (one that does not, is not)."""
    ua_autotag.instrument(UA)
    builder = _PrefixingBuilder(f"127.0.0.1:{sc.port}", user_agent="tool/3")
    _act(_session(SparkSession.builder.channelBuilder(builder)))
    assert_user_part(sc, f"platform/9 tool/3 {UA}")


def test_bare_spark_connect_client(sc: SparkConnectPeer) -> None:
    """The lowest public layer: ``SparkConnectClient`` without a SparkSession."""
    ua_autotag.instrument(UA)
    client = core.SparkConnectClient(f"{sc.url}/;user_agent=raw%2F5")
    try:
        assert client.get_configs("spark.ua_autotag.missing") == (None,)
    finally:
        client.close()
    assert sc.user_agents("Config")
    fresh = [c.client_type for c in sc.requests if c.session_id not in _STALE]
    assert {SUFFIX.split(a, 1)[0] for a in fresh} == {f"raw/5 {UA}"}


def test_artifact_requests_pyspark_sends_untyped_are_tagged(
    sc: SparkConnectPeer, tmp_path: Path
) -> None:
    """pyspark leaves ``client_type`` empty on AddArtifacts: we fill it, on this path only."""
    data = tmp_path / "data.txt"
    data.write_text("x")
    spark = _session(SparkSession.builder.remote(sc.url))
    spark.addArtifacts(str(data), file=True)
    assert set(sc.user_agents("AddArtifacts")) == {""}  # pyspark's own behaviour

    sc.clear()
    ua_autotag.instrument(UA)
    spark = _session(SparkSession.builder.remote(f"{sc.url}/;user_agent=art%2F1"))
    spark.addArtifacts(str(data), file=True)
    _act(spark)
    assert sc.user_agents("AddArtifacts")
    assert_user_part(sc, f"art/1 {UA}")


# ------------------------------------------------------------------ lifecycle and order


def test_session_created_before_instrument_is_tagged_from_then_on(sc: SparkConnectPeer) -> None:
    original = core.ChannelBuilder.__dict__["userAgent"]
    spark = _session(SparkSession.builder.remote(f"{sc.url}/;user_agent=early%2F1"))
    _act(spark)
    assert_user_part(sc, "early/1")

    ua_autotag.instrument(UA)
    assert ua_autotag.status()["spark_connect"].state == "patched"
    assert ua_autotag.status()["spark_connect"].version == _pyspark_version()
    # ReleaseExecute of an earlier operation may still arrive (from pyspark's release
    # thread, with that operation's client_type): look at the requests made now
    now = ("Config", "ExecutePlan")
    sc.clear()
    _act(spark)
    assert_user_part(sc, f"early/1 {UA}", now)

    ua_autotag.uninstrument()
    assert core.ChannelBuilder.__dict__["userAgent"] is original  # restored by identity
    sc.clear()
    _act(spark)
    assert_user_part(sc, "early/1", now)


def test_scoped_override_is_pinned_at_session_creation(sc: SparkConnectPeer) -> None:
    ua_autotag.instrument(UA)
    with ua_autotag.user_agent(OTHER):
        scoped = _session(SparkSession.builder.remote(f"{sc.url}/;user_agent=a%2F1"))
    plain = _session(SparkSession.builder.remote(f"{sc.url}/;user_agent=b%2F1"))

    _act(scoped)  # run outside the scope: the session keeps its creation-time value
    assert set(_user_parts(sc)) == {f"a/1 {OTHER}"}
    sc.clear()
    with ua_autotag.user_agent(OTHER):
        _act(plain)  # a scope entered later does not move an existing session
    assert set(_user_parts(sc, ("Config", "ExecutePlan"))) == {f"b/1 {UA}"}


def test_scope_and_requests_from_other_threads(sc: SparkConnectPeer) -> None:
    """Requests sent from threads (release, reattach) carry the session's value too."""
    import threading

    ua_autotag.instrument(UA)
    with ua_autotag.user_agent(OTHER):
        spark = _session(SparkSession.builder.remote(sc.url))
    errors: List[BaseException] = []

    def work() -> None:
        try:
            _act(spark)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(60)
    assert not errors
    assert_user_part(sc, OTHER)


def test_caller_value_too_long_to_append_is_left_alone(
    sc: SparkConnectPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """The client allows 2048 URL-quoted characters: we never cut the caller's value."""
    long_value = "x" * 2040
    ua_autotag.instrument(UA)
    with caplog.at_level(logging.WARNING, logger="ua_autotag"):
        _act(_session(SparkSession.builder.remote(f"{sc.url}/;user_agent={long_value}")))
    assert_user_part(sc, long_value)
    warnings = [r for r in caplog.records if "spark_connect" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "2048" in warnings[0].getMessage()


def test_callers_own_over_limit_error_is_unchanged(sc: SparkConnectPeer) -> None:
    """An over-long caller value fails exactly as without ua-autotag (the client's error)."""
    from pyspark.errors import PySparkException

    ua_autotag.instrument(UA)
    spark = _session(SparkSession.builder.remote(f"{sc.url}/;user_agent={'y' * 2100}"))
    with pytest.raises(PySparkException, match="2048"):
        spark.range(1).collect()


# ------------------------------------------------------------------ spans


def test_one_client_span_per_session_without_secrets(sc: SparkConnectPeer, spans: Any) -> None:
    from opentelemetry.trace import SpanKind

    ua_autotag.instrument(UA)
    spark = _session(SparkSession.builder.remote(f"{sc.url}/;user_agent=app%2F1"))
    _act(spark)
    _act(spark)
    finished = [
        s
        for s in spans.get_finished_spans()
        if s.attributes.get("ua_autotag.integration") == "spark_connect"
    ]
    assert len(finished) == 1
    span = finished[0]
    assert span.kind is SpanKind.CLIENT
    assert span.name == f"connect 127.0.0.1:{sc.port}"
    attrs = dict(span.attributes)
    assert attrs["db.system.name"] == "spark"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == sc.port
    fresh = {c.client_type for c in sc.requests if c.session_id not in _STALE}
    assert fresh == {attrs["user_agent.original"]}
    assert attrs["ua_autotag.client.version"] == (_pyspark_version() or "unknown")

    token_url = f"sc://127.0.0.1:{sc.port}/;token=SeCrEtT0ken123;user_agent=app%2F1"
    spans.clear()
    client = core.SparkConnectClient(token_url)  # a TLS channel: created, never used
    client.close()  # else pyspark's atexit hook retries an RPC over it for minutes
    assert client._builder.token == "SeCrEtT0ken123"
    (span,) = spans.get_finished_spans()
    for value in span.attributes.values():
        assert "SeCrEtT0ken123" not in str(value)
    assert SUFFIX.split(span.attributes["user_agent.original"], 1)[0] == f"app/1 {UA}"


def test_failed_session_creation_span_and_original_error(spans: Any) -> None:
    from opentelemetry.trace import StatusCode
    from pyspark.errors import PySparkValueError

    ua_autotag.instrument(UA)
    with pytest.raises(PySparkValueError) as info:
        core.SparkConnectClient("sc://127.0.0.1:15002/not-a-path;token=SeCrEt")
    assert "INVALID_CONNECT_URL" in str(info.value)
    (span,) = spans.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["server.address"] == "127.0.0.1"
    for value in span.attributes.values():
        assert "SeCrEt" not in str(value)
    for event in span.events:
        for value in event.attributes.values():
            assert "SeCrEt" not in str(value)


# ------------------------------------------------------------------ fresh interpreters

CHILD = textwrap.dedent(
    """
    import sys
    {prelude}
    from pyspark.sql import SparkSession
    spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate()
    assert [r.id for r in spark.range(1).collect()] == [0]
    spark.stop()
    """
)


def _run_child(tmp_path: Path, prelude: str, url: str, **env: str) -> None:
    # A script file, not ``python -c``: pyspark takes a __main__ without __file__ for
    # its doctest runner and exits at import when SPARK_HOME cannot be found.
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(prelude=textwrap.dedent(prelude)))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("UA_AUTOTAG_", "SPARK_"))}
    environ.update(env)
    result = subprocess.run(
        [sys.executable, str(script), url], env=environ, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_pyspark_imported_after_instrument_in_fresh_interpreter(
    sc: SparkConnectPeer, tmp_path: Path
) -> None:
    prelude = f"""
    import ua_autotag
    ua_autotag.instrument({UA!r})
    assert "pyspark" not in sys.modules
    """
    _run_child(tmp_path, prelude, f"{sc.url}/;user_agent=child%2F1")
    assert_user_part(sc, f"child/1 {UA}")


def test_environment_one_liner_in_fresh_interpreter(sc: SparkConnectPeer, tmp_path: Path) -> None:
    _run_child(
        tmp_path, "import ua_autotag", sc.url, UA_AUTOTAG_USER_AGENT=UA, UA_AUTOTAG_MODE="append"
    )
    assert_user_part(sc, UA)


def test_pyspark_imported_before_instrument_in_fresh_interpreter(
    sc: SparkConnectPeer, tmp_path: Path
) -> None:
    prelude = f"""
    import pyspark.sql.connect.client.core
    import ua_autotag
    ua_autotag.instrument({UA!r}, mode="replace")
    """
    _run_child(tmp_path, prelude, f"{sc.url}/;user_agent=child%2F1")
    assert_user_part(sc, UA)


def _pyspark_version() -> Optional[str]:
    """The pyspark distribution's version; None for the copy databricks-connect bundles."""
    from importlib import metadata

    for dist in ("pyspark-client", "pyspark-connect", "pyspark"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    metadata.version("databricks-connect")  # else: no Spark Connect client at all
    return None


def test_rpc_on_a_closed_channel_fails_as_without_us(tmp_path: Path) -> None:
    """The tag must not change how misuse fails: grpc raises, the interpreter survives.

    (An earlier design intercepted the gRPC channel; grpc then segfaulted when a closed
    intercepted channel was used, e.g. by pyspark's exit hook.)
    """
    script = tmp_path / "closed.py"
    script.write_text(
        textwrap.dedent(f"""
        import ua_autotag
        from ua_autotag.verify.spark_peer import SparkConnectPeer
        ua_autotag.instrument({UA!r}, spans=False)
        from pyspark.sql.connect.client.core import SparkConnectClient
        with SparkConnectPeer() as peer:
            client = SparkConnectClient(peer.url)
            client._channel.close()  # private misuse: closed underneath the client
            try:
                client._artifact_manager.is_cached_artifact("x")
            except Exception as exc:
                print("raised", type(exc).__name__)
            client._closed = True
    """)
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UA_AUTOTAG_")}
    result = subprocess.run(
        [sys.executable, str(script)], env=environ, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "raised" in result.stdout
