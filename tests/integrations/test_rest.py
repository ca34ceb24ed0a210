"""REST: requests, httpx (sync + async) and urllib3 against the local header recorder.

The recorder listens on 127.0.0.1. Listing "127.0.0.1" (rest_hosts / DATABRICKS_HOST)
makes it a Databricks host; the same server reached as "localhost" is not one, which
proves other hosts are left byte for byte as they were.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any, Callable, Dict, Optional

import httpx
import pytest
import requests
import urllib3

import ua_autotag
from tests.integrations.conftest import Redirector
from ua_autotag.verify.http_peer import HeaderRecorder

UA = "AcmePartner_DatEngProduct/3.5"
MINE = "MyApp/2.0"

DEFAULTS = {
    "requests": requests.utils.default_user_agent(),
    "httpx": f"python-httpx/{httpx.__version__}",
    "httpx_async": f"python-httpx/{httpx.__version__}",
    "urllib3": f"python-urllib3/{urllib3.__version__}",
}
INTEGRATIONS = ["requests", "httpx", "urllib3"]


def _get_requests(url: str, headers: Dict[str, str]) -> None:
    with requests.Session() as session:
        session.get(url, headers=headers, timeout=10)


def _get_httpx(url: str, headers: Dict[str, str]) -> None:
    with httpx.Client(follow_redirects=True) as client:
        client.get(url, headers=headers, timeout=10)


def _get_httpx_async(url: str, headers: Dict[str, str]) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            await client.get(url, headers=headers, timeout=10)

    asyncio.run(run())


def _get_urllib3(url: str, headers: Dict[str, str]) -> None:
    with urllib3.PoolManager() as pool:
        pool.request("GET", url, headers=headers or None, timeout=10)


CLIENTS: Dict[str, Callable[[str, Dict[str, str]], None]] = {
    "requests": _get_requests,
    "httpx": _get_httpx,
    "httpx_async": _get_httpx_async,
    "urllib3": _get_urllib3,
}


def _localhost(peer: HeaderRecorder) -> str:
    return f"http://localhost:{peer.port}"


def _expected(client: str, mode: str, mine: Optional[str]) -> str:
    base = mine if mine is not None else DEFAULTS[client]
    if mode == "replace":
        return UA
    if mode == "keep" and mine is not None:
        return mine
    return f"{base} {UA}"


# ------------------------------------------------------------------ tagging per client


@pytest.mark.parametrize("mine", [None, MINE], ids=["no-user-value", "user-value"])
@pytest.mark.parametrize("mode", ["append", "replace", "keep"])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_databricks_host_gets_our_token(
    http_peer: HeaderRecorder, client: str, mode: str, mine: Optional[str]
) -> None:
    ua_autotag.instrument(UA, mode=mode, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    headers = {} if mine is None else {"User-Agent": mine}
    CLIENTS[client](http_peer.url + "/api/2.1/unity-catalog/catalogs", headers)
    assert http_peer.user_agents() == [_expected(client, mode, mine)]


@pytest.mark.parametrize("mine", [None, MINE], ids=["no-user-value", "user-value"])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_other_host_is_untouched_byte_for_byte(
    http_peer: HeaderRecorder, client: str, mine: Optional[str]
) -> None:
    headers = {} if mine is None else {"User-Agent": mine}
    CLIENTS[client](_localhost(http_peer) + "/x", headers)  # baseline, not instrumented
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    CLIENTS[client](_localhost(http_peer) + "/x", headers)
    CLIENTS[client](http_peer.url + "/x", headers)  # the same server, listed: tagged
    baseline, instrumented, listed = http_peer.requests
    assert instrumented.headers == baseline.headers
    assert UA not in (instrumented.user_agent or "")
    assert listed.user_agent is not None and listed.user_agent.split().count(UA) == 1


@pytest.mark.parametrize("client", list(CLIENTS))
def test_databricks_host_env_counts(
    http_peer: HeaderRecorder, client: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", http_peer.url + "/")
    ua_autotag.instrument(UA, integrations=INTEGRATIONS)
    CLIENTS[client](http_peer.url + "/api/2.0/clusters/list", {})
    CLIENTS[client](_localhost(http_peer) + "/api/2.0/clusters/list", {})
    assert http_peer.user_agents() == [f"{DEFAULTS[client]} {UA}", DEFAULTS[client]]


def test_rest_hosts_env_and_wildcards(http_peer: HeaderRecorder,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UA_AUTOTAG_REST_HOSTS", "catalog.example.org, *.0.0.1")
    ua_autotag.instrument(UA, integrations=INTEGRATIONS)
    _get_requests(http_peer.url + "/iceberg/v1/config", {})
    assert http_peer.user_agents() == [f"{DEFAULTS['requests']} {UA}"]


# -------------------------------------------------------------- redirects, no mutation


@pytest.mark.parametrize("client", list(CLIENTS))
def test_redirect_to_other_host_is_untouched(
    http_peer: HeaderRecorder, redirect_to_localhost: Redirector, client: str
) -> None:
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    CLIENTS[client](redirect_to_localhost.url + "/start", {"User-Agent": MINE})
    assert redirect_to_localhost.user_agents == [f"{MINE} {UA}"]  # listed host: tagged
    assert http_peer.user_agents("/landed") == [MINE]  # localhost: as the caller sent it


def test_callers_objects_are_not_mutated(http_peer: HeaderRecorder) -> None:
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    session = requests.Session()
    prepared = session.prepare_request(requests.Request("GET", http_peer.url + "/p"))
    response = session.send(prepared)
    assert prepared.headers["User-Agent"] == DEFAULTS["requests"]
    assert response.request.headers["User-Agent"] == f"{DEFAULTS['requests']} {UA}"

    shared = {"User-Agent": MINE}
    pool = urllib3.PoolManager(headers=shared)
    pool.request("GET", http_peer.url + "/q")
    assert shared == {"User-Agent": MINE}
    assert http_peer.user_agents("/q") == [f"{MINE} {UA}"]


# ------------------------------------------------- Databricks clients: exactly once


ME = "/api/2.0/preview/scim/v2/Me"


def _sdk_me(peer: HeaderRecorder) -> None:
    from databricks.sdk import WorkspaceClient

    peer.route("GET", ME, (200, {"userName": "someone@example.com"}))
    client = WorkspaceClient(host=peer.url, token="dapi-test-token")
    assert client.current_user.me().user_name == "someone@example.com"


def test_sdk_requests_carry_our_token_exactly_once(http_peer: HeaderRecorder) -> None:
    """All integrations on: the SDK's own integration tags, REST layers add nothing."""
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"])
    _sdk_me(http_peer)
    assert ua_autotag.status()["databricks_sdk"].state == "patched"
    agents = http_peer.user_agents(ME)
    assert len(agents) == 1
    assert agents[0].split().count(UA) == 1
    assert "databricks-sdk-py/" in agents[0]


