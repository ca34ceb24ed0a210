"""aiohttp against the local header recorder; the real Unity Catalog client (generated on
aiohttp) and PyIceberg's REST catalog (requests) pointed at it as a Databricks host.

As in test_rest.py: listing "127.0.0.1" (rest_hosts / UA_AUTOTAG_REST_HOSTS) makes the
recorder a Databricks host; the same server reached as "localhost" is not one.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any, Dict, List, Optional

import aiohttp
import pytest

import ua_autotag
from tests.integrations.conftest import Redirector
from ua_autotag.verify.http_peer import HeaderRecorder

UA = "AcmePartner_DatEngProduct/3.5"
MINE = "MyApp/2.0"
DEFAULT = aiohttp.http.SERVER_SOFTWARE  # "Python/3.11 aiohttp/3.13.3"
UC = "/api/2.1/unity-catalog"


async def _get(
    url: str,
    headers: Optional[Dict[str, str]] = None,
    session_headers: Optional[Dict[str, str]] = None,
    session: Optional[aiohttp.ClientSession] = None,
) -> aiohttp.ClientResponse:
    own = session is None
    session = session or aiohttp.ClientSession(headers=session_headers)
    try:
        async with session.get(url, headers=headers,
                               timeout=aiohttp.ClientTimeout(total=10)) as response:
            await response.read()
            return response
    finally:
        if own:
            await session.close()


def get(url: str, headers: Optional[Dict[str, str]] = None,
        session_headers: Optional[Dict[str, str]] = None) -> aiohttp.ClientResponse:
    return asyncio.run(_get(url, headers, session_headers))


def _localhost(peer: HeaderRecorder) -> str:
    return f"http://localhost:{peer.port}"


# ------------------------------------------------------------------ tagging and merging


@pytest.mark.parametrize(
    ("mode", "mine", "expected"),
    [
        ("append", None, f"{DEFAULT} {UA}"),
        ("append", MINE, f"{MINE} {UA}"),
        ("replace", None, UA),
        ("replace", MINE, UA),
        ("keep", None, f"{DEFAULT} {UA}"),  # aiohttp's default is no caller value
        ("keep", MINE, MINE),
    ],
)
def test_databricks_host_gets_our_token(
    http_peer: HeaderRecorder, mode: str, mine: Optional[str], expected: str
) -> None:
    ua_autotag.instrument(UA, mode=mode, rest_hosts=["127.0.0.1"], integrations=["aiohttp"])
    get(http_peer.url + UC + "/catalogs", None if mine is None else {"User-Agent": mine})
    assert http_peer.user_agents() == [expected]


def test_session_and_request_headers_kept_ours_once(http_peer: HeaderRecorder) -> None:
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=["aiohttp"])
    session_headers = {"User-Agent": "SessionUA/1", "X-Session": "s"}
    get(http_peer.url + "/a", session_headers=session_headers)
    get(http_peer.url + "/b", {"User-Agent": f"ReqUA/1 {UA}", "X-Req": "r"}, session_headers)
    first, second = http_peer.requests
    assert first.user_agent == f"SessionUA/1 {UA}" and first.headers["x-session"] == "s"
    assert second.user_agent == f"ReqUA/1 {UA}"  # the request's own wins, ours already there
    assert second.headers["x-session"] == "s" and second.headers["x-req"] == "r"
    assert session_headers == {"User-Agent": "SessionUA/1", "X-Session": "s"}  # not mutated


def test_response_shows_what_was_sent_and_retries_stay_single(
    http_peer: HeaderRecorder,
) -> None:
    """A client middleware sending the same request twice (a retry): ours once each time."""
    if not hasattr(aiohttp, "ClientHandlerType"):
        pytest.skip("client middlewares came in aiohttp 3.12")

    async def retry_once(req: Any, handler: Any) -> Any:
        response = await handler(req)
        response.release()
        return await handler(req)

    async def run() -> aiohttp.ClientResponse:
        async with aiohttp.ClientSession(middlewares=(retry_once,)) as session:
            return await _get(http_peer.url + "/m", session=session)

    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=["aiohttp"])
    response = asyncio.run(run())
    assert http_peer.user_agents() == [f"{DEFAULT} {UA}"] * 2
    assert response.request_info.headers["User-Agent"] == f"{DEFAULT} {UA}"


def test_other_host_is_untouched_byte_for_byte(http_peer: HeaderRecorder) -> None:
    get(_localhost(http_peer) + "/x", {"User-Agent": MINE})  # baseline, not instrumented
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=["aiohttp"])
    get(_localhost(http_peer) + "/x", {"User-Agent": MINE})
    get(http_peer.url + "/x", {"User-Agent": MINE})
    baseline, instrumented, listed = http_peer.requests
    assert instrumented.headers == baseline.headers
    assert listed.user_agent == f"{MINE} {UA}"


def test_databricks_host_env_and_rest_hosts_env(
    http_peer: HeaderRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_HOST", http_peer.url)
    ua_autotag.instrument(UA, integrations=["aiohttp"])
    get(http_peer.url + "/d")
    monkeypatch.delenv("DATABRICKS_HOST")
    monkeypatch.setenv("UA_AUTOTAG_REST_HOSTS", "*.0.0.1")
    ua_autotag.instrument(UA, integrations=["aiohttp"])
    get(http_peer.url + "/e")
    get(_localhost(http_peer) + "/f")
    assert http_peer.user_agents() == [f"{DEFAULT} {UA}", f"{DEFAULT} {UA}", DEFAULT]


def test_redirect_to_other_host_is_untouched(
    http_peer: HeaderRecorder, redirect_to_localhost: Redirector
) -> None:
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=["aiohttp"])
    get(redirect_to_localhost.url + "/start", {"User-Agent": MINE})
    assert redirect_to_localhost.user_agents == [f"{MINE} {UA}"]
    assert http_peer.user_agents("/landed") == [MINE]


def test_errors_propagate_unchanged() -> None:
    with HeaderRecorder() as dead:
        url = dead.url  # nothing listens there any more
    errors = []
    for instrumented in (False, True):
        if instrumented:
            ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=["aiohttp"])
        with pytest.raises(aiohttp.ClientError) as info:
            get(url + "/x")
        errors.append(type(info.value))
    assert errors[0] is errors[1]


def test_no_span_per_request_and_uninstrument(http_peer: HeaderRecorder, spans: Any) -> None:
    from aiohttp.client_reqrep import ClientRequest

    original = ClientRequest.__dict__["send"]
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"], integrations=["aiohttp"])
    assert ua_autotag.status()["aiohttp"].state == "patched"
    get(http_peer.url + "/s")
    assert spans.get_finished_spans() == ()
    ua_autotag.uninstrument()
    assert ClientRequest.__dict__["send"] is original
    get(http_peer.url + "/t")
    assert http_peer.user_agents() == [f"{DEFAULT} {UA}", DEFAULT]


# ------------------------------------------------------------------ pinned sessions


PRODUCTS = r"""
import asyncio, json, sys, types
import aiohttp
import ua_autotag

