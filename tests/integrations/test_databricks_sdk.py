"""databricks-sdk: the real SDK against a local HTTP peer; we assert the header it received.

Every request of every client - WorkspaceClient, AccountClient, bare ApiClient,
``Config.sql_http_path``, the ``/.well-known`` probe - carries our token exactly once,
next to everything the SDK and the application put there, whether the client was
built before or after ``instrument()``, and follows re-targeting and scopes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any, Dict, Iterator, List

import pytest

import ua_autotag
from tests import databricks
from ua_autotag.verify.http_peer import HeaderRecorder

UA = "AcmePartner_DatEngProduct/3.5"
OTHER = "OtherIsv_OtherProduct/2.0"
ME = databricks.ME
WELL_KNOWN = "/.well-known/databricks-config"
TOKEN = "dapi0123456789abcdef0123456789ab"  # shaped like a real PAT: must never leak
SDK = ["databricks_sdk"]


@pytest.fixture
def peer(http_peer: HeaderRecorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeaderRecorder]:
    """The workspace: answers the SCIM Me call; no DATABRICKS_* from the environment."""
    yield databricks.workspace(http_peer, monkeypatch)


def workspace(peer: HeaderRecorder, **kwargs: Any) -> Any:
    from databricks.sdk import WorkspaceClient

    return WorkspaceClient(host=peer.url, token=TOKEN, **kwargs)


def me(peer: HeaderRecorder, client: Any) -> str:
    """Call the SCIM Me API through ``client``; the User-Agent the peer got."""
    peer.clear()
    assert client.current_user.me().user_name == "someone@example.com"
    agents = peer.user_agents(ME)
    assert len(agents) == 1
    return agents[0]


def sdk_version() -> str:
    from databricks.sdk.version import __version__

    return __version__


def test_client_built_before_instrument_is_tagged_once_and_keeps_everything(
    peer: HeaderRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_SDK_UPSTREAM", "acme-cli")
    monkeypatch.setenv("DATABRICKS_SDK_UPSTREAM_VERSION", "7.1")
    w = workspace(peer, product="MyApp", product_version="1.2.0")
    untagged = me(peer, w)
    assert UA not in untagged

    ua_autotag.instrument(UA, integrations=SDK)
    tagged = me(peer, w)
    assert tagged.split().count(UA) == 1
    assert tagged == f"{untagged} {UA}"  # every SDK / app token kept, in order
    for token in ("MyApp/1.2.0", f"databricks-sdk-py/{sdk_version()}", "auth/pat",
                  "upstream/acme-cli", "upstream-version/7.1"):
        assert token in tagged.split()
    assert me(peer, w) == tagged  # stable across requests

    ua_autotag.uninstrument()
    assert me(peer, w) == untagged  # the SDK's own header, byte for byte


def test_client_built_after_instrument_tags_every_request(peer: HeaderRecorder) -> None:
    ua_autotag.instrument(UA, integrations=SDK)
    peer.clear()
    w = workspace(peer)
    w.current_user.me()
    paths = [r.path for r in peer.requests]
    assert ME in paths
    from databricks.sdk.config import Config

    if hasattr(Config, "_resolve_host_metadata"):  # SDKs with the Config() probe (0.100+)
        assert WELL_KNOWN in paths
    for recorded in peer.requests:
        assert recorded.user_agent is not None
        assert recorded.user_agent.split().count(UA) == 1, recorded
        assert recorded.user_agent.startswith("unknown/0.0.0 databricks-sdk-py/")


def test_account_client(peer: HeaderRecorder) -> None:
    from databricks.sdk import AccountClient

    peer.route("GET", "/api/2.0/accounts/acc-1/workspaces", (200, []))
    a = AccountClient(host=peer.url, account_id="acc-1", token=TOKEN)
    ua_autotag.instrument(UA, integrations=SDK)
    peer.clear()
    assert list(a.workspaces.list()) == []
    (agent,) = peer.user_agents("/api/2.0/accounts/acc-1/workspaces")
    assert agent.split().count(UA) == 1 and "auth/pat" in agent


def test_bare_api_client(peer: HeaderRecorder) -> None:
    from databricks.sdk.core import ApiClient, Config

    ua_autotag.instrument(UA, integrations=SDK)
    client = ApiClient(Config(host=peer.url, token=TOKEN, product="Bare", product_version="0.1"))
    peer.clear()
    assert client.do("GET", ME)["userName"] == "someone@example.com"
    (agent,) = peer.user_agents(ME)
    assert agent.startswith("Bare/0.1 databricks-sdk-py/")
    assert agent.split().count(UA) == 1


def test_config_sql_http_path_request_is_tagged(peer: HeaderRecorder) -> None:
    """``Config.sql_http_path`` sends its own request with ``Config.user_agent``."""
    from databricks.sdk.core import Config

    ua_autotag.instrument(UA, integrations=SDK)
    cfg = Config(host=peer.url, token=TOKEN, cluster_id="c-1")
    peer.clear()
    assert cfg.sql_http_path is not None
    (agent,) = peer.user_agents(ME)
    assert agent.split().count(UA) == 1
    assert agent.endswith(f"{UA} sdk-feature/sql-http-path")


def test_retargeting_reaches_an_existing_client(peer: HeaderRecorder) -> None:
    w = workspace(peer)
    ua_autotag.instrument(UA, integrations=SDK)
    assert UA in me(peer, w).split()
    ua_autotag.instrument(OTHER, integrations=SDK)
    agent = me(peer, w).split()
    assert agent.count(OTHER) == 1 and UA not in agent


def test_scoped_override_reaches_an_existing_client(peer: HeaderRecorder) -> None:
    w = workspace(peer)
    ua_autotag.instrument(UA, integrations=SDK)
    with ua_autotag.user_agent(OTHER):
        inside = me(peer, w).split()
    outside = me(peer, w).split()
    assert inside.count(OTHER) == 1 and UA not in inside
    assert outside.count(UA) == 1 and OTHER not in outside


@pytest.fixture
def app_extra() -> Iterator[Any]:
    """The SDK's process-wide extras, restored afterwards (they cannot be removed)."""
    from databricks.sdk import useragent

    saved = useragent.extra()
    yield useragent
    useragent._reset_extra(saved)