@pytest.mark.parametrize("mode", ["append", "replace", "keep"])
def test_rest_layers_leave_sdk_requests_to_the_sdk_integration(
    http_peer: HeaderRecorder, mode: str
) -> None:
    """Only requests + urllib3 on: the SDK's header passes through them untouched."""
    _sdk_me(http_peer)
    baseline = http_peer.user_agents(ME)
    http_peer.clear()
    ua_autotag.instrument(UA, mode=mode, rest_hosts=["127.0.0.1"],
                          integrations=["requests", "urllib3"])
    _sdk_me(http_peer)
    assert http_peer.user_agents(ME) == baseline
    assert UA not in baseline[0]


def test_sdk_header_already_carrying_our_token_is_not_tagged_twice(
    http_peer: HeaderRecorder,
) -> None:
    """The real SDK with our token added its own way (with_extra), REST layers on."""
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.core import Config

    cfg = Config(host=http_peer.url, token="dapi-test-token",
                 product="AcmePartner_DatEngProduct", product_version="3.5")
    http_peer.route("GET", ME, (200, {"userName": "someone@example.com"}))
    WorkspaceClient(config=cfg).current_user.me()
    agent = http_peer.user_agents(ME)[0]
    assert agent.split().count(UA) == 1


def test_sql_connector_requests_pass_through_rest_layers(http_peer: HeaderRecorder) -> None:
    """The SQL connector's Thrift POST (over urllib3) is its own integration's job."""

    def connect() -> None:
        from databricks import sql

        with pytest.raises(Exception):  # noqa: B017 - the 404 ends the session open
            sql.connect(server_hostname="127.0.0.1", http_path="/x", access_token="t",
                        _connection_uri=http_peer.url + "/x", enable_telemetry=False,
                        _retry_stop_after_attempts_count=1)

    connect()
    baseline = http_peer.user_agents("/x")
    http_peer.clear()
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    connect()
    assert http_peer.user_agents("/x") == baseline
    assert baseline and baseline[0].startswith("PyDatabricksSqlConnector/")