url = sys.argv[1]
code = '''
import aiohttp
def make():
    return aiohttp.ClientSession()
async def get(session, url):
    async with session.get(url) as r:
        await r.read()
'''
for name in ("acme_tool", "globex_tool"):
    mod = types.ModuleType(name)
    mod.__file__ = f"/opt/{name}/__init__.py"
    exec(compile(code, mod.__file__, "exec"), mod.__dict__)
    sys.modules[name] = mod
import acme_tool, globex_tool
ua_autotag.instrument("Customer_App/1", rest_hosts=["127.0.0.1"], integrations=["aiohttp"])
ua_autotag.instrument("Acme_Tool/1", packages=["acme_tool"], rest_hosts=["127.0.0.1"])
ua_autotag.instrument("Globex_Tool/2", packages=["globex_tool"], rest_hosts=["127.0.0.1"])

async def main():
    acme_session = acme_tool.make()     # Acme's session
    customer_session = aiohttp.ClientSession()
    await globex_tool.get(acme_session, url + "/acme-session-used-by-globex")
    await acme_session.get(url + "/acme-session-used-by-customer")
    await globex_tool.get(customer_session, url + "/customer-session-used-by-globex")
    async with customer_session.get(url + "/customer-session") as r:
        await r.read()
    await acme_session.close()
    await customer_session.close()

