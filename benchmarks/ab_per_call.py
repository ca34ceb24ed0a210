"""Per-call added cost of one tree, for a same-moment A/B of engine versions.

Run it with each tree's ``src`` and ``benchmarks`` on the path, alternating trees::

    PYTHONPATH=$TREE/src:$TREE/benchmarks python ab_per_call.py spans_off 1500

Variants: ``spans_off``, ``spans_on`` (OpenTelemetry API, no SDK), ``products`` (two
products registered, the call from this ``__main__`` script). Prints JSON: the best of
ROUNDS x 100 synthetic ``noio`` connects from a 10-frame stack minus the unpatched
client called the same way, and (when the tree has it) the same for aiohttp's
``ClientRequest.send`` on a stand-in ``send``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any, Callable, Dict

from aiohttp.client_reqrep import ClientRequest
from yarl import URL

import bench_customer
import noio_client
import noio_integration

INNER = 100
DEPTH = 10
UA = "AcmePartner_DatEngProduct/3.5"
URL_ = "https://adb-1234567890123456.7.azuredatabricks.net/api/2.1/unity-catalog/catalogs"
KW: Dict[str, Any] = {"host": "h", "port": 1, "headers": {"User-Agent": "app/1"}}


async def send(self: Any, conn: Any) -> Any:
    return self.headers.get("User-Agent")


def main() -> None:
    variant, rounds = sys.argv[1], int(sys.argv[2])
    raw_connect = noio_client.connect
    ClientRequest.send = send  # before instrument(): the wrapper wraps the stand-in
    noio_integration.register()
    import ua_autotag

    integrations = ["noio", "aiohttp"]
    try:
        import ua_autotag.integrations.aiohttp
    except ImportError:  # a tree from before the aiohttp integration
        integrations = ["noio"]
    spans = variant == "spans_on"
    ua_autotag.instrument(UA, integrations=integrations, spans=spans)
    if variant == "products":
        for ua, package in (("AcmePartner_ProductA/1.0", "bench_product_a"),
                            ("AcmePartner_ProductB/2.0", "bench_product_b")):
            ua_autotag.instrument(ua, packages=[package], integrations=integrations,
                                  spans=False)
    if spans:
        import opentelemetry.trace  # noqa: F401 - the API only, no SDK
    patched = noio_client.connect
    assert UA in str(patched(**KW))

    def best(fn: Callable[..., Any]) -> float:
        low = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(INNER):
                bench_customer.at_depth(DEPTH, lambda: fn(**KW))
            low = min(low, time.perf_counter() - start)
        return low / INNER

    out = {"noio_added_us": (best(patched) - best(raw_connect)) * 1e6}
    if variant != "products" and "aiohttp" in integrations:
        loop = asyncio.new_event_loop()
        request = ClientRequest("GET", URL(URL_), headers={"User-Agent": "app/1"}, loop=loop)
        wrapped_send = ClientRequest.send

        async def batch(fn: Callable[..., Any]) -> None:
            for _ in range(INNER):
                request.headers["User-Agent"] = "app/1"  # each hop is a fresh request
                await fn(request, None)

        def abest(fn: Callable[..., Any]) -> float:
            low = float("inf")
            for _ in range(max(rounds // 3, 50)):
                start = time.perf_counter()
                loop.run_until_complete(batch(fn))
                low = min(low, time.perf_counter() - start)
            return low / INNER

        out["aiohttp_added_us"] = (abest(wrapped_send) - abest(send)) * 1e6
        loop.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