@pytest.mark.parametrize(
    ("mode", "app_token", "expected"),
    [
        ("append", UA, [UA]),  # the app already added exactly our token: not twice
        ("append", "AcmePartner_DatEngProduct/3.4", ["AcmePartner_DatEngProduct/3.4", UA]),
        ("replace", "AcmePartner_DatEngProduct/3.4", [UA]),
        ("keep", "AcmePartner_DatEngProduct/3.4", ["AcmePartner_DatEngProduct/3.4"]),
        ("keep", "SomeoneElse_Tool/1.0", ["SomeoneElse_Tool/1.0", UA]),
    ],
)
def test_modes_with_the_apps_own_extra(
    peer: HeaderRecorder, app_extra: Any, mode: str, app_token: str, expected: List[str]
) -> None:
    name, version = app_token.split("/")
    app_extra.with_extra(name, version)
    w = workspace(peer)
    ua_autotag.instrument(UA, integrations=SDK, mode=mode)
    agent = me(peer, w).split()
    ours_and_app = [t for t in agent if t in {UA, app_token}]
    assert ours_and_app == expected
    assert f"databricks-sdk-py/{sdk_version()}" in agent and "auth/pat" in agent


def test_all_integrations_on_still_tag_once(peer: HeaderRecorder) -> None:
    """With every integration enabled (REST ones included), the SDK's request is tagged once."""
    import requests

    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"])
    w = workspace(peer)
    assert me(peer, w).split().count(UA) == 1
    # the REST layer is live for this host: a plain requests call to it is tagged
    requests.get(peer.url + "/plain", timeout=10)
    (plain,) = peer.user_agents("/plain")
    assert plain.startswith("python-requests/") and plain.endswith(f" {UA}")


def test_one_span_per_client_and_no_secret(peer: HeaderRecorder, spans: Any) -> None:
    ua_autotag.instrument(UA, integrations=SDK)
    w = workspace(peer)
    w.current_user.me()
    w.current_user.me()
    finished = [s for s in spans.get_finished_spans()
                if s.attributes.get("ua_autotag.integration") == "databricks_sdk"]
    assert len(finished) == 1  # one client, two requests: one span
    (span,) = finished
    attributes = dict(span.attributes)
    assert span.name == f"connect 127.0.0.1:{peer.port}"
    assert attributes["db.system.name"] == "databricks"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["server.port"] == peer.port
    assert attributes["ua_autotag.client.version"] == sdk_version()
    assert attributes["user_agent.original"] == peer.user_agents(ME)[-1]
    text = json.dumps(attributes) + json.dumps([dict(e.attributes) for e in span.events])
    assert TOKEN not in text and "dapi" not in text