# ---------------------------------------------------------------- values, lifecycle


def test_scoped_override_and_retarget(http_peer: HeaderRecorder) -> None:
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    with ua_autotag.user_agent("Other_Product/2"):
        _get_requests(http_peer.url + "/a", {})
    ua_autotag.instrument("Third_Product/3", rest_hosts=["127.0.0.1"],
                          integrations=INTEGRATIONS)
    _get_httpx(http_peer.url + "/b", {})
    assert http_peer.user_agents() == [
        f"{DEFAULTS['requests']} Other_Product/2",
        f"{DEFAULTS['httpx']} Third_Product/3",
    ]


def test_uninstrument_restores_originals(http_peer: HeaderRecorder) -> None:
    originals = (
        requests.adapters.HTTPAdapter.__dict__["send"],
        httpx.Client.__dict__["_send_single_request"],
        httpx.AsyncClient.__dict__["_send_single_request"],
        urllib3.connectionpool.HTTPConnectionPool.__dict__["urlopen"],
    )
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    assert all(ua_autotag.status()[n].state == "patched" for n in INTEGRATIONS)
    ua_autotag.uninstrument()
    restored = (
        requests.adapters.HTTPAdapter.__dict__["send"],
        httpx.Client.__dict__["_send_single_request"],
        httpx.AsyncClient.__dict__["_send_single_request"],
        urllib3.connectionpool.HTTPConnectionPool.__dict__["urlopen"],
    )
    assert all(a is b for a, b in zip(originals, restored))
    _get_requests(http_peer.url + "/after", {})
    assert http_peer.user_agents() == [DEFAULTS["requests"]]


@pytest.mark.parametrize("client", list(CLIENTS))
def test_client_errors_propagate_unchanged(client: str) -> None:
    with HeaderRecorder() as dead:
        url = dead.url  # a port nothing listens on any more
    errors = []
    for instrumented in (False, True):
        if instrumented:
            ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
        with pytest.raises(Exception) as info:
            CLIENTS[client](url + "/x", {})
        errors.append(type(info.value))
    assert errors[0] is errors[1]


def test_no_span_per_request(http_peer: HeaderRecorder, spans: Any) -> None:
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    for client in CLIENTS.values():
        client(http_peer.url + "/s", {})
    assert len(http_peer.requests) == 4
    assert spans.get_finished_spans() == ()


IMPORT_AFTER = r"""
import asyncio, json, sys
import ua_autotag
ua_autotag.instrument("AcmePartner_DatEngProduct/3.5", rest_hosts=["127.0.0.1"],
                      integrations=["requests", "httpx", "urllib3"])
assert "requests" not in sys.modules and "httpx" not in sys.modules
import requests, httpx, urllib3
url = sys.argv[1]
requests.get(url + "/r", timeout=10)
httpx.get(url + "/h", timeout=10)
async def a():
    async with httpx.AsyncClient() as c:
        await c.get(url + "/ha", timeout=10)
asyncio.run(a())
urllib3.request("GET", url + "/u", timeout=10)
print(json.dumps({n: s.state for n, s in ua_autotag.status().items()}))
"""