asyncio.run(main())
"""


def test_sessions_keep_the_product_that_created_them(http_peer: HeaderRecorder) -> None:
    proc = subprocess.run([sys.executable, "-c", PRODUCTS, http_peer.url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    got = {r.path: r.user_agent for r in http_peer.requests}
    assert got == {
        "/acme-session-used-by-globex": f"{DEFAULT} Acme_Tool/1",
        "/acme-session-used-by-customer": f"{DEFAULT} Acme_Tool/1",
        "/customer-session-used-by-globex": f"{DEFAULT} Globex_Tool/2",
        "/customer-session": f"{DEFAULT} Customer_App/1",
    }


IMPORT_AFTER = r"""
import asyncio, json, sys
import ua_autotag
ua_autotag.instrument("AcmePartner_DatEngProduct/3.5", rest_hosts=["127.0.0.1"],
                      integrations=["aiohttp"])
assert "aiohttp" not in sys.modules
import aiohttp
async def main():
    async with aiohttp.request("GET", sys.argv[1] + "/late") as r:
        await r.read()
asyncio.run(main())
print(json.dumps(ua_autotag.status()["aiohttp"].state))
"""


def test_imported_after_instrument(http_peer: HeaderRecorder) -> None:
    proc = subprocess.run([sys.executable, "-c", IMPORT_AFTER, http_peer.url],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == "patched"
    assert http_peer.user_agents() == [f"{DEFAULT} {UA}"]


# ------------------------------------------------- clients built on aiohttp / requests


def test_unity_catalog_client(http_peer: HeaderRecorder) -> None:
    """``unitycatalog-client`` (OpenAPI-generated on aiohttp): its own UA kept, ours added."""
    from unitycatalog.client import ApiClient, CatalogsApi, Configuration

    http_peer.route("GET", UC + "/catalogs", (200, {"catalogs": [{"name": "main"}]}))

    async def run() -> List[str]:
        async with ApiClient(Configuration(host=http_peer.url + UC)) as client:
            listed = await CatalogsApi(client).list_catalogs()
            return [c.name for c in listed.catalogs or []]

    assert asyncio.run(run()) == ["main"]  # baseline
    ua_autotag.instrument(UA, rest_hosts=["127.0.0.1"])
    assert asyncio.run(run()) == ["main"]
    baseline, tagged = http_peer.user_agents(UC + "/catalogs")
    assert baseline.startswith("OpenAPI-Generator/")
    assert tagged == f"{baseline} {UA}"


def test_pyiceberg_rest_catalog(http_peer: HeaderRecorder,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """PyIceberg's REST catalog (requests) against the recorder as Unity Catalog's Iceberg
    endpoint, listed through ``UA_AUTOTAG_REST_HOSTS``."""
    from pyiceberg.catalog.rest import RestCatalog

    base = UC + "/iceberg"
    http_peer.route("GET", base + "/v1/config", (200, {"defaults": {}, "overrides": {}}))
    http_peer.route("GET", base + "/v1/namespaces", (200, {"namespaces": [["sales"]]}))
    monkeypatch.setenv("UA_AUTOTAG_REST_HOSTS", "127.0.0.1")
    ua_autotag.instrument(UA)
    catalog = RestCatalog("uc", uri=http_peer.url + base, token="dapi-secret")
    assert catalog.list_namespaces() == [("sales",)]
    agents = http_peer.user_agents()
    assert len(agents) == 2
    assert all(a.startswith("PyIceberg/") and a.split().count(UA) == 1 for a in agents), agents


def test_databricks_apps_host_is_tagged_without_configuration(http_peer: HeaderRecorder) -> None:
    """``*.databricksapps.com`` is a Databricks zone: an app's endpoint (resolved to the
    recorder by aiohttp's own resolver hook) is tagged with no rest_hosts at all."""
    from aiohttp.abc import AbstractResolver

    class ToRecorder(AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: int = 0) -> List[Any]:
            return [{"hostname": host, "host": "127.0.0.1", "port": http_peer.port,
                     "family": 2, "proto": 0, "flags": 0}]

        async def close(self) -> None:
            pass

    async def run(url: str) -> None:
        connector = aiohttp.TCPConnector(resolver=ToRecorder())
        async with aiohttp.ClientSession(connector=connector) as session:
            await _get(url, session=session)

    ua_autotag.instrument(UA, integrations=["aiohttp"])
    asyncio.run(run(f"http://sales-app-1234567890123456.aws.databricksapps.com:{http_peer.port}/x"))
    asyncio.run(run(f"http://sales-app.example.com:{http_peer.port}/y"))
    assert http_peer.user_agents() == [f"{DEFAULT} {UA}", DEFAULT]