def test_uninstrument_removes_the_descriptors() -> None:
    from databricks.sdk._base_client import _BaseClient
    from databricks.sdk.config import Config

    before = (dict(vars(_BaseClient)), Config.__dict__["user_agent"])
    ua_autotag.instrument(UA, integrations=SDK)
    assert "_user_agent_base" in vars(_BaseClient)
    assert Config.__dict__["user_agent"] is not before[1]
    ua_autotag.uninstrument()
    assert dict(vars(_BaseClient)) == before[0]
    assert Config.__dict__["user_agent"] is before[1]


def run_fresh(code: str, **env: str) -> Any:
    """Run ``code`` in a fresh interpreter (nothing imported yet); its last stdout line as JSON."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("UA_AUTOTAG_", "DATABRICKS_"))}
    clean.update(env, DATABRICKS_CONFIG_FILE=os.devnull)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=clean,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sdk_imported_after_instrument_in_a_fresh_interpreter(peer: HeaderRecorder) -> None:
    result = run_fresh(
        f"""
        import json, sys
        import ua_autotag
        ua_autotag.instrument({UA!r}, integrations=["databricks_sdk"])
        assert "databricks.sdk" not in sys.modules
        from databricks.sdk import WorkspaceClient
        w = WorkspaceClient(host={peer.url!r}, token="t", product="Late", product_version="1.0")
        w.current_user.me()
        print(json.dumps(ua_autotag.status()["databricks_sdk"].state))
        """
    )
    assert result == "patched"
    (agent,) = peer.user_agents(ME)
    assert agent.startswith("Late/1.0 databricks-sdk-py/")
    assert agent.split().count(UA) == 1


def test_env_one_liner_before_sdk_import(peer: HeaderRecorder) -> None:
    run_fresh(
        f"""
        import json
        import ua_autotag  # instruments from UA_AUTOTAG_USER_AGENT
        from databricks.sdk import WorkspaceClient
        WorkspaceClient(host={peer.url!r}, token="t").current_user.me()
        print("null")
        """,
        UA_AUTOTAG_USER_AGENT=UA,
    )
    assert all(a.split().count(UA) == 1 for a in peer.user_agents())
    assert peer.user_agents(ME)


# ------------------------------------------------------------------ gRPC transport


@pytest.fixture
def grpc_peer(tmp_path: Any) -> Iterator[Any]:
    """A real TLS gRPC server on localhost recording each call's metadata.

    The SDK's ``open_channel`` always uses TLS with the default roots; the client
    process trusts our self-signed certificate via ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``.
    """
    pytest.importorskip("databricks.sdk.mixins._grpc_transport",
                        reason="this SDK has no gRPC transport (the version matrix runs 0.34)")
    import datetime
    from concurrent import futures

    import grpc
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    (tmp_path / "ca.pem").write_bytes(cert_pem)
    seen: List[Dict[str, Any]] = []

    def echo(request: bytes, context: Any) -> bytes:
        seen.append(dict(context.invocation_metadata()))
        return b"ok"

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "test.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_secure_port("localhost:0", grpc.ssl_server_credentials([(key_pem, cert_pem)]))
    server.start()
    server.seen = seen  # type: ignore[attr-defined]
    server.port = port  # type: ignore[attr-defined]
    server.ca = str(tmp_path / "ca.pem")  # type: ignore[attr-defined]
    yield server
    server.stop(None)


def test_grpc_transport_channel_user_agent(peer: HeaderRecorder, grpc_peer: Any) -> None:
    """``mixins._grpc_transport.open_channel`` advertises ``Config.user_agent``: tagged."""
    run_fresh(
        f"""
        import ua_autotag
        from databricks.sdk.core import Config
        from databricks.sdk.mixins._grpc_transport import open_channel

        cfg = Config(host={peer.url!r}, token={TOKEN!r}, product="MyApp", product_version="1.0")
        cfg.host = "https://localhost"  # the gRPC endpoint (TLS); the HTTP peer did the probe

        def call():
            channel = open_channel(cfg, port={grpc_peer.port})
            assert channel.unary_unary("/test.Echo/Call")(b"x", timeout=30) == b"ok"
            channel.close()

        call()  # before instrument()
        ua_autotag.instrument({UA!r}, integrations=["databricks_sdk"])
        call()
        ua_autotag.instrument({OTHER!r}, integrations=["databricks_sdk"])
        call()
        print("null")
        """,
        GRPC_DEFAULT_SSL_ROOTS_FILE_PATH=grpc_peer.ca,
    )
    agents = [m["user-agent"] for m in grpc_peer.seen]
    assert len(agents) == 3
    plain, tagged, retargeted = agents
    assert plain.startswith("MyApp/1.0 databricks-sdk-py/") and UA not in plain
    sdk_part = plain.split(" grpc-python/")[0]
    assert tagged.startswith(f"{sdk_part} {UA} grpc-python/")
    assert retargeted.startswith(f"{sdk_part} {OTHER} grpc-python/")
    assert tagged.split().count(UA) == 1 and UA not in retargeted


def test_unexpected_sdk_shape_fails_closed(peer: HeaderRecorder, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """A future SDK whose Config.user_agent is no property: status 'failed', SDK untouched."""
    from databricks.sdk._base_client import _BaseClient
    from databricks.sdk.config import Config
    from databricks.sdk.core import ApiClient

    init = ApiClient.__dict__["__init__"]
    monkeypatch.setattr(Config, "user_agent", "static-agent/1.0")
    ua_autotag.instrument(UA, integrations=SDK)
    row = ua_autotag.status()["databricks_sdk"]
    assert row.state == "failed" and "user_agent" in (row.reason or "")
    assert ApiClient.__dict__["__init__"] is init  # the span patch was rolled back
    assert "_user_agent_base" not in vars(_BaseClient)
    assert UA not in me(peer, workspace(peer))


def test_status_shows_the_supported_range() -> None:
    import databricks.sdk  # noqa: F401

    ua_autotag.instrument(UA, integrations=SDK)
    row = ua_autotag.status()["databricks_sdk"]
    assert (row.state, row.version, row.supported) == ("patched", sdk_version(), ">=0.34,<1")


def test_failed_client_gives_one_error_span_and_the_original_exception(
    peer: HeaderRecorder, spans: Any
) -> None:
    from databricks.sdk import WorkspaceClient

    ua_autotag.instrument(UA, integrations=SDK)
    with pytest.raises(ValueError) as info:
        WorkspaceClient(host=peer.url, client_id="app", client_secret=TOKEN, auth_type="oauth-m2m")
    finished = [s for s in spans.get_finished_spans()
                if s.attributes.get("ua_autotag.integration") == "databricks_sdk"]
    assert len(finished) == 1
    (span,) = finished
    assert span.status.status_code.name == "ERROR"
    assert span.attributes["error.type"] == "ValueError"
    assert span.attributes["server.address"] == "127.0.0.1"
    assert span.attributes["server.port"] == peer.port
    text = json.dumps(dict(span.attributes)) + json.dumps([dict(e.attributes) for e in span.events])
    assert TOKEN not in text and "dapi" not in text
    assert "oauth-m2m" in str(info.value)  # the SDK's own message, unchanged
    # the peer saw the SDK's probes, tagged (older SDKs send the OIDC discovery with plain
    # requests, without the SDK's User-Agent: not the SDK's header, so not ours to tag)
    assert peer.requests and all(r.user_agent.split().count(UA) == 1 for r in peer.requests
                                 if r.user_agent and "databricks-sdk-py/" in r.user_agent)


@pytest.mark.parametrize(
    ("mode", "product", "expected_tail"),
    [
        ("append", "3.5", None),  # the app *is* our product at our version: once, as is
        ("replace", "3.4", UA),  # the app's product slot stays; ours is added
        ("append", "3.4", UA),
        ("keep", "3.4", None),  # keep: a version of our product is already named
    ],
)
def test_app_product_slot_naming_our_product_is_never_removed(
    peer: HeaderRecorder, mode: str, product: str, expected_tail: Any
) -> None:
    w = workspace(peer, product="AcmePartner_DatEngProduct", product_version=product)
    untagged = me(peer, w)
    ua_autotag.instrument(UA, integrations=SDK, mode=mode)
    agent = me(peer, w)
    assert agent.startswith(f"AcmePartner_DatEngProduct/{product} databricks-sdk-py/")
    assert agent == (untagged if expected_tail is None else f"{untagged} {expected_tail}")
    assert agent.split().count(UA) <= 1