def test_clients_imported_after_instrument(http_peer: HeaderRecorder) -> None:
    proc = subprocess.run([sys.executable, "-c", IMPORT_AFTER, http_peer.url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    states = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(states[n] == "patched" for n in INTEGRATIONS)
    assert [r.user_agent for r in http_peer.requests] == [
        f"{DEFAULTS['requests']} {UA}", f"{DEFAULTS['httpx']} {UA}",
        f"{DEFAULTS['httpx']} {UA}", f"{DEFAULTS['urllib3']} {UA}",
    ]


# ------------------------------------------------------------------- the host rule


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("dbc-a1b2c3d4-e5f6.cloud.databricks.com", True),
        ("accounts.cloud.databricks.com", True),
        ("DBC-X.Cloud.Databricks.COM.", True),
        ("dbc-x.cloud.databricks.us", True),
        ("adb-1234567890123456.7.azuredatabricks.net", True),
        ("adb-1.2.databricks.azure.us", True),
        ("adb-1.2.databricks.azure.cn", True),
        ("1234567890123456.7.gcp.databricks.com", True),
        ("accounts.gcp.databricks.com", True),
        ("sales-app-1234567890123456.aws.databricksapps.com", True),
        ("my-app-9876.azure.databricksapps.com", True),
        ("databricksapps.com", False),
        ("databricksapps.com.evil.example", False),
        ("cloud.databricks.com", False),  # the zone itself is no workspace
        ("www.databricks.com", False),
        ("docs.databricks.com", False),
        ("community.cloud.databricks.com.evil.example", False),
        ("evilcloud.databricks.com", False),
        ("notazuredatabricks.net", False),
        ("localhost", False),
        ("127.0.0.1", False),
        ("", False),
    ],
)
def test_builtin_zones(host: str, expected: bool) -> None:
    from ua_autotag.hosts import HostRules

    assert HostRules().match(host) is expected


def test_listed_hosts_and_databricks_host_forms() -> None:
    from ua_autotag.hosts import HostRules, host_of

    rules = HostRules.build(
        ["127.0.0.1", "https://Proxy.Corp.example:8443/path", "*.lake.example", ".uc.example",
         "[::1]", " "],
        databricks_host="https://my-ws.privatelink.example:443/",
    )
    assert rules.match("127.0.0.1") and rules.match("proxy.corp.example")
    assert rules.match("a.lake.example") and rules.match("a.b.uc.example")
    assert not rules.match("lake.example") and not rules.match("uc.example")
    assert rules.match("::1") and rules.match("[::1]")
    assert rules.match("my-ws.privatelink.example")
    assert not rules.match("other.privatelink.example")
    assert rules.match_url("http://127.0.0.1:8080/api/2.0/x?y=1")
    assert not rules.match_url("http://localhost:8080/api")
    assert host_of("https://user:pw@H.example:1/x") == "h.example"
    assert host_of("[fe80::1]:8080") == "fe80::1"


def test_rules_are_computed_once_per_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from ua_autotag import hosts

    monkeypatch.setenv("DATABRICKS_HOST", "ws.example")
    settings = ua_autotag.instrument(UA, integrations=INTEGRATIONS)
    first = hosts.rules_for(settings)
    monkeypatch.setenv("DATABRICKS_HOST", "other.example")
    assert hosts.rules_for(settings) is first and first.match("ws.example")
    again = ua_autotag.instrument(UA, integrations=INTEGRATIONS)
    assert hosts.rules_for(again).match("other.example")


def test_sql_connector_requests_carry_our_token_exactly_once(http_peer: HeaderRecorder) -> None:
    """All integrations on: the connector's own integration tags, REST layers add nothing."""
    from databricks import sql

    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"])
    with pytest.raises(Exception):  # noqa: B017 - the 404 ends the session open
        sql.connect(server_hostname="127.0.0.1", http_path="/x", access_token="t",
                    _connection_uri=http_peer.url + "/x", enable_telemetry=False,
                    _retry_stop_after_attempts_count=1)
    assert ua_autotag.status()["databricks_sql"].state == "patched"
    agents = http_peer.user_agents("/x")
    assert agents and all(a.count(UA) == 1 for a in agents), agents
    assert agents[0].startswith("PyDatabricksSqlConnector/")


def test_clients_built_before_instrument_are_covered(http_peer: HeaderRecorder) -> None:
    session, client, pool = requests.Session(), httpx.Client(), urllib3.PoolManager()
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=INTEGRATIONS)
    session.get(http_peer.url + "/r", timeout=10)
    client.get(http_peer.url + "/h", timeout=10)
    pool.request("GET", http_peer.url + "/u", timeout=10)
    assert http_peer.user_agents() == [
        f"{DEFAULTS['requests']} {UA}", f"{DEFAULTS['httpx']} {UA}", f"{DEFAULTS['urllib3']} {UA}"
    ]
    client.close()
